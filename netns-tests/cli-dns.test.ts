/**
 * `cnikit dns serve`: the standalone responder over a records directory answers the names in
 * it on the address given, follows changes to the directory, and stops cleanly on Ctrl-C.
 * Runs inside the sandbox host namespace, on its loopback.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BIN, NODE, Sandbox } from './lib/sandbox.ts';
import { netnsSerial } from './lib/netns-test.ts';

const CNIKIT = join(BIN, 'cnikit');

function records(containers: string[]): string {
  return ['# cnikit dnsname records v1', 'network appnet', 'domain app.internal', 'upstreams none', ...containers].join('\n') + '\n';
}

function resolve4(sb: Sandbox, name: string): string {
  const script = `const r=new (require('dns').promises.Resolver)({timeout:1000,tries:2});r.setServers(['127.0.0.1:5353']);r.resolve4(${JSON.stringify(name)}).then(a=>console.log(a.join(',')),e=>console.log(e.code))`;
  return sb.exec(sb.host, NODE, ['-e', script]).stdout.trim();
}

netnsSerial('dns serve answers names from a records directory on --listen and follows changes', async (t) => {
  const sb = new Sandbox();
  t.teardown(() => sb.cleanup());
  const dir = join(sb.tmp, 'records');
  mkdirSync(dir);
  writeFileSync(join(dir, 'appnet.records'), records(['container c1 eth0 10.89.0.5/24 10.89.0.1 web,www']));
  const child = spawn('ip', ['netns', 'exec', sb.host, CNIKIT, 'dns', 'serve', '--records', dir, '--listen', '127.0.0.1:5353'], { env: { PATH: process.env.PATH } });
  let stderr = '';
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not serving: ${stderr}`)), 10_000);
    child.stderr.on('data', (d) => { stderr += d; if (stderr.includes('serving DNS')) { clearTimeout(timer); resolve(); } });
  });
  t.is(resolve4(sb, 'web.app.internal'), '10.89.0.5');
  t.is(resolve4(sb, 'www.app.internal'), '10.89.0.5');
  t.is(resolve4(sb, 'db.app.internal'), 'ENOTFOUND');
  writeFileSync(join(dir, 'appnet.records'), records(['container c1 eth0 10.89.0.5/24 10.89.0.1 web,www', 'container c2 eth0 10.89.0.6/24 10.89.0.1 db']));
  let db = '';
  for (let i = 0; i < 20 && db !== '10.89.0.6'; i++) {
    await new Promise((r) => setTimeout(r, 100));
    db = resolve4(sb, 'db.app.internal');
  }
  t.is(db, '10.89.0.6');
  child.kill('SIGINT');
  t.is(await exited, 0, stderr);
});

netnsSerial('dns serve: a bad --listen is a usage error', (t) => {
  const sb = new Sandbox();
  t.teardown(() => sb.cleanup());
  const r = sb.exec(sb.host, CNIKIT, ['dns', 'serve', '--records', sb.tmp, '--listen', '0.0.0.0:53'], { env: { PATH: process.env.PATH } });
  t.is(r.status, 2);
  t.regex(r.stderr, /refusing to listen on the wildcard address/);
  const r2 = sb.exec(sb.host, CNIKIT, ['dns', 'serve'], { env: { PATH: process.env.PATH } });
  t.is(r2.status, 2);
  t.regex(r2.stderr, /required option '--records <dir>'/);
});

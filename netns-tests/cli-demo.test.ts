/**
 * `cnikit demo` end to end, run as a user would (inside a sandbox host namespace here, so even
 * its own "host" is nested away from the machine): every step of the tour passes, and nothing
 * it made is left, also when it is interrupted halfway.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { BIN, Sandbox } from './lib/sandbox.ts';
import { netnsSerial } from './lib/netns-test.ts';

const CNIKIT = join(BIN, 'cnikit');
const demoTest = netnsSerial.needs({
  met: ['bridge', 'host-local', 'portmap', 'dnsname'].every((p) => existsSync(join(BIN, p))),
  reason: 'the demo needs bridge, host-local, portmap and dnsname built in dist/bin',
});

demoTest('demo: containers reach each other by name, the published port answers from outside, all is removed', (t) => {
  const sb = new Sandbox();
  t.teardown(() => sb.cleanup());
  const r = sb.exec(sb.host, CNIKIT, ['demo', '--tmp-dir', sb.tmp], { env: { PATH: process.env.PATH }, timeout: 60_000 });
  t.is(r.status, 0, r.stdout + r.stderr);
  t.regex(r.stdout, /✓ \[4\/6\] client -> web by name/);
  t.regex(r.stdout, /resolved web\.demo\.internal -> 10\.99\.0\.\d+/);
  t.regex(r.stdout, /resolved client\.demo\.internal -> 10\.99\.0\.\d+/);
  t.regex(r.stdout, /resolved www\.demo\.internal -> 10\.99\.0\.\d+/);
  t.regex(r.stdout, /✓ \[5\/6\] outside peer .* \(published port\) -> web:80\n\s+hello from web \(10\.99\.0\.\d+\), you are 198\.51\.100\.2/);
  t.regex(r.stdout, /✓ \[6\/6\] teardown/);
  t.notRegex(r.stdout, /✗/);
  t.deepEqual(readdirSync(sb.tmp), [], 'the temp dir with namespaces and state is gone');
});

demoTest('demo: SIGINT halfway tears everything down and exits 130', async (t) => {
  const sb = new Sandbox();
  t.teardown(() => sb.cleanup());
  const child = spawn('ip', ['netns', 'exec', sb.host, CNIKIT, 'demo', '--tmp-dir', sb.tmp], { env: { PATH: process.env.PATH } });
  let stdout = '';
  child.stderr.resume();
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no progress: ${stdout}`)), 30_000);
    child.stdout.on('data', (d) => { stdout += d; if (/\[2\/6\]/.test(stdout)) { clearTimeout(timer); resolve(); } });
  });
  child.kill('SIGINT');
  t.is(await exited, 130, stdout);
  t.regex(stdout, /interrupted; everything the demo made is removed/);
  t.deepEqual(readdirSync(sb.tmp), []);
});

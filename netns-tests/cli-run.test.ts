/**
 * `cnikit run`: a command in a fresh namespace attached to a network, with its exit status
 * passed through, a published port answered from an outside namespace, and everything removed
 * when the command exits or cnikit is signalled. cnikit runs inside the sandbox host; its
 * namespaces are pinned in the sandbox temp dir (--netns-dir) and its state is there too.
 */
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BIN, NODE, PONG_SERVER, Sandbox, ipJson, startUntilReady, tcpRequest } from './lib/sandbox.ts';
import { netnsSerial } from './lib/netns-test.ts';

const CNIKIT = join(BIN, 'cnikit');
const REF = '/usr/lib/cni';

interface Ctx { sb: Sandbox; netconf: string; cache: string; ipam: string; netnsDir: string }

function setup(t: { teardown(fn: () => void): void }, portmap = false): Ctx {
  const sb = new Sandbox();
  t.teardown(() => sb.cleanup());
  const c = { sb, netconf: join(sb.tmp, 'net.d'), cache: join(sb.tmp, 'cache'), ipam: join(sb.tmp, 'ipam'), netnsDir: join(sb.tmp, 'netns') };
  mkdirSync(c.netconf);
  const plugins: Record<string, unknown>[] = [{
    type: 'bridge', bridge: 'cnkbr0', isGateway: true, hairpinMode: true,
    ipam: { type: 'host-local', dataDir: c.ipam, ranges: [[{ subnet: '10.124.0.0/24' }]], routes: [{ dst: '0.0.0.0/0' }] },
  }];
  if (portmap) plugins.push({ type: 'portmap', snat: true, capabilities: { portMappings: true } });
  writeFileSync(join(c.netconf, 'run.conflist'), JSON.stringify({ cniVersion: '1.0.0', cniVersions: ['1.0.0', '1.1.0'], name: 'runnet', plugins }));
  return c;
}

function env(c: Ctx): NodeJS.ProcessEnv {
  // dist/bin first; the reference portmap stands in until cnikit's own is built.
  return { PATH: process.env.PATH, NETCONFPATH: c.netconf, CNI_CACHE_DIR: c.cache, CNI_PATH: `${BIN}:${REF}`, CNIKIT_STATE_DIR: join(c.sb.tmp, 'state') };
}

function leftovers(c: Ctx): string[] {
  const out: string[] = [];
  if (existsSync(c.netnsDir)) out.push(...readdirSync(c.netnsDir).map((f) => `netns ${f}`));
  const leases = join(c.ipam, 'runnet');
  if (existsSync(leases)) out.push(...readdirSync(leases).filter((f) => /^[0-9a-f.:]+$/i.test(f)).map((f) => `lease ${f}`));
  const cache = join(c.cache, 'results');
  if (existsSync(cache)) out.push(...readdirSync(cache).map((f) => `cache ${f}`));
  const state = join(c.sb.tmp, 'state');
  if (existsSync(state)) out.push(...readdirSync(state).map((f) => `state ${f}`));
  out.push(...ipJson(c.sb.host, 'link', 'show', 'type', 'veth').filter((l: { ifname: string }) => l.ifname !== 'uplink0').map((l: { ifname: string }) => `veth ${l.ifname}`));
  return out;
}

netnsSerial('run: the command sees its own attached namespace, its exit status is passed through, nothing is left', (t) => {
  const c = setup(t);
  const script = `const os=require('os');const n=os.networkInterfaces();console.log(JSON.stringify(Object.fromEntries(Object.entries(n).map(([k,v])=>[k,v.map(a=>a.cidr)]))));process.exit(7)`;
  const r = c.sb.exec(c.sb.host, CNIKIT, ['run', '--netns-dir', c.netnsDir, '--name', 'probe', '--', NODE, '-e', script], { env: env(c) });
  t.is(r.status, 7, r.stderr);
  const ifs = JSON.parse(r.stdout.trim().split('\n').pop()!);
  t.deepEqual(Object.keys(ifs).sort(), ['eth0', 'lo']);
  t.regex(ifs.eth0[0], /^10\.124\.0\.\d+\/24$/);
  t.regex(r.stderr, /on network "runnet": eth0 10\.124\.0\.\d+\/24/);
  t.regex(r.stderr, /name probe/);
  t.deepEqual(leftovers(c), []);
});

netnsSerial('run: command not found exits 127, a bad -p exits 2, an unknown network 125; nothing is left', (t) => {
  // (-p 80 is Docker's "publish 80 on a free host port" now; a malformed -p is still a usage error.)
  const c = setup(t);
  const r1 = c.sb.exec(c.sb.host, CNIKIT, ['run', '-q', '--netns-dir', c.netnsDir, '--', 'no-such-command-xyz'], { env: env(c) });
  t.is(r1.status, 127, r1.stderr);
  t.regex(r1.stderr, /cannot run "no-such-command-xyz": command not found/);
  const r2 = c.sb.exec(c.sb.host, CNIKIT, ['run', '-p', 'web:80', '--', 'true'], { env: env(c) });
  t.is(r2.status, 2);
  t.regex(r2.stderr, /"web:80" is not a port mapping \("web" is not a port or a range\)/);
  const r4 = c.sb.exec(c.sb.host, CNIKIT, ['run', '-p', '8080:80', '--netns-dir', c.netnsDir, '--', 'true'], { env: env(c) });
  t.is(r4.status, 125);
  t.regex(r4.stderr, /network "runnet" cannot publish ports: no plugin in .* declares the portMappings capability/);
  const r3 = c.sb.exec(c.sb.host, CNIKIT, ['run', '--network', 'nosuch', '--netns-dir', c.netnsDir, '--', 'true'], { env: env(c) });
  t.is(r3.status, 125);
  t.regex(r3.stderr, /no net configuration with name "nosuch"/);
  t.deepEqual(leftovers(c), []);
});

netnsSerial('run -p 8080:80: the published port answers from an outside namespace; SIGTERM tears everything down', async (t) => {
  const c = setup(t, true);
  const outside = c.sb.outside();
  const run = await startUntilReady(c.sb.host, CNIKIT, ['run', '--netns-dir', c.netnsDir, '-p', '8080:80/tcp', '--', NODE, '-e', PONG_SERVER], env(c));
  const { child, exited } = run;
  const stderr = run.stderr();
  t.regex(stderr, /published 8080->80\/tcp/);
  t.is(tcpRequest(c.sb, outside, '198.51.100.1', 8080, 'hello'), 'pong:hello');
  child.kill('SIGTERM');
  const code = await exited;
  t.is(code, 143, stderr);
  t.deepEqual(leftovers(c), []);
  t.is(tcpRequest(c.sb, outside, '198.51.100.1', 8080, 'hello', 1000), '', 'the port is closed after teardown');
});

netnsSerial.needs({ met: existsSync(join(BIN, 'dnsname')), reason: 'dnsname is not built' })('run --name on a network with dnsname: another run finds it by plain name through its own resolv.conf', async (t) => {
  const c = setup(t);
  writeFileSync(join(c.netconf, 'run.conflist'), JSON.stringify({
    cniVersion: '1.0.0', name: 'runnet', plugins: [
      { type: 'bridge', bridge: 'cnkbr0', isGateway: true, ipam: { type: 'host-local', dataDir: c.ipam, ranges: [[{ subnet: '10.124.0.0/24' }]] } },
      { type: 'dnsname', domainName: 'run.internal', recordsDir: join(c.sb.tmp, 'dns', 'records'), runDir: join(c.sb.tmp, 'dns', 'run'), upstreams: [] },
    ],
  }));
  const started = await startUntilReady(c.sb.host, CNIKIT, ['run', '--netns-dir', c.netnsDir, '--name', 'web', '--', NODE, '-e', PONG_SERVER], env(c));
  const { child: web, exited } = started;
  const client = `const fs=require('fs');console.log(fs.readFileSync('/etc/resolv.conf','utf8').trim().split('\\n').slice(1).join('|'));console.log(fs.readFileSync('/etc/hosts','utf8').includes('client')?'hosts ok':'no hosts');require('net').connect({host:'web',port:80},function(){this.end('hi')}).on('data',d=>{console.log(String(d));process.exit(0)}).on('error',e=>{console.log(String(e));process.exit(1)})`;
  const r = c.sb.exec(c.sb.host, CNIKIT, ['run', '-q', '--netns-dir', c.netnsDir, '--name', 'client', '--', NODE, '-e', client], { env: env(c) });
  t.is(r.status, 0, r.stdout + r.stderr);
  t.deepEqual(r.stdout.trim().split('\n'), ['nameserver 10.124.0.1|search run.internal', 'hosts ok', 'pong:hi']);
  web.kill('SIGTERM');
  t.is(await exited, 143, started.stderr());
  t.deepEqual(leftovers(c), []);
  t.deepEqual(readdirSync('/tmp').filter((f) => /^cnikit-[0-9a-f]{12}-/.test(f) && started.stderr().includes(f.slice(0, 19))), [], 'the resolv.conf/hosts dir is removed');
});

/**
 * `cnikit run`, `ps`, `connect` and `disconnect` driven as a user drives them, with networks made
 * by `cnikit network create`, inside a sandbox host namespace with every state path in the
 * sandbox: host and none, two networks at once with the names of both resolvable, a failed second
 * attachment undoing the first, static address and MAC, random and ranged -p answered with real
 * packets, host ports in use refused before the command starts, connect/disconnect on a running
 * container (its interfaces, resolv.conf and DNS follow), and a SIGKILLed run cleaned up by `ps`
 * and `network rm -f`. Every test ends with nothing left behind.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CliSandbox } from './lib/cli-lib.ts';
import { netnsSerial } from './lib/netns-test.ts';
import { NODE, ip, startUntilReady, tcpRequest } from './lib/sandbox.ts';

/**
 * The program the containers run: TCP servers on the ports in argv[1] (default 80) answering
 * `info` (interfaces, resolv.conf, hosts as JSON), `fetch NAME` (connects to NAME:80 by name and
 * relays the answer: DNS and reachability from inside) and anything else with `pong:MSG:PORT`.
 */
const AGENT = `const fs=require('fs'),net=require('net'),os=require('os');
const ports=(process.argv[1]||'80').split(',').map(Number);
function handle(s,msg){const [cmd,arg]=msg.trim().split(' ');
if(cmd==='info'){const ifs=Object.fromEntries(Object.entries(os.networkInterfaces()).map(([k,v])=>[k,v.map(a=>a.cidr)]));return s.end(JSON.stringify({ifs,resolv:fs.readFileSync('/etc/resolv.conf','utf8'),hosts:fs.readFileSync('/etc/hosts','utf8')}));}
if(cmd==='fetch'){const c=net.connect({host:arg,port:80},()=>c.end('ping'));let d='';c.setTimeout(5000,()=>c.destroy(new Error('timeout')));c.on('data',x=>d+=x);c.on('end',()=>s.end(d));c.on('error',e=>s.end('ERR '+(e.code||e.message)));return;}
s.end('pong:'+msg+':'+s.localPort);}
let n=0;for(const p of ports)net.createServer({allowHalfOpen:true},s=>{let b='';s.on('data',d=>b+=d);s.on('end',()=>handle(s,b))}).listen(p,()=>{if(++n===ports.length)console.log('ready')});`;

/** A one-shot program: prints its interfaces, resolv.conf and hosts as JSON. */
const PROBE = `const fs=require('fs'),os=require('os');const r=f=>{try{return fs.readFileSync(f,'utf8')}catch{return ''}};console.log(JSON.stringify({ifs:Object.fromEntries(Object.entries(os.networkInterfaces()).map(([k,v])=>[k,v.map(a=>a.cidr)])),mac:(os.networkInterfaces().eth0||[])[0]?.mac,resolv:r('/etc/resolv.conf'),hosts:r('/etc/hosts')}))`;

interface Probe { ifs: Record<string, string[]>; mac?: string; resolv: string; hosts: string }

function ask(c: CliSandbox, addr: string, msg: string, port = 80): string {
  return tcpRequest(c.sb, c.sb.host, addr, port, msg, 8000);
}

function info(c: CliSandbox, addr: string): Probe {
  return JSON.parse(ask(c, addr, 'info') || '{}') as Probe;
}

/** The first address of container `name` on `network`, from `cnikit ps --json`. */
function addressOf(c: CliSandbox, name: string, network?: string): string {
  const ps = JSON.parse(c.cnikit(['ps', '--json']).stdout) as { name?: string; attachments: { network: string; addresses: string[] }[] }[];
  const a = ps.find((s) => s.name === name)?.attachments.find((x) => !network || x.network === network);
  return a?.addresses[0]?.split('/')[0] ?? '';
}

netnsSerial('run --network host: the caller\'s namespace, nothing pinned or cached; --network none: lo only; --dns, --dns-search, --add-host', (t) => {
  const c = new CliSandbox(t, 'rh');
  ip('-n', c.sb.host, 'link', 'add', 'hostonly0', 'type', 'veth', 'peer', 'name', 'hostonly1');
  t.is(c.create('a').code, 0);
  const host = c.run(['--network', 'host', '--add-host', 'db:192.0.2.5'], [NODE, '-e', PROBE]);
  t.is(host.code, 0, host.stderr);
  t.regex((JSON.parse(host.stdout) as Probe).hosts, /^192\.0\.2\.5\tdb$/m);
  const links = c.run(['--network', 'host'], ['ip', '-j', 'link', 'show']);
  t.is(links.code, 0, links.stderr);
  t.true((JSON.parse(links.stdout) as { ifname: string }[]).some((l) => l.ifname === 'hostonly0'), 'it sees the sandbox host\'s links');
  t.regex(host.stderr, /on network host/);

  const none = c.run(['--network', 'none', '--dns', '192.0.2.53', '--dns-search', 'example.test', '--dns-option', 'ndots:2', '--add-host', 'v6:fd00::5'], [NODE, '-e', PROBE]);
  t.is(none.code, 0, none.stderr);
  const n = JSON.parse(none.stdout) as Probe;
  t.deepEqual(Object.keys(n.ifs), ['lo']);
  t.deepEqual(n.resolv.split('\n').slice(1), ['nameserver 192.0.2.53', 'search example.test', 'options ndots:2', '']);
  t.regex(n.hosts, /^fd00::5\tv6$/m);
  const links2 = c.run(['--network', 'none'], ['ip', '-j', 'link', 'show']);
  t.deepEqual((JSON.parse(links2.stdout) as { ifname: string }[]).map((l) => l.ifname), ['lo']);

  for (const [args, msg] of [
    [['--network', 'none', '-p', '80'], /-p cannot be used with --network none/],
    [['--network', 'host', '--network', 'a'], /--network host cannot be combined with other networks/],
    [['--network', 'a', '--network', 'a'], /--network a is given twice/],
  ] as [string[], RegExp][]) {
    const r = c.run(args, ['true']);
    t.is(r.code, 2, args.join(' '));
    t.regex(r.stderr, msg);
  }
  ip('-n', c.sb.host, 'link', 'del', 'hostonly0');
  t.deepEqual(c.leftovers(), []);
});

netnsSerial('two networks at once: eth0 and eth1, the DNS of both, containers of each network reached by name; a failed second attachment undoes the first', async (t) => {
  const c = new CliSandbox(t, 'r2');
  t.is(c.create('a').code, 0);
  t.is(c.create('b').code, 0);
  const wa = await c.start(['--network', 'a', '--name', 'weba'], [NODE, '-e', AGENT]);
  const wb = await c.start(['--network', 'b', '--name', 'webb'], [NODE, '-e', AGENT]);
  const cl = await c.start(['--network', 'a', '--network', 'b', '--name', 'client'], [NODE, '-e', AGENT]);
  t.regex(cl.stderr(), /on network "a": eth0 10\.89\.0\.\d+\/24\n.*on network "b": eth1 10\.89\.1\.\d+\/24/);
  const me = info(c, addressOf(c, 'client', 'a'));
  t.regex(me.ifs.eth0?.[0] ?? '', /^10\.89\.0\.\d+\/24$/);
  t.regex(me.ifs.eth1?.[0] ?? '', /^10\.89\.1\.\d+\/24$/);
  t.deepEqual(me.resolv.split('\n').slice(1), ['nameserver 10.89.0.1', 'nameserver 10.89.1.1', 'search dns.cnikit', '']);
  t.regex(me.hosts, /^10\.89\.0\.\d+\tclient$/m);
  t.regex(me.hosts, /^10\.89\.1\.\d+\tclient$/m);
  // Names of both networks resolve. (A name of b asked at a's gateway is refused there, a has no
  // upstreams here, and the resolver moves on to b's: see the report on DNS across networks.)
  t.is(ask(c, addressOf(c, 'client', 'a'), 'fetch weba'), 'pong:ping:80');
  t.is(ask(c, addressOf(c, 'client', 'a'), 'fetch webb'), 'pong:ping:80');
  t.regex(c.cnikit(['ps']).stdout, /\nclient +cnikit-[0-9a-f]{12} +\d+ +a:eth0,b:eth1 +10\.89\.0\.\d+\/24,10\.89\.1\.\d+\/24 +- +client\n/);
  for (const r of [cl, wb, wa]) {
    r.child.kill('SIGTERM');
    t.is(await r.exited, 143, r.stderr());
  }
  t.deepEqual(c.leftovers(), []);

  writeFileSync(join(c.netconf, 'broken.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'broken', plugins: [
    { type: 'bridge', bridge: 'brk0', isGateway: true, ipam: { type: 'host-local', dataDir: c.ipam, ranges: [[{ subnet: '10.98.0.0/24' }]] } },
    { type: 'nosuch' },
  ] }));
  const marker = join(c.sb.tmp, 'marker');
  const bad = c.run(['--network', 'a', '--network', 'broken', '--name', 'x'], ['touch', marker]);
  t.is(bad.code, 125, bad.stderr);
  t.regex(bad.stderr, /plugin type="nosuch" name="broken" failed \(add\): failed to find plugin "nosuch"/);
  t.false(existsSync(marker), 'the command never started');
  t.deepEqual(c.leftovers(), [], 'the attachment to a was undone');
});

netnsSerial('run --ip and --mac reach the plugins (ips and mac capabilities); an --ip outside every network is refused before anything starts', (t) => {
  const c = new CliSandbox(t, 'ri');
  t.is(c.create('a', '--ipv6').code, 0);
  const ula = (JSON.parse(c.cnikit(['network', 'ls', '--json']).stdout) as { subnets: string[] }[])[0]!.subnets[1]!.replace('::/64', '::50');
  const r = c.run(['--network', 'a', '--ip', '10.89.0.50', '--ip6', ula, '--mac', '92:d0:c6:0a:29:33'], [NODE, '-e', PROBE]);
  t.is(r.code, 0, r.stderr);
  const p = JSON.parse(r.stdout) as Probe;
  t.deepEqual(p.ifs.eth0?.filter((a) => !a.startsWith('fe80')), ['10.89.0.50/24', `${ula}/64`]);
  t.is(p.mac, '92:d0:c6:0a:29:33');
  const out = c.run(['--network', 'a', '--ip', '10.99.0.1'], ['true']);
  t.is(out.code, 125);
  t.regex(out.stderr, /--ip 10\.99\.0\.1 is in none of the networks' subnets: a: 10\.89\.0\.0\/24, fd/);
  t.deepEqual(c.leftovers(), []);
});

netnsSerial('-p 80 (a free host port, printed), -p 8000-8001:8000-8001 and -p 127.0.0.1::80 answer real packets; a port in use is refused before the command starts', async (t) => {
  const c = new CliSandbox(t, 'rp');
  const outside = c.sb.outside();
  t.is(c.create('a').code, 0);
  const pub = await c.start(['--network', 'a', '--name', 'pub', '-p', '80', '-p', '8000-8001:8000-8001', '-p', '127.0.0.1::80'], [NODE, '-e', AGENT, '80,8000,8001']);
  const m = /published (\d+)->80\/tcp, 8000->8000\/tcp, 8001->8001\/tcp, 127\.0\.0\.1:(\d+)->80\/tcp/.exec(pub.stderr());
  t.truthy(m, pub.stderr());
  const [random, local] = [Number(m![1]), Number(m![2])];
  t.not(random, local);
  t.is(tcpRequest(c.sb, outside, '198.51.100.1', random, 'hi'), 'pong:hi:80');
  t.is(tcpRequest(c.sb, outside, '198.51.100.1', 8000, 'hi'), 'pong:hi:8000');
  t.is(tcpRequest(c.sb, outside, '198.51.100.1', 8001, 'hi'), 'pong:hi:8001');
  t.is(tcpRequest(c.sb, c.sb.host, '127.0.0.1', local, 'hi'), 'pong:hi:80');
  t.regex(c.cnikit(['ps']).stdout, new RegExp(`${random}->80/tcp,8000->8000/tcp,8001->8001/tcp,127\\.0\\.0\\.1:${local}->80/tcp`));

  const marker = join(c.sb.tmp, 'marker');
  const ours = c.run(['--network', 'a', '-p', '8001:80'], ['touch', marker]);
  t.is(ours.code, 125);
  t.regex(ours.stderr, /host port 8001\/tcp \(-p 8001:80\) is already in use: published by container "pub" \(cnikit-[0-9a-f]{12}\) on network "a"/);
  const listener = await startUntilReady(c.sb.host, NODE, ['-e', `require('net').createServer().listen(8080,()=>console.log('ready'))`], { PATH: process.env.PATH });
  const theirs = c.run(['--network', 'a', '-p', '8080:80'], ['touch', marker]);
  t.is(theirs.code, 125);
  t.regex(theirs.stderr, /host port 8080\/tcp \(-p 8080:80\) is already in use: a listener on \[::\]:8080 in this network namespace/);
  t.regex(theirs.stderr, /in this network namespace: pick another host port/);
  t.true(c.run(['--network', 'a', '-p', '8080:80/udp'], ['true']).code === 0, 'the same port on UDP is free');
  t.false(existsSync(marker), 'no refused command ran');
  listener.child.kill('SIGKILL');
  pub.child.kill('SIGTERM');
  t.is(await pub.exited, 143, pub.stderr());
  t.deepEqual(c.leftovers(), []);
});

netnsSerial('ps, connect and disconnect on a running container: its interfaces, resolv.conf and DNS follow', async (t) => {
  const c = new CliSandbox(t, 'rc');
  t.is(c.create('a').code, 0);
  t.is(c.create('b').code, 0);
  const webb = await c.start(['--network', 'b', '--name', 'webb'], [NODE, '-e', AGENT]);
  const app = await c.start(['--network', 'a', '--name', 'app', '--alias', 'api'], [NODE, '-e', AGENT]);
  const addr = addressOf(c, 'app');
  t.deepEqual(Object.keys(info(c, addr).ifs).sort(), ['eth0', 'lo']);
  t.regex(c.cnikit(['ps']).stdout, /^NAME +CONTAINER ID +PID +NETWORKS +ADDRESSES +PORTS +NAMES\n/);
  t.regex(ask(c, addr, 'fetch webb'), /^ERR (ENOTFOUND|EAI_AGAIN)$/, 'not on b yet');

  const con = c.cnikit(['connect', 'b', 'app']);
  t.is(con.code, 0, con.stderr);
  t.regex(con.stdout, /^connected app to "b": eth1 10\.89\.1\.\d+\/24; DNS 10\.89\.1\.1\n$/);
  const after = info(c, addr);
  t.regex(after.ifs.eth1?.[0] ?? '', /^10\.89\.1\.\d+\/24$/);
  t.deepEqual(after.resolv.split('\n').slice(1, 3), ['nameserver 10.89.0.1', 'nameserver 10.89.1.1'], 'resolv.conf is rewritten in place');
  t.is(ask(c, addr, 'fetch webb'), 'pong:ping:80', 'b\'s names resolve and b is reachable');
  t.regex(c.cnikit(['ps']).stdout, /\napp +cnikit-[0-9a-f]{12} +\d+ +a:eth0,b:eth1 /);
  const twice = c.cnikit(['connect', 'b', 'app']);
  t.is(twice.code, 7);
  t.regex(twice.stderr, /already on network "b" \(eth1\)/);

  const dis = c.cnikit(['disconnect', 'b', 'app']);
  t.is(dis.code, 0, dis.stderr);
  t.is(dis.stdout, 'disconnected app from "b" (eth1)\n');
  const back = info(c, addr);
  t.deepEqual(Object.keys(back.ifs).sort(), ['eth0', 'lo']);
  t.deepEqual(back.resolv.split('\n').slice(1), ['nameserver 10.89.0.1', 'search dns.cnikit', '']);
  t.is(c.cnikit(['disconnect', 'b', 'app']).code, 5);
  const nobody = c.cnikit(['connect', 'b', 'nobody']);
  t.is(nobody.code, 5);
  t.regex(nobody.stderr, /no running container "nobody"/);

  // connect again, then let the run end: its teardown DELs what connect added too.
  t.is(c.cnikit(['connect', 'b', 'app']).code, 0);
  for (const r of [app, webb]) {
    r.child.kill('SIGTERM');
    t.is(await r.exited, 143, r.stderr());
  }
  t.deepEqual(c.leftovers(), []);
});

netnsSerial('a cnikit run killed with SIGKILL leaves a record that ps prunes; gc --keep-running and network rm -f DEL what it left', async (t) => {
  const c = new CliSandbox(t, 'rk');
  t.is(c.create('a').code, 0);
  const alive = await c.start(['--network', 'a', '--name', 'alive'], [NODE, '-e', AGENT]);
  const doomed = await c.start(['--network', 'a', '--name', 'doomed'], [NODE, '-e', AGENT]);
  const doomedAddr = addressOf(c, 'doomed');
  doomed.child.kill('SIGKILL');
  await doomed.exited;
  const ps = c.cnikit(['ps']);
  t.is(ps.code, 0);
  t.regex(ps.stderr, /pruned the record of cnikit-[0-9a-f]{12} \(doomed\): its cnikit run \(pid \d+\) is gone/);
  t.notRegex(ps.stdout, /doomed/);
  t.regex(ps.stdout, /\nalive /);
  t.is(JSON.parse(c.cnikit(['network', 'ls', '--json']).stdout)[0].attachments, 2, 'the dead run\'s attachment is still cached');
  const gc = c.cnikit(['gc', 'a', '--keep-running']);
  t.is(gc.code, 0, gc.stderr);
  t.regex(gc.stdout, /gc a: 1 attachment\(s\) removed, 1 kept/);
  t.is(ask(c, doomedAddr, 'hi'), '', 'the dead run\'s container is off the network');
  t.is(ask(c, addressOf(c, 'alive'), 'hi'), 'pong:hi:80', 'the running one is untouched');
  const rm = c.cnikit(['network', 'rm', '-f', 'a']);
  t.is(rm.code, 0, rm.stderr);
  t.regex(rm.stdout, /detached alive \(cnikit-[0-9a-f]{12}, eth0\)/);
  alive.child.kill('SIGTERM');
  t.is(await alive.exited, 143, alive.stderr());
  c.stopPinned(); // the killed run's command is still running in its namespace
  t.deepEqual(c.leftovers(), []);
  t.deepEqual(c.bridges(), []);
});

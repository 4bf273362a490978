/**
 * Isolation as a user gets it from the cnikit command alone (issue 13): networks made with
 * `cnikit network create` (same-bridge by default, `--isolate open`, `--isolate strict`, `--internal`, `--no-icc`),
 * containers started with `cnikit run`, on a sandbox host whose FORWARD policy is drop, as where
 * Docker runs. Each container runs a relay: asked `HOST PORT` it connects there and answers with
 * what it got, so every connection below starts inside a container. Ends with `network rm` and
 * nothing of the firewall left, in our table or in iptables.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CliSandbox } from './lib/cli-lib.ts';
import { netnsSerial } from './lib/netns-test.ts';
import { NODE, tcpRequest } from './lib/sandbox.ts';
import { bridgeNf, forwardPolicy, iptablesS, setComments } from './lib/firewall-lib.ts';
import { serve } from './lib/portmap-lib.ts';

/** Answers `pong NAME` to an empty request; relays `HOST PORT` (the reply, or `ERR code`). */
const RELAY = `const net=require('net');const name=process.argv[1];
net.createServer({allowHalfOpen:true},s=>{let b='';s.on('data',d=>b+=d);s.on('end',()=>{const [h,p]=b.trim().split(' ');
if(!h)return s.end('pong '+name);
const c=net.connect({host:h,port:+p});let d='';c.setTimeout(2000,()=>c.destroy(new Error('timeout')));
c.on('data',x=>d+=x);c.on('end',()=>s.end(d));c.on('error',e=>s.end('ERR '+(e.code||e.message)));c.end('');});}).listen(80,()=>console.log('ready'));`;

/** Asks the container at `addr` (reached from the host, which is not forwarding) to connect to host:port. */
const via = (c: CliSandbox, addr: string, host: string, port = 80): string => tcpRequest(c.sb, c.sb.host, addr, 80, host ? `${host} ${port}` : '', 8000);

function addressOf(c: CliSandbox, name: string): string {
  const ps = JSON.parse(c.cnikit(['ps', '--json']).stdout) as { name?: string; attachments: { addresses: string[] }[] }[];
  return ps.find((s) => s.name === name)?.attachments[0]?.addresses[0]?.split('/')[0] ?? '';
}

netnsSerial('cnikit network create + run: networks are isolated by default, reach the outside and each other\'s published ports; --isolate open lets others in; rm leaves nothing', async (t) => {
  const c = new CliSandbox(t, 'ci');
  const out = c.sb.outside();
  bridgeNf(c.sb, true);
  forwardPolicy(c.sb, 'DROP');
  for (const [n, extra] of [['a', []], ['b', []], ['o', ['--isolate', 'open']]] as const) t.is(c.create(n, ...extra).code, 0, n);
  await serve(c.sb, out, 'outside', 8000);
  const run = (net: string, name: string, ...more: string[]) => c.start(['--network', net, '--name', name, ...more], [NODE, '-e', RELAY, name]);
  const started = [await run('a', 'a1'), await run('a', 'a2'), await run('b', 'b1', '-p', '8081:80'), await run('o', 'o1')];
  const [a1, a2, b1, o1] = ['a1', 'a2', 'b1', 'o1'].map((n) => addressOf(c, n));

  t.is(via(c, a1!, a2!), 'pong a2', 'inside network a');
  t.regex(via(c, a1!, b1!), /^ERR /, 'a -> b by address');
  t.regex(via(c, b1!, a1!), /^ERR /, 'b -> a by address');
  t.is(via(c, a1!, '198.51.100.1', 8081), 'pong b1', 'a -> b\'s published port through the host address');
  t.is(via(c, a1!, '198.51.100.2', 8000), 'outside 198.51.100.1', 'a -> the outside');
  t.is(via(c, b1!, '198.51.100.2', 8000), 'outside 198.51.100.1', 'b -> the outside');
  t.is(via(c, a1!, o1!), 'pong o1', 'a -> o: o takes anyone (--isolate open)');
  t.regex(via(c, o1!, a1!), /^ERR /, 'o -> a: a takes no one from other networks');
  t.regex(iptablesS(c.sb), /-A FORWARD -m mark --mark 0x10000\/0x10000 -m comment --comment "cnikit firewall: /);

  for (const s of started) s.child.kill('SIGTERM');
  await Promise.all(started.map((s) => s.exited));
  for (const n of ['a', 'b', 'o']) t.is(c.cnikit(['network', 'rm', n]).code, 0, n);
  t.deepEqual(setComments(c.sb, 'firewall_bridges'), [], 'no network state left');
  t.deepEqual(setComments(c.sb, 'firewall_ctr4'), []);
  t.notRegex(iptablesS(c.sb), /cnikit/, 'our rule left iptables with the last container');
  t.deepEqual(c.leftovers(), []);
});

netnsSerial('cnikit network create --isolate strict: its containers reach each other, the outside and published ports, and no other network by address, open ones included, either way', async (t) => {
  const c = new CliSandbox(t, 'cs');
  const out = c.sb.outside();
  bridgeNf(c.sb, true);
  forwardPolicy(c.sb, 'DROP');
  for (const [n, extra] of [['s', ['--isolate', 'strict']], ['o', ['--isolate', 'open']], ['d', []]] as const) t.is(c.create(n, ...extra).code, 0, n);
  const fw = (JSON.parse(readFileSync(join(c.netconf, 's.conflist'), 'utf8')).plugins as Record<string, unknown>[]).find((p) => p.type === 'firewall');
  t.deepEqual(fw, { type: 'firewall', ingressPolicy: 'same-bridge', strictIsolation: true }, 'netavark\'s strict, not the reference\'s isolated');
  const ls = JSON.parse(c.cnikit(['network', 'ls', '--json']).stdout) as { name: string; isolation: string }[];
  t.deepEqual(ls.map((n) => [n.name, n.isolation]).sort(), [['d', 'same-bridge'], ['o', 'open'], ['s', 'strict']]);
  await serve(c.sb, out, 'outside', 8000);
  const run = (net: string, name: string, ...more: string[]) => c.start(['--network', net, '--name', name, ...more], [NODE, '-e', RELAY, name]);
  const started = [await run('s', 's1', '-p', '8084:80'), await run('s', 's2'), await run('o', 'o1', '-p', '8085:80'), await run('d', 'd1')];
  const [s1, s2, o1, d1] = ['s1', 's2', 'o1', 'd1'].map((n) => addressOf(c, n));

  t.is(via(c, s1!, s2!), 'pong s2', 'inside the strict network');
  t.is(via(c, s1!, 's2', 80), 'pong s2', 'by name too');
  t.is(via(c, s1!, '198.51.100.2', 8000), 'outside 198.51.100.1', 's -> the outside');
  t.is(via(c, d1!, o1!), 'pong o1', 'd -> o: o takes anyone');
  t.regex(via(c, s1!, o1!), /^ERR /, 's -> o: a strict network reaches no other network, not even an open one');
  t.regex(via(c, o1!, s1!), /^ERR /, 'o -> s');
  t.regex(via(c, s1!, d1!), /^ERR /, 's -> d');
  t.regex(via(c, d1!, s1!), /^ERR /, 'd -> s');
  t.is(via(c, s1!, '198.51.100.1', 8085), 'pong o1', 's -> o\'s published port through the host address');
  t.is(via(c, o1!, '198.51.100.1', 8084), 'pong s1', 'o -> s\'s published port through the host address');

  for (const s of started) s.child.kill('SIGTERM');
  await Promise.all(started.map((s) => s.exited));
  t.deepEqual(setComments(c.sb, 'firewall_strict'), [], 'the last container took the strict element with it');
  for (const n of ['s', 'o', 'd']) t.is(c.cnikit(['network', 'rm', n]).code, 0, n);
  t.deepEqual(setComments(c.sb, 'firewall_bridges'), []);
  t.notRegex(iptablesS(c.sb), /cnikit/);
  t.deepEqual(c.leftovers(), []);
});

netnsSerial('cnikit network create --internal: containers reach each other by name and nothing outside, even with a route; --no-icc: not even each other', async (t) => {
  const c = new CliSandbox(t, 'cn');
  const out = c.sb.outside();
  bridgeNf(c.sb, true);
  forwardPolicy(c.sb, 'DROP');
  t.is(c.create('in', '--internal', '--subnet', '10.82.1.0/24').code, 0);
  t.is(c.create('noicc', '--no-icc', '--subnet', '10.82.2.0/24').code, 0);
  await serve(c.sb, out, 'outside', 8000);
  // An internal network has no default route; the container adds one to show the firewall stops it anyway.
  const withRoute = (gw: string, name: string) => ['sh', '-c', `ip route add default via ${gw} 2>/dev/null; exec ${NODE} -e "$0" ${name}`, RELAY];
  const started = [
    await c.start(['--network', 'in', '--name', 'i1'], withRoute('10.82.1.1', 'i1')),
    await c.start(['--network', 'in', '--name', 'i2'], withRoute('10.82.1.1', 'i2')),
    await c.start(['--network', 'noicc', '--name', 'n1'], [NODE, '-e', RELAY, 'n1']),
    await c.start(['--network', 'noicc', '--name', 'n2'], [NODE, '-e', RELAY, 'n2']),
  ];
  const [i1, i2, n1, n2] = ['i1', 'i2', 'n1', 'n2'].map((n) => addressOf(c, n));
  t.is(via(c, i1!, 'i2', 80), 'pong i2', 'i1 -> i2 by name');
  t.is(via(c, i1!, i2!), 'pong i2', 'and by address');
  t.regex(via(c, i1!, '198.51.100.2', 8000), /^ERR /, 'no way out of an internal network');
  t.regex(via(c, i1!, n1!), /^ERR /, 'nor into another network');
  t.regex(via(c, n1!, n2!), /^ERR /, '--no-icc: n1 -> n2 dropped');
  t.is(via(c, n1!, '198.51.100.2', 8000), 'outside 198.51.100.1', '--no-icc: n1 still goes out');
  for (const s of started) s.child.kill('SIGTERM');
  await Promise.all(started.map((s) => s.exited));
  for (const n of ['in', 'noicc']) t.is(c.cnikit(['network', 'rm', n]).code, 0, n);
  t.deepEqual(setComments(c.sb, 'firewall_internal'), []);
  t.notRegex(iptablesS(c.sb), /cnikit/);
  t.deepEqual(c.leftovers(), []);
});

/**
 * Docker's embedded resolver, black box: dnsname with `"resolver": "127.0.0.11"` makes the
 * responder answer at 127.0.0.11:53 (UDP and TCP) inside each container's own netns, with no
 * DNAT: a container on two networks resolves the names of both and nothing of a third, names
 * outside are forwarded from the host side (a fake systemd-resolved on 127.0.0.53 in the
 * sandbox host) and cached, an internal network refuses them, and a namespace deleted without
 * DEL is let go of (its sockets closed, the namespace really freed) within seconds.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BIN, NODE, PONG_SERVER, Sandbox, ip, startUntilReady, until } from './lib/sandbox.ts';

const CNIKIT = join(BIN, 'cnikit');
import { netnsSerial } from './lib/netns-test.ts';
import { type Ctr, addIface, ask, dnsname, fakeUpstream, makeCtr, makeNet, netnsHolders, netnsInode, pidsIn, resolve, responderPid, responderPidFile, socketsIn, stoppedServing } from './lib/dns-lib.ts';

const A = { name: 'neta', bridge: 'br-a', v4: '10.89.0' };
const B = { name: 'netb', bridge: 'br-b', v4: '10.90.0' };
const C = { name: 'netc', bridge: 'br-c', v4: '10.91.0' };
const EMBEDDED = { resolver: '127.0.0.11', upstreams: [] as string[] };
const at = (name: string, more: Record<string, unknown> = {}) => ({ server: '127.0.0.11', name, ...more });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function setup(t: { teardown(fn: () => void): void }) {
  const sb = new Sandbox('e');
  t.teardown(() => sb.cleanup());
  for (const n of [A, B, C]) makeNet(sb, n);
  return sb;
}

function add(t: { is(a: unknown, b: unknown, m?: string): void }, sb: Sandbox, c: Ctr, name: string, extra: Record<string, unknown> = {}) {
  const r = dnsname(sb, 'ADD', c, name, { ...EMBEDDED, ...extra });
  t.is(r.code, 0, `ADD ${name}: ${r.stdout} ${r.stderr}`);
  return r;
}

netnsSerial('127.0.0.11: a container on two networks resolves the peers of both and nothing of a third, over UDP and TCP', async (t) => {
  const sb = setup(t);
  const a1 = makeCtr(sb, A, 'a1', 5);
  const b1 = makeCtr(sb, B, 'b1', 5);
  const c1 = makeCtr(sb, C, 'c1', 5);
  const mA = makeCtr(sb, A, 'm', 9);
  const mB = addIface(sb, mA, B, 'eth1', 9);
  const r = add(t, sb, mA, 'multi', { runtimeConfig: { aliases: { neta: ['both'] } } });
  t.deepEqual(r.json.dns, { nameservers: ['127.0.0.11'], search: ['dns.cnikit'] }, 'the resolver the runtime writes into resolv.conf');
  add(t, sb, mB, 'multi', { runtimeConfig: { aliases: { netb: ['both'] } } });
  add(t, sb, a1, 'web');
  add(t, sb, b1, 'db');
  add(t, sb, c1, 'cache');

  const res = ask(sb, mA.ns, [
    at('web'), at('db.dns.cnikit'), at('cache'), at('cache.dns.cnikit'),
    at('web', { tcp: true }), at('db', { tcp: true }), at('cache', { tcp: true }),
    at('multi'), at('both'), at('5.0.89.10.in-addr.arpa', { type: 'PTR' }), at('5.0.91.10.in-addr.arpa', { type: 'PTR' }),
  ]);
  t.deepEqual(res[0]!.answers, ['10.89.0.5'], 'a peer on the first network');
  t.deepEqual(res[1]!.answers, ['10.90.0.5'], 'a peer on the second network');
  t.is(res[2]!.rcode, 5, 'nothing of a network it is not on: a short name is not ours, and there is no upstream');
  t.is(res[3]!.rcode, 3, 'a name in the domain that none of its networks has: NXDOMAIN');
  t.deepEqual(res[4]!.answers, ['10.89.0.5'], 'TCP');
  t.deepEqual(res[5]!.answers, ['10.90.0.5']);
  t.is(res[6]!.rcode, 5);
  t.deepEqual(res[7]!.answers, ['10.89.0.9'], 'a name on both networks: the first network (by name, as Docker orders them) answers');
  t.deepEqual(res[8]!.answers, ['10.89.0.9']);
  t.deepEqual(res[9]!.answers, ['web.dns.cnikit']);
  t.not(res[10]!.rcode, 0, 'no PTR from a network it is not on');

  // Each container sees its own networks only.
  t.deepEqual(resolve(sb, a1.ns, at('multi')), ['10.89.0.9'], 'on A, the multi-homed container has its A address');
  t.deepEqual(resolve(sb, b1.ns, at('multi')), ['10.90.0.9'], 'on B, its B address');
  t.is(resolve(sb, a1.ns, at('db.dns.cnikit')), 'rcode 3');
  t.is(resolve(sb, c1.ns, at('web.dns.cnikit', { tcp: true })), 'rcode 3');
  t.deepEqual(resolve(sb, c1.ns, at('cache', { tcp: true })), ['10.91.0.5']);
  // No DNAT, and no gateway listener: the gateway has nothing on port 53.
  t.truthy(ask(sb, a1.ns, [{ server: '10.89.0.1', name: 'web', timeoutMs: 500 }])[0]!.error, 'nothing answers on the gateway');
  t.deepEqual(JSON.parse(sb.exec(a1.ns, 'nft', ['-j', 'list', 'ruleset']).stdout || '{"nftables":[]}').nftables.filter((x: any) => x.rule), [], 'no DNAT rule in the container');

  // CHECK asks 127.0.0.11 from inside the container.
  const check = dnsname(sb, 'CHECK', b1, 'db', EMBEDDED);
  t.is(check.code, 0, check.stdout);
  // DEL of every attachment: the responder stops.
  const pid = responderPid(sb);
  for (const [c, n] of [[mA, 'multi'], [mB, 'multi'], [a1, 'web'], [b1, 'db'], [c1, 'cache']] as const) t.is(dnsname(sb, 'DEL', c, n, EMBEDDED).code, 0);
  t.false(existsSync(responderPidFile(sb)));
  t.true(await until(() => stoppedServing(sb, pid)), 'the responder stopped');
});

netnsSerial('127.0.0.11 forwards from the host side (a stub resolver on 127.0.0.53 keeps working) and caches; internal refuses', async (t) => {
  const sb = setup(t);
  const up = await fakeUpstream(sb, sb.host, '127.0.0.53', 60);
  // The sandbox host's resolv.conf points at its stub resolver, as systemd-resolved's does.
  const resolvConf = join(sb.tmp, 'resolv.conf');
  writeFileSync(resolvConf, 'nameserver 127.0.0.53\noptions edns0 trust-ad\n');
  const a1 = makeCtr(sb, A, 'a1', 5);
  const c1 = makeCtr(sb, C, 'c1', 5);
  add(t, sb, a1, 'web', { upstreams: undefined, resolvConf });
  add(t, sb, c1, 'cache', { upstreams: undefined, resolvConf, internal: true });
  const res = ask(sb, a1.ns, [at('example.org'), at('example.org'), at('EXAMPLE.org', { tcp: true }), at('nxname.example.org'), at('nxname.example.org'), at('web')]);
  t.deepEqual(res[0]!.answers, ['203.0.113.7'], 'forwarded to 127.0.0.53 of the host');
  t.deepEqual(res[1]!.answers, ['203.0.113.7']);
  t.deepEqual(res[2]!.answers, ['203.0.113.7'], 'over TCP too');
  t.is(res[3]!.rcode, 3, 'NXDOMAIN relayed');
  t.is(res[4]!.rcode, 3);
  t.deepEqual(res[5]!.answers, ['10.89.0.5']);
  t.deepEqual(await up.queries(), ['example.org 1', 'nxname.example.org 1'], 'a repeated name (also a negative answer) is answered from the cache');
  // An internal network answers its own names only.
  const internal = ask(sb, c1.ns, [at('cache'), at('example.org'), at('other.example.org', { tcp: true })]);
  t.deepEqual(internal[0]!.answers, ['10.91.0.5']);
  t.is(internal[1]!.rcode, 5, 'REFUSED');
  t.is(internal[2]!.rcode, 5);
  t.deepEqual(await up.queries(), ['example.org 1', 'nxname.example.org 1'], 'nothing forwarded for the internal network');
});

netnsSerial('a container netns deleted without DEL: its 127.0.0.11 sockets are closed within seconds and the namespace is freed', async (t) => {
  const sb = setup(t);
  const a1 = makeCtr(sb, A, 'a1', 5);
  const a2 = makeCtr(sb, A, 'a2', 6);
  add(t, sb, a1, 'web');
  add(t, sb, a2, 'db');
  const pid = responderPid(sb);
  const ino = netnsInode(a1.ns);
  t.is(socketsIn(pid, ino), 2, 'UDP and TCP at 127.0.0.11 in the container');
  t.deepEqual(resolve(sb, a2.ns, at('web')), ['10.89.0.5']);
  // From this process's own mount namespace (not through `ip netns exec`), where the check looks.
  ip('netns', 'del', a1.ns);
  t.true(await until(() => socketsIn(pid, ino) === 0), 'the responder let go of the namespace');
  const a1Path = Sandbox.path(a1.ns);
  t.true(await until(() => netnsHolders(ino, { path: a1Path }).length === 0, 3000), `nothing else holds it (the namespace is freed): ${netnsHolders(ino, { path: a1Path }).join(', ')}`);
  t.is(resolve(sb, a2.ns, at('web.dns.cnikit')), 'rcode 3', 'its records are gone');
  t.deepEqual(resolve(sb, a2.ns, at('db')), ['10.89.0.6'], 'the other container still answered, by the same responder');
  t.is(responderPid(sb), pid);
  t.true(await until(() => !readFileSync(join(sb.tmp, 'dns', 'neta.records'), 'utf8').includes(`${ino}`)), 'pruned from disk');
  // The last one deleted without DEL: the responder stops, nothing holds either namespace.
  const ino2 = netnsInode(a2.ns);
  ip('netns', 'del', a2.ns);
  t.true(await until(() => stoppedServing(sb, pid)), 'the responder stopped');
  const a2Path = Sandbox.path(a2.ns);
  t.true(await until(() => netnsHolders(ino2, { path: a2Path }).length === 0, 3000), netnsHolders(ino2, { path: a2Path }).join(', '));
  t.true(await until(() => !existsSync(join(sb.tmp, 'dns', 'neta.records'))), 'the records file pruned');
});

netnsSerial('cnikit run on two networks at 127.0.0.11: resolv.conf names 127.0.0.11, and the command reaches a peer of each by name', async (t) => {
  const sb = new Sandbox('r');
  t.teardown(() => sb.cleanup());
  const netconf = join(sb.tmp, 'net.d');
  mkdirSync(netconf);
  for (const [name, br, subnet] of [['neta', 'cnkbra', '10.125.0.0/24'], ['netb', 'cnkbrb', '10.126.0.0/24']] as const) {
    writeFileSync(join(netconf, `${name}.conflist`), JSON.stringify({
      cniVersion: '1.0.0', name, plugins: [
        { type: 'bridge', bridge: br, isGateway: true, ipam: { type: 'host-local', dataDir: join(sb.tmp, 'ipam'), ranges: [[{ subnet }]], routes: [{ dst: '0.0.0.0/0' }] } },
        { type: 'dnsname', domainName: 'run.internal', recordsDir: join(sb.tmp, 'dns'), resolver: '127.0.0.11', upstreams: [] },
      ],
    }));
  }
  const env = { PATH: process.env.PATH, NETCONFPATH: netconf, CNI_CACHE_DIR: join(sb.tmp, 'cache'), CNI_PATH: BIN, CNIKIT_STATE_DIR: join(sb.tmp, 'state') };
  const run = (args: string[]) => [CNIKIT, ['run', '-q', '--netns-dir', join(sb.tmp, 'netns'), ...args]] as const;
  const peers = await Promise.all([['neta', 'web'], ['netb', 'db']].map(([net, name]) => {
    const [cmd, args] = run(['--network', net!, '--name', name!, '--', NODE, '-e', PONG_SERVER]);
    return startUntilReady(sb.host, cmd, [...args], env);
  })).catch((err) => { t.log(readFileSync(join(sb.tmp, 'dns', 'responder.log'), 'utf8')); throw err; });
  const client = `const fs=require('fs');console.log(fs.readFileSync('/etc/resolv.conf','utf8').split('\\n').filter(l=>l.startsWith('nameserver')).join('|'));
const ask=(h)=>new Promise((res)=>require('net').connect({host:h,port:80},function(){this.end(h)}).on('data',d=>res(String(d))).on('error',e=>res(String(e))));
(async()=>{console.log(await ask('web'));console.log(await ask('db.run.internal'));process.exit(0)})();`;
  const [cmd, args] = run(['--network', 'neta', '--network', 'netb', '--name', 'multi', '--', NODE, '-e', client]);
  const r = sb.exec(sb.host, cmd, [...args], { env });
  t.is(r.status, 0, r.stdout + r.stderr);
  t.deepEqual(r.stdout.trim().split('\n'), ['nameserver 127.0.0.11', 'pong:web', 'pong:db.run.internal']);
  for (const p of peers) {
    p.child.kill('SIGTERM');
    await p.exited;
  }
  t.true(await until(() => !existsSync(responderPidFile(sb))), 'the last container gone, the responder stopped');
});

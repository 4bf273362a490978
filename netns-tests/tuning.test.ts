/**
 * tuning end to end: dist/bin/tuning run as a runtime runs it, in a sandbox host namespace,
 * chained after bridge as Podman's 0.4.0 chain has it, and alone after a veth made with `ip`;
 * and the reference's /usr/lib/cni/tuning (1.1.1) on the same calls. What each plugin did is read
 * back with `ip -j -d link` in the container namespace and /proc/sys through `ip netns exec`.
 * Every state path (the restore files, IPAM) is in the sandbox's temp dir.
 */
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type PluginCall, type PluginRun, Sandbox, ip, ipJson } from './lib/sandbox.ts';
import { netnsTest } from './lib/netns-test.ts';
import { NET_A, bridgeConf } from './lib/portmap-lib.ts';

const REF = '/usr/lib/cni/tuning';
const refTest = netnsTest.needs({ met: existsSync(REF), reason: `no reference plugin at ${REF}` });

/** What `ip -j -d link show` says of the attributes tuning sets (it leaves out a txqlen of 0). */
interface LinkView { address: string; mtu: number; txqlen: number; promisc: boolean; allmulti: boolean; promiscuity: number }

function linkView(ns: string, dev = 'eth0'): LinkView {
  const [l] = ipJson(ns, '-d', 'link', 'show', 'dev', dev);
  return {
    address: l.address, mtu: l.mtu, txqlen: l.txqlen ?? 0, promiscuity: l.promiscuity,
    promisc: l.flags.includes('PROMISC'), allmulti: l.flags.includes('ALLMULTI'),
  };
}

/** Reads /proc/sys/`path` inside `ns` (whitespace as the kernel prints it, without the newline). */
function sysctlIn(sb: Sandbox, ns: string, path: string): string {
  const r = sb.exec(ns, 'cat', [`/proc/sys/${path}`]);
  if (r.status !== 0) throw new Error(`cat /proc/sys/${path} in ${ns}: ${r.stderr}`);
  return r.stdout.replace(/\n$/, '');
}

function sysctlsIn(sb: Sandbox, ns: string, paths: readonly string[]): Record<string, string> {
  return Object.fromEntries(paths.map((p) => [p, sysctlIn(sb, ns, p)]));
}

/** A veth end `eth0` (up, MAC fixed so that two namespaces start alike) in container namespace `ns`, as a main plugin leaves it. */
function veth(ns: string, mac = '0a:58:0a:4d:00:02'): void {
  ip('-n', ns, 'link', 'add', 'eth0', 'address', mac, 'type', 'veth', 'peer', 'name', 'peer0');
  ip('-n', ns, 'link', 'set', 'eth0', 'up');
}

/** The prevResult a main plugin would pass for eth0 in `ns`. */
function prevOf(ns: string, version: string, mac = '0a:58:0a:4d:00:02'): Record<string, unknown> {
  return { cniVersion: version, interfaces: [{ name: 'eth0', mac, sandbox: Sandbox.path(ns) }], ips: [{ ...(version < '1.0.0' ? { version: '4' } : {}), address: '10.77.0.9/24', interface: 0 }] };
}

function tuningConf(sb: Sandbox, version: string, prevResult: unknown, keys: Record<string, unknown>, dataDir = 'tuning'): Record<string, unknown> {
  return { cniVersion: version, name: NET_A.name, type: 'tuning', dataDir: join(sb.tmp, dataDir), ...keys, prevResult };
}

/** Runs the reference plugin exactly as sb.plugin runs ours. */
function reference(sb: Sandbox, c: PluginCall): PluginRun {
  const r = sb.exec(sb.host, REF, [], { input: JSON.stringify(c.conf), env: sb.cniEnv({ ...c, path: '/usr/lib/cni' }) });
  let json: unknown;
  try { json = JSON.parse(r.stdout); } catch { json = undefined; }
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr, json };
}

function stateFiles(sb: Sandbox, dataDir = 'tuning'): string[] {
  const d = join(sb.tmp, dataDir);
  return existsSync(d) ? readdirSync(d) : [];
}

/** Every key both plugins know (1.1.1 has no txQLen), with sysctls per-interface, per-namespace and a vector. */
const COMMON = {
  mac: 'c2:11:22:33:44:55', mtu: 1400, promisc: true, allmulti: true,
  sysctl: { 'net.ipv4.conf.eth0.arp_ignore': '1', 'net.ipv4.conf.all.arp_announce': '2', 'net.core.somaxconn': '512', 'net.ipv4.tcp_rmem': '4096\t65536\t1048576' },
};
const SYSCTLS = ['net/ipv4/conf/eth0/arp_ignore', 'net/ipv4/conf/all/arp_announce', 'net/core/somaxconn', 'net/ipv4/tcp_rmem'];
/** What the host's (the sandbox host's) own values must stay. */
const HOST_SYSCTLS = ['net/ipv4/conf/all/arp_announce', 'net/core/somaxconn', 'net/ipv4/tcp_rmem'];

netnsTest('[0.4.0] Podman\'s chain, bridge then tuning: ADD sets every key, CHECK passes then fails after a change, DEL restores everything; the host\'s sysctls never move', (t) => {
  const sb = new Sandbox('tp');
  t.teardown(() => sb.cleanup());
  const ns = sb.container('c1');
  const hostBefore = sysctlsIn(sb, sb.host, HOST_SYSCTLS);
  const br = sb.plugin('bridge', { command: 'ADD', containerId: 'ctr1', netns: Sandbox.path(ns), conf: bridgeConf(sb, NET_A, { cniVersion: '0.4.0' }) });
  t.is(br.code, 0, br.stdout + br.stderr);
  const before = linkView(ns);
  const sysBefore = sysctlsIn(sb, ns, SYSCTLS);

  // Podman's own entry is {"type":"tuning"}: the result passes through unchanged.
  const plain = sb.plugin('tuning', { command: 'ADD', containerId: 'ctr1', netns: Sandbox.path(ns), conf: { cniVersion: '0.4.0', name: NET_A.name, type: 'tuning', dataDir: join(sb.tmp, 'tuning'), prevResult: br.json } });
  t.is(plain.code, 0, plain.stdout);
  t.deepEqual(plain.json, br.json);
  t.deepEqual(stateFiles(sb), [], 'nothing changed, nothing saved');

  const keys = { ...COMMON, txQLen: 500, capabilities: { mac: true } };
  const conf = tuningConf(sb, '0.4.0', br.json, keys);
  const add = sb.plugin('tuning', { command: 'ADD', containerId: 'ctr1', netns: Sandbox.path(ns), conf });
  t.is(add.code, 0, add.stdout + add.stderr);
  t.is(add.json.cniVersion, '0.4.0');
  t.deepEqual(add.json.interfaces.map((i: { mac: string }) => i.mac), [br.json.interfaces[0].mac, br.json.interfaces[1].mac, 'c2:11:22:33:44:55'], 'the MAC of eth0 only');
  t.deepEqual(add.json.ips, br.json.ips);
  t.like(linkView(ns), { address: 'c2:11:22:33:44:55', mtu: 1400, txqlen: 500, promisc: true, allmulti: true });
  t.deepEqual(sysctlsIn(sb, ns, SYSCTLS), {
    'net/ipv4/conf/eth0/arp_ignore': '1', 'net/ipv4/conf/all/arp_announce': '2', 'net/core/somaxconn': '512', 'net/ipv4/tcp_rmem': '4096\t65536\t1048576',
  });
  t.deepEqual(sysctlsIn(sb, sb.host, HOST_SYSCTLS), hostBefore, 'the host namespace\'s values are its own');

  const check = { command: 'CHECK', containerId: 'ctr1', netns: Sandbox.path(ns), conf: { ...conf, prevResult: add.json } };
  const ok = sb.plugin('tuning', check);
  t.is(ok.code, 0, ok.stdout);
  ip('-n', ns, 'link', 'set', 'eth0', 'mtu', '1450');
  sb.exec(ns, 'sysctl', ['-qw', 'net.core.somaxconn=100']);
  const bad = sb.plugin('tuning', check);
  t.is(bad.code, 1);
  t.is(bad.json.msg, 'Tuning configured value of /proc/sys/net/core/somaxconn is 512, current value is 100');
  t.is(bad.json.details, 'Tuning configured MTU of eth0 is 1400, current value is 1450');

  const del = sb.plugin('tuning', { command: 'DEL', containerId: 'ctr1', netns: Sandbox.path(ns), conf: { ...conf, prevResult: add.json } });
  t.is(del.code, 0, del.stdout + del.stderr);
  t.deepEqual(linkView(ns), before);
  t.deepEqual(sysctlsIn(sb, ns, SYSCTLS), sysBefore, 'sysctls restored too (the reference never does)');
  t.deepEqual(stateFiles(sb), []);
  t.deepEqual(sysctlsIn(sb, sb.host, HOST_SYSCTLS), hostBefore);
  t.is(sb.plugin('tuning', { command: 'DEL', containerId: 'ctr1', netns: Sandbox.path(ns), conf }).code, 0, 'DEL again');
  t.is(sb.plugin('bridge', { command: 'DEL', containerId: 'ctr1', netns: Sandbox.path(ns), conf: { ...bridgeConf(sb, NET_A, { cniVersion: '0.4.0' }), prevResult: br.json } }).code, 0);
});

for (const version of ['0.4.0', '1.0.0', '1.1.0']) {
  netnsTest(`[${version}] alone after a veth: IFNAME keys, args.cni and the mac capability, CHECK, DEL`, (t) => {
    const sb = new Sandbox('ta');
    t.teardown(() => sb.cleanup());
    const ns = sb.container('c1');
    veth(ns);
    const before = linkView(ns);
    const paths = ['net/ipv4/conf/eth0/arp_filter', 'net/ipv6/conf/eth0/accept_ra', 'net/ipv4/ip_forward'];
    const sysBefore = sysctlsIn(sb, ns, paths);
    const conf = tuningConf(sb, version, prevOf(ns, version), {
      mac: '02:00:00:00:00:01', mtu: 9000, allmulti: false, txQLen: 0,
      sysctl: { 'net.ipv4.conf.IFNAME.arp_filter': '1', 'net/ipv6/conf/IFNAME/accept_ra': '0', 'net.ipv4.route.flush': '1' },
      runtimeConfig: { mac: '02:00:00:00:00:02' },
      args: { cni: { mtu: 1280, sysctl: { 'net.ipv4.ip_forward': '1' } } },
    });
    const call = { containerId: 'ctr1', netns: Sandbox.path(ns), conf, cniArgs: 'IgnoreUnknown=1;K8S_POD_NAME=web;MAC=02:00:00:00:00:03' };
    const add = sb.plugin('tuning', { command: 'ADD', ...call });
    t.is(add.code, 0, add.stdout + add.stderr);
    t.is(add.json.cniVersion, version);
    t.is(add.json.interfaces[0].mac, '02:00:00:00:00:02', 'runtimeConfig.mac wins over CNI_ARGS MAC and mac');
    t.like(linkView(ns), { address: '02:00:00:00:00:02', mtu: 1280, txqlen: 0, allmulti: false, promisc: false });
    t.deepEqual(sysctlsIn(sb, ns, paths), { 'net/ipv4/conf/eth0/arp_filter': '1', 'net/ipv6/conf/eth0/accept_ra': '0', 'net/ipv4/ip_forward': '1' });

    const check = sb.plugin('tuning', { command: 'CHECK', ...call, conf: { ...conf, prevResult: add.json } });
    t.is(check.code, 0, check.stdout);
    ip('-n', ns, 'link', 'set', 'eth0', 'promisc', 'on');
    const bad = sb.plugin('tuning', { command: 'CHECK', ...call, conf: { ...conf, prevResult: add.json } });
    t.is(bad.json?.msg, 'Tuning link eth0 configured promisc is false, current value is 1', 'promisc compared both ways');
    ip('-n', ns, 'link', 'set', 'eth0', 'promisc', 'off');

    const del = sb.plugin('tuning', { command: 'DEL', ...call });
    t.is(del.code, 0, del.stdout + del.stderr);
    t.deepEqual(linkView(ns), before);
    t.deepEqual(sysctlsIn(sb, ns, paths), sysBefore);
    t.deepEqual(stateFiles(sb), []);
  });
}

netnsTest('an interface name with a dot (as a VLAN\'s): IFNAME keeps it, as the reference\'s main does', (t) => {
  const sb = new Sandbox('tv');
  t.teardown(() => sb.cleanup());
  const ns = sb.container('c1');
  // A veth of that name: the 8021q module may be missing, and only the name matters here.
  ip('-n', ns, 'link', 'add', 'eth0.100', 'type', 'veth', 'peer', 'name', 'peer0');
  const path = 'net/ipv4/conf/eth0.100/arp_ignore';
  const conf = tuningConf(sb, '1.0.0', { cniVersion: '1.0.0', interfaces: [{ name: 'eth0.100', sandbox: Sandbox.path(ns) }] }, { sysctl: { 'net.ipv4.conf.IFNAME.arp_ignore': '2' }, mtu: 1400 });
  const call = { containerId: 'ctr1', netns: Sandbox.path(ns), ifName: 'eth0.100', conf };
  const add = sb.plugin('tuning', { command: 'ADD', ...call });
  t.is(add.code, 0, add.stdout);
  t.is(sysctlIn(sb, ns, path), '2');
  t.is(linkView(ns, 'eth0.100').mtu, 1400);
  t.is(sb.plugin('tuning', { command: 'CHECK', ...call }).code, 0);
  t.is(sb.plugin('tuning', { command: 'DEL', ...call }).code, 0);
  t.is(sysctlIn(sb, ns, path), '0');
  t.is(linkView(ns, 'eth0.100').mtu, 1500);
});

netnsTest('a repeated ADD keeps the originals: DEL after three ADDs restores the MAC and MTU of before the first', (t) => {
  const sb = new Sandbox('tr');
  t.teardown(() => sb.cleanup());
  const ns = sb.container('c1');
  veth(ns);
  const before = linkView(ns);
  const arp = sysctlIn(sb, ns, 'net/ipv4/conf/eth0/arp_ignore');
  for (const [i, mac] of ['02:00:00:00:00:01', '02:00:00:00:00:02', '02:00:00:00:00:03'].entries()) {
    const r = sb.plugin('tuning', { command: 'ADD', containerId: 'ctr1', netns: Sandbox.path(ns), conf: tuningConf(sb, '1.0.0', prevOf(ns, '1.0.0'), { mac, mtu: 1400 - i * 10, sysctl: { 'net.ipv4.conf.eth0.arp_ignore': String(i + 1) } }) });
    t.is(r.code, 0, r.stdout);
  }
  t.like(linkView(ns), { address: '02:00:00:00:00:03', mtu: 1380 });
  const del = sb.plugin('tuning', { command: 'DEL', containerId: 'ctr1', netns: Sandbox.path(ns), conf: tuningConf(sb, '1.0.0', undefined, {}) });
  t.is(del.code, 0, del.stdout);
  t.deepEqual(linkView(ns), before);
  t.is(sysctlIn(sb, ns, 'net/ipv4/conf/eth0/arp_ignore'), arp);
});

netnsTest('a failed ADD (an MTU the kernel refuses, after the sysctls and the MAC were set) restores them and leaves no restore file', (t) => {
  const sb = new Sandbox('tf');
  t.teardown(() => sb.cleanup());
  const ns = sb.container('c1');
  veth(ns);
  const before = linkView(ns);
  const sysBefore = sysctlsIn(sb, ns, SYSCTLS);
  const add = sb.plugin('tuning', { command: 'ADD', containerId: 'ctr1', netns: Sandbox.path(ns), conf: tuningConf(sb, '1.0.0', prevOf(ns, '1.0.0'), { ...COMMON, mtu: 70000 }) });
  t.is(add.code, 1);
  t.is(add.json.code, 7);
  t.is(add.json.msg, 'failed to set mtu 70000 on "eth0"');
  t.regex(add.json.details, /^mtu: .*(invalid argument|EINVAL)/i);
  t.deepEqual(linkView(ns), before);
  t.deepEqual(sysctlsIn(sb, ns, SYSCTLS), sysBefore);
  t.deepEqual(stateFiles(sb), []);
});

const badInput: [string, Record<string, unknown>, RegExp][] = [
  ['a sysctl outside net/', { mac: '02:00:00:00:00:01', sysctl: { 'net.core.somaxconn': '9', 'kernel.hostname': 'x' } }, /^invalid net sysctl key: "kernel\/hostname": sysctl\["kernel\.hostname"\]/],
  ['a sysctl value that is not a string', { mtu: 1400, sysctl: { 'net.core.somaxconn': 9 } }, /sysctl\.net\.core\.somaxconn: expected string, got number/],
  ['args.cni.sysctl without a top-level sysctl', { mtu: 1400, args: { cni: { sysctl: { 'net.core.somaxconn': '9' } } } }, /args\.cni\.sysctl: needs a top-level "sysctl"/],
  ['a sysctl the kernel does not have', { mtu: 1400, sysctl: { 'net.core.somaxconn': '9', 'net.ipv4.nonexist': '1' } }, /^failed to read \/proc\/sys\/net\/ipv4\/nonexist: sysctl\["net\.ipv4\.nonexist"\]/],
  ['a bad MAC', { mtu: 1400, mac: 'zz' }, /mac: "zz" is not a MAC address/],
  ['a negative txQLen', { mtu: 1400, txQLen: -1 }, /txQLen: must be a non-negative integer/],
];
for (const [what, keys, re] of badInput) {
  netnsTest(`bad input, nothing changed: ${what}`, (t) => {
    const sb = new Sandbox('tb');
    t.teardown(() => sb.cleanup());
    const ns = sb.container('c1');
    veth(ns);
    const before = linkView(ns);
    const somaxconn = sysctlIn(sb, ns, 'net/core/somaxconn');
    const add = sb.plugin('tuning', { command: 'ADD', containerId: 'ctr1', netns: Sandbox.path(ns), conf: tuningConf(sb, '1.0.0', prevOf(ns, '1.0.0'), keys) });
    t.is(add.code, 1);
    t.is(add.json.code, 7);
    t.regex(`${add.json.msg}: ${add.json.details}`, re);
    t.deepEqual(linkView(ns), before);
    t.is(sysctlIn(sb, ns, 'net/core/somaxconn'), somaxconn);
    t.deepEqual(stateFiles(sb), []);
  });
}

netnsTest('the sysctlAllowlist file refuses a key it does not list, before anything changes', (t) => {
  const sb = new Sandbox('tl');
  t.teardown(() => sb.cleanup());
  const ns = sb.container('c1');
  veth(ns);
  const allow = join(sb.tmp, 'allowlist.conf');
  writeFileSync(allow, '^net\\.ipv4\\.conf\\.IFNAME\\.[a-z_]*$\n^net\\.core\\.somaxconn$\n');
  const somaxconn = sysctlIn(sb, ns, 'net/core/somaxconn');
  const mk = (sysctl: Record<string, string>) => tuningConf(sb, '1.0.0', prevOf(ns, '1.0.0'), { sysctlAllowlist: allow, sysctl });
  const refused = sb.plugin('tuning', { command: 'ADD', containerId: 'ctr1', netns: Sandbox.path(ns), conf: mk({ 'net.core.somaxconn': '9', 'net.ipv4.ip_forward': '1' }) });
  t.is(refused.json?.code, 7);
  t.is(refused.json.msg, 'Sysctl net.ipv4.ip_forward is not allowed. Only the following sysctls are allowed: [^net\\.ipv4\\.conf\\.IFNAME\\.[a-z_]*$ ^net\\.core\\.somaxconn$]');
  t.is(sysctlIn(sb, ns, 'net/core/somaxconn'), somaxconn);
  const allowed = sb.plugin('tuning', { command: 'ADD', containerId: 'ctr1', netns: Sandbox.path(ns), conf: mk({ 'net.core.somaxconn': '9', 'net.ipv4.conf.IFNAME.arp_filter': '1' }) });
  t.is(allowed.code, 0, allowed.stdout);
  t.is(sysctlIn(sb, ns, 'net/core/somaxconn'), '9');
  t.is(sb.plugin('tuning', { command: 'DEL', containerId: 'ctr1', netns: Sandbox.path(ns), conf: mk({}) }).code, 0);
  t.is(sysctlIn(sb, ns, 'net/core/somaxconn'), somaxconn);
});

netnsTest('DEL succeeds with no restore file, with the namespace gone (dropping the file), and without CNI_NETNS', (t) => {
  const sb = new Sandbox('td');
  t.teardown(() => sb.cleanup());
  const ns = sb.container('c1');
  veth(ns);
  const conf = tuningConf(sb, '1.0.0', prevOf(ns, '1.0.0'), { mtu: 1400 });
  t.is(sb.plugin('tuning', { command: 'DEL', containerId: 'ctr1', netns: Sandbox.path(ns), conf }).code, 0, 'nothing saved');
  t.is(sb.plugin('tuning', { command: 'ADD', containerId: 'ctr1', netns: Sandbox.path(ns), conf }).code, 0);
  t.deepEqual(stateFiles(sb), ['ctr1_eth0.json']);
  ip('netns', 'del', ns);
  const del = sb.plugin('tuning', { command: 'DEL', containerId: 'ctr1', netns: Sandbox.path(ns), conf });
  t.is(del.code, 0, del.stdout);
  t.deepEqual(stateFiles(sb), []);
  t.is(sb.plugin('tuning', { command: 'DEL', containerId: 'ctr1', conf: { ...conf, mtu: 'garbage' } }).code, 0, 'no netns, a config ADD would refuse');
});

refTest('the reference 1.1.1 on the same calls: the same `ip` view after ADD and after DEL; it leaves the sysctls, we restore them', (t) => {
  const sb = new Sandbox('tx');
  t.teardown(() => sb.cleanup());
  const views: Record<string, { add: LinkView; del: LinkView; sysAdd: Record<string, string>; sysDel: Record<string, string>; mac: string }> = {};
  let sysStart: Record<string, string> = {};
  let start: LinkView | undefined;
  for (const who of ['ours', 'reference'] as const) {
    const ns = sb.container(who === 'ours' ? 'c1' : 'c2');
    veth(ns);
    start = linkView(ns);
    sysStart = sysctlsIn(sb, ns, SYSCTLS);
    const c: PluginCall = { command: 'ADD', containerId: 'ctr1', netns: Sandbox.path(ns), conf: tuningConf(sb, '1.0.0', prevOf(ns, '1.0.0'), COMMON, who) };
    const run = who === 'ours' ? (x: PluginCall) => sb.plugin('tuning', x) : (x: PluginCall) => reference(sb, x);
    const add = run(c);
    t.is(add.code, 0, `${who}: ${add.stdout}${add.stderr}`);
    const v = { add: linkView(ns), sysAdd: sysctlsIn(sb, ns, SYSCTLS), mac: add.json.interfaces[0].mac } as (typeof views)[string];
    t.is(run({ ...c, command: 'CHECK' }).code, 0, `${who} CHECK`);
    const del = run({ ...c, command: 'DEL' });
    t.is(del.code, 0, `${who} DEL: ${del.stdout}`);
    v.del = linkView(ns);
    v.sysDel = sysctlsIn(sb, ns, SYSCTLS);
    views[who] = v;
  }
  t.deepEqual(views.ours!.add, views.reference!.add);
  t.deepEqual(views.ours!.sysAdd, views.reference!.sysAdd);
  t.is(views.ours!.mac, views.reference!.mac);
  t.deepEqual(views.ours!.del, views.reference!.del);
  t.deepEqual(views.ours!.del, start);
  t.deepEqual(views.ours!.sysDel, sysStart, 'ours restores the sysctls');
  t.deepEqual(views.reference!.sysDel, views.reference!.sysAdd, 'the reference leaves them as ADD set them');
});

refTest('restore files interoperate: the reference\'s DEL restores from ours, ours from the reference\'s', (t) => {
  const sb = new Sandbox('ti');
  t.teardown(() => sb.cleanup());
  for (const [adder, deleter] of [['ours', 'reference'], ['reference', 'ours']] as const) {
    const ns = sb.container(adder === 'ours' ? 'c1' : 'c2');
    veth(ns);
    const before = linkView(ns);
    const c: PluginCall = { command: 'ADD', containerId: 'ctr1', netns: Sandbox.path(ns), conf: tuningConf(sb, '1.0.0', prevOf(ns, '1.0.0'), { mac: '02:00:00:00:00:07', mtu: 1300, promisc: true, allmulti: true }, adder) };
    const add = adder === 'ours' ? sb.plugin('tuning', c) : reference(sb, c);
    t.is(add.code, 0, add.stdout);
    const text = readFileSync(join(sb.tmp, adder, 'ctr1_eth0.json'), 'utf8');
    t.regex(text, /^\{\n "mac": "0a:58:0a:4d:00:02",\n "promisc": false,\n "mtu": 1500,\n "allmulti": false/);
    const d = { ...c, command: 'DEL' };
    const del = deleter === 'ours' ? sb.plugin('tuning', d) : reference(sb, d);
    t.is(del.code, 0, del.stdout);
    t.deepEqual(linkView(ns), before, `${adder} ADD, ${deleter} DEL`);
    t.false(existsSync(join(sb.tmp, adder, 'ctr1_eth0.json')));
  }
});

/**
 * host-local end to end: the built dist/bin/host-local run as a runtime runs an IPAM plugin
 * (CNI env, config on stdin) inside a sandbox host namespace, with every lease directory under
 * sb.tmp. Side by side with the reference /usr/lib/cni/host-local (containernetworking-plugins
 * 1.1.1) on the same data directory, to show that the lease layout is the same and that leases
 * survive switching implementations in either direction.
 */
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type PluginCall, type PluginRun, Sandbox } from './lib/sandbox.ts';
import { netnsTest } from './lib/netns-test.ts';

const REF = '/usr/lib/cni/host-local';
const refTest = netnsTest.needs({ met: existsSync(REF), reason: `no reference plugin at ${REF} (apt-get install containernetworking-plugins)` });

type Conf = Record<string, unknown>;

/** A host-local config with its dataDir in the sandbox. */
function conf(sb: Sandbox, ipam: Conf = {}, extra: Conf = {}, dataDir = 'ipam'): Conf {
  return {
    cniVersion: '1.0.0', name: 'hlnet',
    ipam: { type: 'host-local', dataDir: join(sb.tmp, dataDir), ranges: [[{ subnet: '10.88.0.0/24' }]], ...ipam },
    ...extra,
  };
}

/** A sandbox with one container namespace, whose path every ADD/CHECK gets as CNI_NETNS. */
function setup(t: { teardown(fn: () => void): void }, tag: string): { sb: Sandbox; netns: string } {
  const sb = new Sandbox(tag);
  t.teardown(() => sb.cleanup());
  return { sb, netns: Sandbox.path(sb.container('c')) };
}

function ours(sb: Sandbox, netns: string, c: PluginCall): PluginRun {
  return sb.plugin('host-local', { netns, ...c });
}

/** Runs the reference host-local exactly as ours is run. */
function ref(sb: Sandbox, netns: string, c: PluginCall): PluginRun {
  const r = sb.exec(sb.host, REF, [], { input: JSON.stringify(c.conf), env: sb.cniEnv({ netns, ...c }) });
  let json: unknown;
  try { json = JSON.parse(r.stdout); } catch { json = undefined; }
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr, json };
}

function dir(sb: Sandbox, dataDir = 'ipam', net = 'hlnet'): string {
  return join(sb.tmp, dataDir, net);
}

/** Lease files of the network (names that are addresses), sorted. */
function leases(sb: Sandbox, dataDir = 'ipam'): string[] {
  const d = dir(sb, dataDir);
  return existsSync(d) ? readdirSync(d).filter((f) => f !== 'lock' && !f.startsWith('last_reserved_ip.')).sort() : [];
}

function ok(t: { is(a: unknown, b: unknown, m?: string): void }, r: PluginRun): void {
  t.is(r.code, 0, r.stdout + r.stderr);
}

for (const version of ['0.3.1', '0.4.0', '1.0.0', '1.1.0']) {
  netnsTest(`[${version}] ADD gives the first address, the gateway, routes and dns; no interface field`, (t) => {
    const { sb, netns } = setup(t, 'v');
    const resolv = join(sb.tmp, 'resolv.conf');
    writeFileSync(resolv, 'nameserver 192.0.2.53\nsearch example.test\noptions ndots:2\n');
    const c = conf(sb, { routes: [{ dst: '0.0.0.0/0' }, { dst: '192.168.50.0/24', gw: '10.88.0.254' }], resolvConf: resolv }, { cniVersion: version });
    const r = ours(sb, netns, { command: 'ADD', containerId: 'ctr1', conf: c });
    ok(t, r);
    const ip: Record<string, unknown> = { address: '10.88.0.2/24', gateway: '10.88.0.1' };
    if (version < '1.0.0') ip.version = '4';
    t.deepEqual(r.json, {
      cniVersion: version, ips: [ip],
      routes: [{ dst: '0.0.0.0/0' }, { dst: '192.168.50.0/24', gw: '10.88.0.254' }],
      dns: { nameservers: ['192.0.2.53'], search: ['example.test'], options: ['ndots:2'] },
    });
    t.deepEqual(leases(sb), ['10.88.0.2']);
    const second = ours(sb, netns, { command: 'ADD', containerId: 'ctr2', conf: c });
    ok(t, second);
    t.is(second.json.ips[0].address, '10.88.0.3/24');
  });
}

netnsTest('dual-stack: one IPv4 and one IPv6 address', (t) => {
  const { sb, netns } = setup(t, 'd');
  const c = conf(sb, { ranges: [[{ subnet: '10.88.0.0/24' }], [{ subnet: 'fd88::/64' }]] });
  const r = ours(sb, netns, { command: 'ADD', containerId: 'ctr1', conf: c });
  ok(t, r);
  t.deepEqual(r.json.ips, [{ address: '10.88.0.2/24', gateway: '10.88.0.1' }, { address: 'fd88::2/64', gateway: 'fd88::1' }]);
  t.deepEqual(leases(sb), ['10.88.0.2', 'fd88::2']);
});

refTest('lease files, cursors and results are byte for byte those of the reference', (t) => {
  const { sb, netns } = setup(t, 'f');
  const ipam = {
    ranges: [[{ subnet: '10.88.0.0/24', rangeStart: '10.88.0.10', rangeEnd: '10.88.0.20' }], [{ subnet: 'fd88::/64' }]],
    routes: [{ dst: '0.0.0.0/0' }, { dst: '::/0' }],
  };
  for (const [id, ifName] of [['ctr1', 'eth0'], ['ctr1', 'eth1'], ['ctr2', 'eth0']] as const) {
    const a = ours(sb, netns, { command: 'ADD', containerId: id, ifName, conf: conf(sb, ipam, {}, 'ours') });
    const b = ref(sb, netns, { command: 'ADD', containerId: id, ifName, conf: conf(sb, ipam, {}, 'ref') });
    ok(t, a);
    ok(t, b);
    // host-local 1.1.1 prints an empty `"dns":{}`; an absent dns means the same.
    if (JSON.stringify(b.json.dns) === '{}') delete b.json.dns;
    t.deepEqual(a.json, b.json);
  }
  const files = (dataDir: string) => readdirSync(dir(sb, dataDir)).sort();
  t.deepEqual(files('ours'), files('ref'));
  t.deepEqual(files('ours'), ['10.88.0.10', '10.88.0.11', '10.88.0.12', 'fd88::2', 'fd88::3', 'fd88::4', 'last_reserved_ip.0', 'last_reserved_ip.1', 'lock']);
  for (const f of files('ref')) {
    if (f === 'lock') continue;
    const mine = join(dir(sb, 'ours'), f);
    const theirs = join(dir(sb, 'ref'), f);
    t.deepEqual(readFileSync(mine), readFileSync(theirs), f);
    // Leases are 0600 as in current upstream (1.1.1 still wrote 0644); cursors 0644 in both.
    t.is(statSync(mine).mode & 0o777, f.startsWith('last_reserved_ip.') ? statSync(theirs).mode & 0o777 : 0o600, `mode of ${f}`);
  }
  t.is(readFileSync(join(dir(sb, 'ours'), '10.88.0.11'), 'latin1'), 'ctr1\r\neth1');
  t.is(statSync(dir(sb, 'ours')).mode & 0o777, 0o755);
});

netnsTest('DEL releases the lease, keeps the cursor, and is idempotent; DEL on an unknown network creates nothing', (t) => {
  const { sb, netns } = setup(t, 'x');
  const c = conf(sb, { ranges: [[{ subnet: '10.88.0.0/24' }], [{ subnet: 'fd88::/64' }]] });
  ok(t, ours(sb, netns, { command: 'ADD', containerId: 'ctr1', conf: c }));
  ok(t, ours(sb, netns, { command: 'ADD', containerId: 'ctr2', conf: c }));
  ok(t, ours(sb, netns, { command: 'DEL', containerId: 'ctr1', conf: c }));
  t.deepEqual(leases(sb), ['10.88.0.3', 'fd88::3']);
  t.is(readFileSync(join(dir(sb), 'last_reserved_ip.0'), 'utf8'), '10.88.0.3');
  ok(t, ours(sb, netns, { command: 'DEL', containerId: 'ctr1', conf: c }));
  ok(t, ours(sb, '', { command: 'DEL', containerId: 'ctr1', conf: c }));
  // Another ifname of ctr2 holds nothing: ctr2/eth0 keeps its lease.
  ok(t, ours(sb, netns, { command: 'DEL', containerId: 'ctr2', ifName: 'eth1', conf: c }));
  t.deepEqual(leases(sb), ['10.88.0.3', 'fd88::3']);
  const other = conf(sb, {}, {}, 'never');
  ok(t, ours(sb, '', { command: 'DEL', containerId: 'ctr1', conf: other }));
  t.false(existsSync(join(sb.tmp, 'never')));
});

netnsTest('CHECK passes after ADD and fails after DEL', (t) => {
  const { sb, netns } = setup(t, 'k');
  const c = conf(sb);
  ok(t, ours(sb, netns, { command: 'ADD', containerId: 'ctr1', conf: c }));
  ok(t, ours(sb, netns, { command: 'CHECK', containerId: 'ctr1', conf: c }));
  const otherIf = ours(sb, netns, { command: 'CHECK', containerId: 'ctr1', ifName: 'eth1', conf: c });
  t.is(otherIf.code, 1);
  ok(t, ours(sb, netns, { command: 'DEL', containerId: 'ctr1', conf: c }));
  const r = ours(sb, netns, { command: 'CHECK', containerId: 'ctr1', conf: c });
  t.is(r.code, 1);
  t.is(r.json.msg, 'host-local: Failed to find address added by container ctr1');
});

netnsTest('a second ADD of the same attachment is refused and leaves one lease', (t) => {
  const { sb, netns } = setup(t, 'u');
  const c = conf(sb);
  ok(t, ours(sb, netns, { command: 'ADD', containerId: 'ctr1', conf: c }));
  const r = ours(sb, netns, { command: 'ADD', containerId: 'ctr1', conf: c });
  t.is(r.code, 1);
  t.is(r.json.msg, 'failed to allocate for range 0: 10.88.0.2 has been allocated to ctr1, duplicate allocation is not allowed');
  t.deepEqual(leases(sb), ['10.88.0.2']);
});

netnsTest('requested addresses: CNI_ARGS IP=, runtimeConfig ips and args.cni.ips', (t) => {
  const { sb, netns } = setup(t, 'q');
  const ranges = [[{ subnet: '10.88.0.0/24' }], [{ subnet: 'fd88::/64' }]];
  const a = ours(sb, netns, { command: 'ADD', containerId: 'ctr1', cniArgs: 'IgnoreUnknown=1;K8S_POD_NAME=web;IP=10.88.0.77', conf: conf(sb, { ranges }) });
  ok(t, a);
  t.deepEqual(a.json.ips.map((i: { address: string }) => i.address), ['10.88.0.77/24', 'fd88::2/64']);
  const b = ours(sb, netns, { command: 'ADD', containerId: 'ctr2', conf: conf(sb, { ranges }, { runtimeConfig: { ips: ['10.88.0.99/24', 'fd88::99'] } }) });
  ok(t, b);
  t.deepEqual(b.json.ips.map((i: { address: string }) => i.address), ['10.88.0.99/24', 'fd88::99/64']);
  const c = ours(sb, netns, { command: 'ADD', containerId: 'ctr3', conf: conf(sb, { ranges }, { args: { cni: { ips: ['10.88.0.5'] } } }) });
  ok(t, c);
  // A requested address moves the cursor too (as in the reference): the walk goes on after fd88::99.
  t.deepEqual(c.json.ips.map((i: { address: string }) => i.address), ['10.88.0.5/24', 'fd88::9a/64']);
  // Taken: an error naming the range set, and the v6 lease of this call is not left behind.
  const taken = ours(sb, netns, { command: 'ADD', containerId: 'ctr4', cniArgs: 'IP=10.88.0.77', conf: conf(sb, { ranges }) });
  t.is(taken.code, 1);
  t.is(taken.json.msg, 'failed to allocate for range 0: requested IP address 10.88.0.77 is not available in range set 10.88.0.1-10.88.0.254');
  t.deepEqual(leases(sb), ['10.88.0.5', '10.88.0.77', '10.88.0.99', 'fd88::2', 'fd88::99', 'fd88::9a']);
});

netnsTest('requesting the gateway or an address outside every range is a config error, nothing reserved', (t) => {
  const { sb, netns } = setup(t, 'g');
  const gw = ours(sb, netns, { command: 'ADD', containerId: 'ctr1', cniArgs: 'IP=10.88.0.1', conf: conf(sb) });
  t.is(gw.code, 1);
  t.is(gw.json.code, 7);
  t.regex(gw.json.details, /requested ip 10\.88\.0\.1 is subnet's gateway/);
  const out = ours(sb, netns, { command: 'ADD', containerId: 'ctr1', conf: conf(sb, {}, { runtimeConfig: { ips: ['10.99.0.5'] } }) });
  t.is(out.json.code, 7);
  t.regex(out.json.details, /failed to allocate all requested IPs: 10\.99\.0\.5/);
  t.false(existsSync(join(sb.tmp, 'ipam')));
});

netnsTest('a full pool is a clear error naming the range, leaves no file, and STATUS reports code 50', (t) => {
  const { sb, netns } = setup(t, 'p');
  // The IPv6 set comes first, so the failing ADD has a lease to roll back.
  const c = conf(sb, { ranges: [[{ subnet: 'fd88::/64' }], [{ subnet: '10.88.0.0/30' }]] }, { cniVersion: '1.1.0' });
  ok(t, ours(sb, '', { command: 'STATUS', conf: c }));
  ok(t, ours(sb, netns, { command: 'ADD', containerId: 'ctr1', conf: c }));
  const before = readdirSync(dir(sb)).sort();
  const full = ours(sb, netns, { command: 'ADD', containerId: 'ctr2', conf: c });
  t.is(full.code, 1);
  t.is(full.json.msg, 'failed to allocate for range 1: no IP addresses available in range set: 10.88.0.1-10.88.0.2');
  t.deepEqual(readdirSync(dir(sb)).sort(), before);
  t.deepEqual(leases(sb), ['10.88.0.2', 'fd88::2']);
  const st = ours(sb, '', { command: 'STATUS', conf: c });
  t.is(st.code, 1);
  t.is(st.json.code, 50);
  t.regex(st.json.msg, /10\.88\.0\.1-10\.88\.0\.2/);
  ok(t, ours(sb, netns, { command: 'DEL', containerId: 'ctr1', conf: c }));
  ok(t, ours(sb, '', { command: 'STATUS', conf: c }));
  ok(t, ours(sb, netns, { command: 'ADD', containerId: 'ctr2', conf: c }));
});

netnsTest('100 ADDs at once on one network all succeed with 100 distinct addresses; 100 DELs at once free them', async (t) => {
  const { sb, netns } = setup(t, 'n');
  const c = conf(sb, { ranges: [[{ subnet: '10.88.0.0/24' }], [{ subnet: 'fd88::/64' }]] });
  const ids = Array.from({ length: 100 }, (_, i) => `ctr${i}`);
  const adds = await Promise.all(ids.map((id) => sb.pluginAsync('host-local', { command: 'ADD', containerId: id, netns, conf: c })));
  for (const r of adds) ok(t, r);
  const v4 = new Set(adds.map((r) => r.json.ips[0].address));
  const v6 = new Set(adds.map((r) => r.json.ips[1].address));
  t.is(v4.size, 100);
  t.is(v6.size, 100);
  t.is(leases(sb).length, 200);
  // Each lease names its owner: the addresses each ADD printed are the ones on disk for it.
  for (const [i, r] of adds.entries()) {
    t.is(readFileSync(join(dir(sb), r.json.ips[0].address.split('/')[0]), 'utf8'), `ctr${i}\r\neth0`);
  }
  const dels = await Promise.all(ids.map((id) => sb.pluginAsync('host-local', { command: 'DEL', containerId: id, netns, conf: c })));
  for (const r of dels) ok(t, r);
  t.deepEqual(leases(sb), []);
});

netnsTest('GC releases the leases of attachments not in cni.dev/valid-attachments', (t) => {
  const { sb, netns } = setup(t, 'c');
  const c = conf(sb, {}, { cniVersion: '1.1.0' });
  for (const [id, ifName] of [['a', 'eth0'], ['b', 'eth0'], ['b', 'eth1'], ['c', 'eth0']] as const) {
    ok(t, ours(sb, netns, { command: 'ADD', containerId: id, ifName, conf: c }));
  }
  t.deepEqual(leases(sb), ['10.88.0.2', '10.88.0.3', '10.88.0.4', '10.88.0.5']);
  ok(t, ours(sb, '', { command: 'GC', conf: { ...c, 'cni.dev/valid-attachments': [{ containerID: 'a', ifname: 'eth0' }, { containerID: 'b', ifname: 'eth1' }] } }));
  t.deepEqual(leases(sb), ['10.88.0.2', '10.88.0.4']);
  ok(t, ours(sb, netns, { command: 'CHECK', containerId: 'b', ifName: 'eth1', conf: c }));
  // No list at all (cnitool gc): everything goes.
  ok(t, ours(sb, '', { command: 'GC', conf: c }));
  t.deepEqual(leases(sb), []);
});

const bad: [string, { conf?: Conf | string; env?: PluginCall; ipam?: Conf }, number, RegExp][] = [
  ['a /31', { ipam: { ranges: [[{ subnet: '10.88.0.0/31' }]] } }, 7, /Network 10\.88\.0\.0\/31 too small to allocate from/],
  ['host bits set', { ipam: { ranges: [[{ subnet: '10.88.0.9/24' }]] } }, 7, /Network 10\.88\.0\.9\/24 has host bits set/],
  ['rangeStart outside the subnet', { ipam: { ranges: [[{ subnet: '10.88.0.0/24', rangeStart: '10.89.0.1' }]] } }, 7, /RangeStart 10\.89\.0\.1 not in network 10\.88\.0\.0\/24/],
  ['mixed families', { ipam: { ranges: [[{ subnet: '10.88.0.0/24' }, { subnet: 'fd88::/64' }]] } }, 7, /mixed address families/],
  ['overlapping sets', { ipam: { ranges: [[{ subnet: '10.88.0.0/24' }], [{ subnet: '10.88.0.0/16' }]] } }, 7, /range set 0 overlaps with 1/],
  ['no ranges', { ipam: { ranges: [] } }, 7, /no IP ranges specified/],
  ['a bad CNI_ARGS IP', { env: { command: 'ADD', cniArgs: 'IP=10.88.0.300', conf: {} } }, 4, /invalid IP "10\.88\.0\.300"/],
  ['an unknown CNI_ARGS key', { env: { command: 'ADD', cniArgs: 'FOO=1', conf: {} } }, 4, /ARGS: unknown args \[FOO\]/],
  ['stdin that is not JSON', { conf: '{"cniVersion":' }, 6, /failed to parse network config/],
  ['an unknown cniVersion', { conf: '{"cniVersion":"9.9.9","name":"hlnet","ipam":{}}' }, 1, /incompatible CNI versions/],
];
for (const [what, input, code, re] of bad) {
  netnsTest(`ADD with ${what} fails with code ${code} and touches nothing`, (t) => {
    const { sb, netns } = setup(t, 'e');
    const base = conf(sb);
    const c = input.conf ?? (input.ipam ? { ...base, ipam: { ...(base.ipam as Conf), ...input.ipam } } : base);
    const r = ours(sb, netns, { command: 'ADD', containerId: 'ctr1', ...(input.env ?? {}), conf: c });
    t.is(r.code, 1);
    t.is(r.json?.code, code, r.stdout);
    t.regex(`${r.json?.msg}: ${r.json?.details}`, re);
    t.false(existsSync(join(sb.tmp, 'ipam')));
  });
}

refTest('interop: the reference allocates, ours sees the lease, checks it and releases it', (t) => {
  const { sb, netns } = setup(t, 'i');
  const c = conf(sb, { ranges: [[{ subnet: '10.88.0.0/24' }], [{ subnet: 'fd88::/64' }]] });
  const a = ref(sb, netns, { command: 'ADD', containerId: 'refctr', conf: c });
  ok(t, a);
  t.deepEqual(a.json.ips.map((i: { address: string }) => i.address), ['10.88.0.2/24', 'fd88::2/64']);
  const b = ours(sb, netns, { command: 'ADD', containerId: 'ourctr', conf: c });
  ok(t, b);
  t.deepEqual(b.json.ips.map((i: { address: string }) => i.address), ['10.88.0.3/24', 'fd88::3/64']);
  ok(t, ours(sb, netns, { command: 'CHECK', containerId: 'refctr', conf: c }));
  // The reference's lease is a duplicate for ours, too.
  t.regex(ours(sb, netns, { command: 'ADD', containerId: 'refctr', conf: c }).json.msg, /10\.88\.0\.2 has been allocated to refctr/);
  ok(t, ours(sb, netns, { command: 'DEL', containerId: 'refctr', conf: c }));
  t.deepEqual(leases(sb), ['10.88.0.3', 'fd88::3']);
  t.not(ref(sb, netns, { command: 'CHECK', containerId: 'refctr', conf: c }).code, 0);
  // The reference continues after our cursor.
  const d = ref(sb, netns, { command: 'ADD', containerId: 'ref2', conf: c });
  ok(t, d);
  t.deepEqual(d.json.ips.map((i: { address: string }) => i.address), ['10.88.0.4/24', 'fd88::4/64']);
});

refTest('interop: ours allocates, the reference sees the lease, checks it and releases it', (t) => {
  const { sb, netns } = setup(t, 'j');
  const c = conf(sb, { ranges: [[{ subnet: '10.88.0.0/30' }]] });
  ok(t, ours(sb, netns, { command: 'ADD', containerId: 'ourctr', conf: c }));
  ok(t, ref(sb, netns, { command: 'CHECK', containerId: 'ourctr', conf: c }));
  // The pool holds one address; the reference finds it taken.
  const full = ref(sb, netns, { command: 'ADD', containerId: 'refctr', conf: c });
  t.not(full.code, 0);
  t.regex(full.json.msg, /no IP addresses available in range set: 10\.88\.0\.1-10\.88\.0\.2/);
  ok(t, ref(sb, netns, { command: 'DEL', containerId: 'ourctr', conf: c }));
  t.deepEqual(leases(sb), []);
  t.not(ours(sb, netns, { command: 'CHECK', containerId: 'ourctr', conf: c }).code, 0);
  ok(t, ref(sb, netns, { command: 'ADD', containerId: 'refctr', conf: c }));
  ok(t, ours(sb, netns, { command: 'DEL', containerId: 'refctr', conf: c }));
  t.deepEqual(leases(sb), []);
});

netnsTest('a legacy lease (container id only) is found by CHECK and released by DEL', (t) => {
  const { sb, netns } = setup(t, 'l');
  const c = conf(sb);
  ok(t, ours(sb, netns, { command: 'ADD', containerId: 'ctr1', conf: c }));
  writeFileSync(join(dir(sb), '10.88.0.40'), 'oldctr', { mode: 0o600 });
  ok(t, ours(sb, netns, { command: 'CHECK', containerId: 'oldctr', ifName: 'eth3', conf: c }));
  ok(t, ours(sb, netns, { command: 'DEL', containerId: 'oldctr', ifName: 'eth3', conf: c }));
  t.deepEqual(leases(sb), ['10.88.0.2']);
});

/**
 * bridge + host-local end to end: the built executables run as a runtime runs them, inside a
 * sandbox host namespace, with real container namespaces and real packets.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Sandbox, ip, ipJson, ping } from './lib/sandbox.ts';
import { netnsTest } from './lib/netns-test.ts';

function netConf(sb: Sandbox, extra: Record<string, unknown> = {}, ipam: Record<string, unknown> = {}) {
  return {
    cniVersion: '1.0.0', name: 'testnet', type: 'bridge', bridge: 'cnk0', isGateway: true,
    ipam: {
      type: 'host-local', dataDir: join(sb.tmp, 'ipam'),
      ranges: [[{ subnet: '10.77.0.0/24' }], [{ subnet: 'fd77::/64' }]],
      routes: [{ dst: '0.0.0.0/0' }, { dst: '::/0' }],
      ...ipam,
    },
    ...extra,
  };
}

/** Files host-local keeps for the network (leases, cursors, lock). */
function leases(sb: Sandbox, net = 'testnet'): string[] {
  const dir = join(sb.tmp, 'ipam', net);
  return existsSync(dir) ? readdirSync(dir).filter((f) => f !== 'lock' && !f.startsWith('last_reserved_ip') && !f.startsWith('.')) : [];
}

function hostVeths(sb: Sandbox): string[] {
  return ipJson(sb.host, 'link', 'show', 'type', 'veth').map((l: { ifname: string }) => l.ifname);
}

function addrsOf(ns: string, dev: string): string[] {
  const [l] = ipJson(ns, 'addr', 'show', 'dev', dev);
  return (l?.addr_info ?? []).filter((a: { scope: string }) => a.scope === 'global').map((a: { local: string; prefixlen: number }) => `${a.local}/${a.prefixlen}`);
}

for (const version of ['0.3.1', '0.4.0', '1.0.0', '1.1.0']) {
  netnsTest(`[${version}] ADD gives a veth, addresses and routes; DEL removes veth and lease`, (t) => {
    const sb = new Sandbox('v');
    t.teardown(() => sb.cleanup());
    const ns = sb.container('c1');
    const conf = netConf(sb, { cniVersion: version });
    const add = sb.plugin('bridge', { command: 'ADD', containerId: 'c1', netns: Sandbox.path(ns), conf });
    t.is(add.code, 0, add.stdout + add.stderr);
    const r = add.json;
    t.is(r.cniVersion, version);
    t.is(r.interfaces.length, 3);
    t.deepEqual(r.interfaces.map((i: { name: string }) => i.name).filter((n: string) => n === 'cnk0' || n === 'eth0'), ['cnk0', 'eth0']);
    t.is(r.interfaces[2].sandbox, Sandbox.path(ns));
    t.regex(r.interfaces[2].mac, /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
    t.deepEqual(r.ips.map((i: { address: string }) => i.address), ['10.77.0.2/24', 'fd77::2/64']);
    t.deepEqual(r.ips.map((i: { gateway: string }) => i.gateway), ['10.77.0.1', 'fd77::1']);
    t.true(r.ips.every((i: { interface: number }) => i.interface === 2));
    if (version === '1.0.0' || version === '1.1.0') t.false('version' in r.ips[0]);
    else t.deepEqual(r.ips.map((i: { version: string }) => i.version), ['4', '6']);
    t.deepEqual(addrsOf(ns, 'eth0'), ['10.77.0.2/24', 'fd77::2/64']);
    const routes = ipJson(ns, 'route', 'show', 'default');
    t.is(routes[0]?.gateway, '10.77.0.1');
    t.is(ipJson(ns, '-6', 'route', 'show', 'default')[0]?.gateway, 'fd77::1');
    t.deepEqual(addrsOf(sb.host, 'cnk0'), ['10.77.0.1/24', 'fd77::1/64']);
    const [hv] = ipJson(sb.host, 'link', 'show', r.interfaces[1].name);
    t.is(hv.master, 'cnk0');
    t.deepEqual(leases(sb).sort(), ['10.77.0.2', 'fd77::2']);

    const del = sb.plugin('bridge', { command: 'DEL', containerId: 'c1', netns: Sandbox.path(ns), conf });
    t.is(del.code, 0, del.stdout + del.stderr);
    t.deepEqual(ipJson(ns, 'link', 'show', 'type', 'veth'), []);
    t.deepEqual(hostVeths(sb), []);
    t.deepEqual(leases(sb), []);
  });
}

netnsTest('two containers ping each other and the gateway over IPv4 and IPv6', (t) => {
  const sb = new Sandbox('p');
  t.teardown(() => sb.cleanup());
  const a = sb.container('a');
  const b = sb.container('b');
  const conf = netConf(sb);
  t.is(sb.plugin('bridge', { command: 'ADD', containerId: 'a', netns: Sandbox.path(a), conf }).code, 0);
  t.is(sb.plugin('bridge', { command: 'ADD', containerId: 'b', netns: Sandbox.path(b), conf }).code, 0);
  t.true(ping(sb, a, '10.77.0.3'), 'a -> b v4');
  t.true(ping(sb, b, '10.77.0.2'), 'b -> a v4');
  t.true(ping(sb, a, 'fd77::3'), 'a -> b v6');
  t.true(ping(sb, a, '10.77.0.1'), 'a -> gateway v4');
  t.true(ping(sb, b, 'fd77::1'), 'b -> gateway v6');
  t.true(ping(sb, sb.host, '10.77.0.2'), 'host -> a');
  // The host ends switch IPv6 without taking part in it: no address, no fe80::/64 route each.
  const ports = ipJson(sb.host, 'link', 'show', 'type', 'veth').map((l: { ifname: string }) => l.ifname).filter((n: string) => n.startsWith('veth'));
  t.is(ports.length, 2);
  for (const p of ports) t.deepEqual(ipJson(sb.host, '-6', 'addr', 'show', 'dev', p), [], `no IPv6 address on ${p}`);
  t.deepEqual(ipJson(sb.host, '-6', 'route', 'show', 'table', 'all').filter((r: { dev?: string }) => ports.includes(r.dev)), [], 'no IPv6 route through a port');
});

netnsTest('DEL is idempotent: twice, without netns, and after the netns is gone', (t) => {
  const sb = new Sandbox('d');
  t.teardown(() => sb.cleanup());
  const ns = sb.container('c');
  const conf = netConf(sb);
  t.is(sb.plugin('bridge', { command: 'ADD', containerId: 'c', netns: Sandbox.path(ns), conf }).code, 0);
  t.is(sb.plugin('bridge', { command: 'DEL', containerId: 'c', netns: Sandbox.path(ns), conf }).code, 0);
  const again = sb.plugin('bridge', { command: 'DEL', containerId: 'c', netns: Sandbox.path(ns), conf });
  t.is(again.code, 0, again.stdout);
  t.is(sb.plugin('bridge', { command: 'DEL', containerId: 'c', netns: '', conf }).code, 0);
  // A container whose namespace vanished before DEL: its lease is still released.
  const gone = sb.container('gone');
  t.is(sb.plugin('bridge', { command: 'ADD', containerId: 'gone', netns: Sandbox.path(gone), conf }).code, 0);
  t.deepEqual(leases(sb).sort(), ['10.77.0.3', 'fd77::3']);
  ip('netns', 'del', gone);
  const del = sb.plugin('bridge', { command: 'DEL', containerId: 'gone', netns: Sandbox.path(gone), conf });
  t.is(del.code, 0, del.stdout);
  t.deepEqual(leases(sb), []);
  // The kernel frees a deleted namespace (and so the veth pair) asynchronously: a DEL served by
  // the warm engine can return before it has.
  for (let i = 0; i < 50 && hostVeths(sb).length; i++) spawnSync('sleep', ['0.05']);
  t.deepEqual(hostVeths(sb), []);
});

netnsTest('CHECK passes after ADD and fails once the address is deleted', (t) => {
  const sb = new Sandbox('k');
  t.teardown(() => sb.cleanup());
  const ns = sb.container('c');
  const conf = netConf(sb);
  const add = sb.plugin('bridge', { command: 'ADD', containerId: 'c', netns: Sandbox.path(ns), conf });
  t.is(add.code, 0);
  const checkConf = { ...conf, prevResult: add.json };
  const ok = sb.plugin('bridge', { command: 'CHECK', containerId: 'c', netns: Sandbox.path(ns), conf: checkConf });
  t.is(ok.code, 0, ok.stdout);
  ip('-n', ns, 'addr', 'del', '10.77.0.2/24', 'dev', 'eth0');
  const bad = sb.plugin('bridge', { command: 'CHECK', containerId: 'c', netns: Sandbox.path(ns), conf: checkConf });
  t.is(bad.code, 1);
  t.regex(bad.json.msg, /10\.77\.0\.2\/24 is missing/);
  const noPrev = sb.plugin('bridge', { command: 'CHECK', containerId: 'c', netns: Sandbox.path(ns), conf });
  t.is(noPrev.json.code, 7);
  t.regex(noPrev.json.msg, /prevResult/);
});

netnsTest('hairpinMode, mtu and promiscMode reach the links; layer 2 only without ipam', (t) => {
  const sb = new Sandbox('o');
  t.teardown(() => sb.cleanup());
  const a = sb.container('a');
  const conf = netConf(sb, { hairpinMode: true, mtu: 1400 });
  const add = sb.plugin('bridge', { command: 'ADD', containerId: 'a', netns: Sandbox.path(a), conf });
  t.is(add.code, 0, add.stdout);
  const [port] = ipJson(sb.host, '-d', 'link', 'show', add.json.interfaces[1].name);
  t.true(port.linkinfo.info_slave_data.hairpin);
  t.is(port.mtu, 1400);
  t.is(ipJson(a, 'link', 'show', 'eth0')[0].mtu, 1400);

  const l2 = sb.container('l2');
  const l2conf = { cniVersion: '1.0.0', name: 'l2net', type: 'bridge', bridge: 'cnk1', promiscMode: true };
  const r = sb.plugin('bridge', { command: 'ADD', containerId: 'l2', netns: Sandbox.path(l2), conf: l2conf });
  t.is(r.code, 0, r.stdout);
  t.is(r.json.ips, undefined);
  t.true(ipJson(sb.host, 'link', 'show', 'cnk1')[0].flags.includes('PROMISC'));
  t.true(ipJson(l2, 'link', 'show', 'eth0')[0].flags.includes('UP'));
});

/** Whether this kernel has bridge VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING), tried in a sandbox. */
function kernelHasVlanFiltering(sb: Sandbox): boolean {
  try {
    ip('-n', sb.host, 'link', 'add', 'vlanprobe', 'type', 'bridge', 'vlan_filtering', '1');
    ip('-n', sb.host, 'link', 'del', 'vlanprobe');
    return true;
  } catch {
    return false;
  }
}

netnsTest('a VLAN puts the port in that VLAN and the gateway on <bridge>.<vlan>', (t) => {
  const sb = new Sandbox('l');
  t.teardown(() => sb.cleanup());
  if (!kernelHasVlanFiltering(sb)) {
    // Without the kernel feature the ADD must say so and leave nothing behind.
    const ns = sb.container('a');
    const r = sb.plugin('bridge', { command: 'ADD', containerId: 'a', netns: Sandbox.path(ns), conf: netConf(sb, { vlan: 100 }) });
    t.is(r.code, 1);
    t.regex(r.json.msg, /does not support bridge VLAN filtering/);
    t.deepEqual(hostVeths(sb), []);
    t.deepEqual(leases(sb), []);
    t.log('this kernel has no CONFIG_BRIDGE_VLAN_FILTERING: checked the clear error instead of VLAN traffic');
    return;
  }
  const a = sb.container('a');
  const b = sb.container('b');
  const conf = netConf(sb, { vlan: 100 }, { ranges: [[{ subnet: '10.88.0.0/24' }]], routes: [] });
  const ra = sb.plugin('bridge', { command: 'ADD', containerId: 'a', netns: Sandbox.path(a), conf });
  t.is(ra.code, 0, ra.stdout);
  t.is(sb.plugin('bridge', { command: 'ADD', containerId: 'b', netns: Sandbox.path(b), conf }).code, 0);
  const vlans = JSON.parse(sb.exec(sb.host, 'bridge', ['-j', 'vlan', 'show', 'dev', ra.json.interfaces[1].name]).stdout);
  const entry = vlans[0].vlans.find((v: { vlan: number }) => v.vlan === 100);
  t.truthy(entry);
  t.true(entry.flags.includes('PVID'));
  t.false(vlans[0].vlans.some((v: { vlan: number }) => v.vlan === 1));
  t.deepEqual(addrsOf(sb.host, 'cnk0.100'), ['10.88.0.1/24']);
  t.true(ping(sb, a, '10.88.0.3'));
  t.true(ping(sb, a, '10.88.0.1'));
});

/** Bad inputs: each gives the right code and leaves no veth and no lease. */
/** `delFails`: the DEL a runtime sends after the failed ADD cannot succeed either (no config to act on). */
const badCases: { title: string; code: number; msg: RegExp; conf: (sb: Sandbox) => unknown; env?: Record<string, string>; delFails?: boolean }[] = [
  { title: 'macspoofchk (not implemented)', code: 2, msg: /macspoofchk/, conf: (sb) => netConf(sb, { macspoofchk: true }) },
  { title: 'hairpin and promisc together', code: 7, msg: /invalid network config/, conf: (sb) => netConf(sb, { hairpinMode: true, promiscMode: true }) },
  { title: 'vlan out of range', code: 7, msg: /invalid network config/, conf: (sb) => netConf(sb, { vlan: 5000 }) },
  { title: 'mtu of the wrong type', code: 7, msg: /invalid network config/, conf: (sb) => netConf(sb, { mtu: 'big' }) },
  { title: 'subnet with host bits', code: 7, msg: /.*/, conf: (sb) => netConf(sb, {}, { ranges: [[{ subnet: '10.77.0.5/24' }]] }) },
  { title: 'stdin is not JSON', code: 6, msg: /parse/, conf: () => '{nope', delFails: true },
  { title: 'unknown CNI_ARGS key', code: 4, msg: /unknown args/, conf: (sb) => netConf(sb), env: { CNI_ARGS: 'FOO=bar' } },
  { title: 'bad ifname', code: 4, msg: /interface name/, conf: (sb) => netConf(sb), env: { CNI_IFNAME: 'eth0/x' }, delFails: true },
  { title: 'unknown IPAM type', code: 999, msg: /failed to find plugin "no-such-ipam"/, conf: (sb) => netConf(sb, {}, { type: 'no-such-ipam' }), delFails: true },
];
for (const c of badCases) {
  netnsTest(`bad input: ${c.title} -> code ${c.code}, nothing left`, (t) => {
    const sb = new Sandbox('b');
    t.teardown(() => sb.cleanup());
    const ns = sb.container('c');
    const r = sb.plugin('bridge', { command: 'ADD', containerId: 'c', netns: Sandbox.path(ns), conf: c.conf(sb), env: c.env });
    t.is(r.code, 1);
    t.is(r.json?.code, c.code, r.stdout);
    t.regex(`${r.json?.msg} ${r.json?.details ?? ''}`, c.msg);
    t.deepEqual(hostVeths(sb), []);
    t.deepEqual(ipJson(ns, 'link', 'show', 'type', 'veth'), []);
    t.deepEqual(leases(sb), []);
    // A runtime DELs after every failed ADD; with nothing to undo, that DEL must succeed.
    const del = sb.plugin('bridge', { command: 'DEL', containerId: 'c', netns: Sandbox.path(ns), conf: c.conf(sb), env: c.env });
    t.is(del.code, c.delFails ? 1 : 0, del.stdout);
  });
}

netnsTest('a netns that does not exist is code 3; a name clash with a non-bridge link is an error', (t) => {
  const sb = new Sandbox('n');
  t.teardown(() => sb.cleanup());
  const missing = sb.plugin('bridge', { command: 'ADD', containerId: 'c', netns: '/run/netns/cnikit-no-such-ns', conf: netConf(sb) });
  t.is(missing.json.code, 3);
  ip('-n', sb.host, 'link', 'add', 'cnk0', 'type', 'veth', 'peer', 'name', 'cnk0peer');
  const ns = sb.container('c');
  const clash = sb.plugin('bridge', { command: 'ADD', containerId: 'c', netns: Sandbox.path(ns), conf: netConf(sb) });
  t.is(clash.code, 1);
  t.regex(clash.json.msg, /"cnk0" already exists but is not a bridge/);
  t.deepEqual(hostVeths(sb).sort(), ['cnk0', 'cnk0peer']);
  t.deepEqual(leases(sb), []);
});

netnsTest('an exhausted pool is a clear error and leaves no veth or lease', (t) => {
  const sb = new Sandbox('x');
  t.teardown(() => sb.cleanup());
  const conf = netConf(sb, {}, { ranges: [[{ subnet: '10.99.0.0/30' }]], routes: [] });
  const a = sb.container('a');
  t.is(sb.plugin('bridge', { command: 'ADD', containerId: 'a', netns: Sandbox.path(a), conf }).code, 0);
  const b = sb.container('b');
  const r = sb.plugin('bridge', { command: 'ADD', containerId: 'b', netns: Sandbox.path(b), conf });
  t.is(r.code, 1);
  t.regex(`${r.json.msg} ${r.json.details ?? ''}`, /10\.99\.0\./);
  t.deepEqual(ipJson(b, 'link', 'show', 'type', 'veth'), []);
  t.is(hostVeths(sb).length, 1);
  t.deepEqual(leases(sb), ['10.99.0.2']);
});

netnsTest('a failure after the lease (unreachable route gateway) rolls back veth and lease', (t) => {
  const sb = new Sandbox('r');
  t.teardown(() => sb.cleanup());
  const ns = sb.container('c');
  const conf = netConf(sb, {}, { ranges: [[{ subnet: '10.77.0.0/24' }]], routes: [{ dst: '192.0.2.0/24', gw: '203.0.113.9' }] });
  const r = sb.plugin('bridge', { command: 'ADD', containerId: 'c', netns: Sandbox.path(ns), conf });
  t.is(r.code, 1);
  t.regex(`${r.json.msg} ${r.json.details}`, /failed to add route 192\.0\.2\.0\/24 via 203\.0\.113\.9/);
  t.deepEqual(hostVeths(sb), []);
  t.deepEqual(ipJson(ns, 'link', 'show', 'type', 'veth'), []);
  t.deepEqual(leases(sb), []);
});

netnsTest('100 ADDs at once on one network all succeed with distinct addresses', async (t) => {
  const sb = new Sandbox('m');
  t.teardown(() => sb.cleanup());
  const conf = netConf(sb, {}, { ranges: [[{ subnet: '10.66.0.0/16' }]], routes: [] });
  const names = Array.from({ length: 100 }, (_, i) => sb.container(`m${i}`));
  const runs = await Promise.all(names.map((ns, i) => sb.pluginAsync('bridge', { command: 'ADD', containerId: `m${i}`, netns: Sandbox.path(ns), conf })));
  const failed = runs.filter((r) => r.code !== 0);
  t.deepEqual(failed.map((r) => r.stdout), []);
  const addrs = new Set(runs.map((r) => r.json.ips[0].address));
  t.is(addrs.size, 100);
  t.is(hostVeths(sb).length, 100);
  t.true(ping(sb, names[0]!, runs[99]!.json.ips[0].address.split('/')[0]));
});

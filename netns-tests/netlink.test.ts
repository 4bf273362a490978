/**
 * rtnetlink through RouteHandle against the real kernel, inside sandbox namespaces: every
 * object made by our encoders is read back with `ip -j` (iproute2 is the reference decoder),
 * and every dump we decode is compared with what `ip -j` lists for the same namespace. Every
 * test runs once over each NetlinkSocket implementation: blocking and asynchronous.
 */
import type { ExecutionContext } from 'ava';
import { type Cidr, type Family, formatCidr, formatIP, parseCidr, parseIP } from '../pkg/ip/cidr.ts';
import { NLM_F_CREATE, NLM_F_EXCL, attr, encodeAttrs } from '../pkg/netlink/message.ts';
import { Netns } from '../pkg/netlink/netns.ts';
import { AsyncNetlinkSocket } from '../pkg/netlink/async-socket.ts';
import { BlockingNetlinkSocket, NETLINK_ROUTE, type NetlinkSocket } from '../pkg/netlink/socket.ts';
import { IFF_PROMISC, IFF_UP, OPER_STATES, type RouteEntry, RouteHandle } from '../pkg/netlink/route.ts';
import { Sandbox, ip, ipJson } from './lib/sandbox.ts';
import { netnsTest } from './lib/netns-test.ts';

type Kind = 'blocking' | 'async';
const KINDS: Kind[] = ['blocking', 'async'];

function openSocket(kind: Kind, netns: string): NetlinkSocket {
  return kind === 'async' ? AsyncNetlinkSocket.open(NETLINK_ROUTE, netns) : BlockingNetlinkSocket.open(NETLINK_ROUTE, netns);
}

/** Registers `title` once per socket implementation, as `[blocking] title` and `[async] title`. */
function eachSocket(title: string, fn: (t: ExecutionContext, kind: Kind) => Promise<void>): void {
  for (const kind of KINDS) netnsTest(`[${kind}] ${title}`, (t) => fn(t, kind));
}

interface World { sb: Sandbox; ctr: string; host: RouteHandle; inCtr: RouteHandle; ctrNs: Netns; kind: Kind }

function world(t: ExecutionContext, kind: Kind): World {
  const sb = new Sandbox('nl');
  t.teardown(() => sb.cleanup());
  const ctr = sb.container('c1');
  const host = new RouteHandle(openSocket(kind, sb.hostPath));
  const inCtr = new RouteHandle(openSocket(kind, Sandbox.path(ctr)));
  const ctrNs = Netns.open(Sandbox.path(ctr), {});
  // teardown runs LIFO: handles close before the namespaces go.
  t.teardown(() => { host.close(); inCtr.close(); ctrNs.close(); });
  return { sb, ctr, host, inCtr, ctrNs, kind };
}

/** bridge br0 (up, 10.77.0.1/24 + fd77::1/64) <- veth0 ... eth0 in the container (up). */
async function wire(w: World): Promise<{ br: number; veth: number; eth0: number }> {
  await w.host.linkAddBridge('br0', { mtu: 1400, mac: '02:00:00:00:00:01', up: true });
  const br = (await w.host.linkGet('br0'))!.index;
  await w.host.linkAddVeth({
    name: 'veth0', peerName: 'eth0', peerNetnsFd: w.ctrNs.fd, mtu: 1400,
    mac: '02:00:00:00:00:02', peerMac: '0a:58:0a:4d:00:05', master: br, up: true, peerUp: true, peerHandle: w.inCtr,
  });
  const veth = (await w.host.linkGet('veth0'))!.index;
  const eth0 = (await w.inCtr.linkGet('eth0'))!.index;
  await w.host.addrAdd(br, parseCidr('10.77.0.1/24'));
  await w.host.addrAdd(br, parseCidr('fd77::1/64'), { nodad: true });
  await w.inCtr.addrAdd(eth0, parseCidr('10.77.0.5/24'));
  await w.inCtr.addrAdd(eth0, parseCidr('fd77::5/64'), { nodad: true });
  // The kernel adds each link's IPv6 link-local address a moment after the carrier comes up, and
  // its local route once duplicate address detection is done (a second or so); let that settle
  // so that two snapshots taken apart agree.
  waitLinkLocal(w.ctr, 'eth0');
  waitLinkLocal(w.sb.host, 'veth0');
  waitLinkLocal(w.sb.host, 'br0');
  return { br, veth, eth0 };
}

// ---- what `ip -j` prints, and our decoded values brought to the same shape ----

const SCOPES: Record<number, string> = { 0: 'global', 200: 'site', 253: 'link', 254: 'host', 255: 'nowhere' };
const TYPES: Record<number, string> = { 1: 'unicast', 2: 'local', 3: 'broadcast', 4: 'anycast', 5: 'multicast', 6: 'blackhole', 7: 'unreachable', 8: 'prohibit' };
const TABLES: Record<string, number> = { main: 254, local: 255, default: 253 };

// operstate is left out of the dump comparison: the kernel updates it asynchronously (linkwatch),
// so two snapshots taken a moment apart may differ. It is checked once it has settled.
const IFF_LOWER_UP = 0x10000;

/** Waits (bounded: 3 s) until `ip` reports operstate UP for `dev` in `ns`. */
function waitOperUp(ns: string, dev: string): boolean {
  for (let i = 0; i < 60; i++) {
    if ((ipJson(ns, 'link', 'show') as any[]).some((l) => l.ifname === dev && l.operstate === 'UP')) return true;
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
  }
  return false;
}

/** Waits (bounded: 5 s) until `dev` in `ns` has its IPv6 link-local address, past DAD. */
function waitLinkLocal(ns: string, dev: string): void {
  for (let i = 0; i < 100; i++) {
    if ((ipJson(ns, '-6', 'addr', 'show', 'dev', dev) as any[]).some((l) => l.addr_info.some((a: any) => a.scope === 'link' && !a.tentative))) return;
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
  }
}

function linksFromIp(ns: string) {
  const all = ipJson(ns, '-d', 'link', 'show') as any[];
  const names = new Map(all.map((l) => [l.ifname, l.ifindex]));
  return all.map((l) => ({
    index: l.ifindex, name: l.ifname, mtu: l.mtu, mac: l.address ?? '', up: l.flags.includes('UP'),
    promisc: l.flags.includes('PROMISC'), master: l.master ? names.get(l.master) : 0,
    lowerUp: l.flags.includes('LOWER_UP'), kind: l.linkinfo?.info_kind ?? '', slaveKind: l.linkinfo?.info_slave_kind ?? '',
  })).sort((a, b) => a.index - b.index);
}

async function linksFromUs(h: RouteHandle) {
  return (await h.linkList()).map((l) => ({
    index: l.index, name: l.name, mtu: l.mtu, mac: l.mac, up: (l.flags & IFF_UP) !== 0, promisc: (l.flags & IFF_PROMISC) !== 0,
    master: l.master, lowerUp: (l.flags & IFF_LOWER_UP) !== 0, kind: l.kind, slaveKind: l.slaveKind,
  })).sort((a, b) => a.index - b.index);
}

function addrsFromIp(ns: string) {
  return (ipJson(ns, 'addr', 'show') as any[]).flatMap((l) => l.addr_info.map((a: any) => ({
    index: l.ifindex, family: a.family === 'inet' ? 4 : 6, addr: `${a.local}/${a.prefixlen}`, scope: a.scope,
  }))).map((a) => JSON.stringify(a)).sort();
}

async function addrsFromUs(h: RouteHandle, index?: number) {
  return (await h.addrList(index)).map((a) => JSON.stringify({ index: a.index, family: a.family, addr: formatCidr(a.cidr), scope: SCOPES[a.scope] ?? String(a.scope) })).sort();
}

function routeDst(dst: Cidr): string {
  if (dst.prefix === 0) return 'default';
  return dst.prefix === (dst.family === 4 ? 32 : 128) ? formatIP(dst) : formatCidr(dst);
}

function routesFromIp(ns: string, family: Family) {
  const names = new Map((ipJson(ns, 'link', 'show') as any[]).map((l) => [l.ifname, l.ifindex]));
  return (ipJson(ns, `-${family}`, 'route', 'show', 'table', 'all') as any[]).map((r) => JSON.stringify({
    type: r.type ?? 'unicast', dst: r.dst, gw: r.gateway, oif: r.dev ? names.get(r.dev) : undefined,
    table: r.table === undefined ? 254 : TABLES[r.table] ?? Number(r.table), metric: r.metric, scope: r.scope ?? 'global',
  })).sort();
}

async function routesFromUs(h: RouteHandle, family: Family) {
  return (await h.routeList(family)).map((r: RouteEntry) => JSON.stringify({
    type: TYPES[r.type] ?? String(r.type), dst: routeDst(r.dst), gw: r.gw && formatIP(r.gw), oif: r.oif,
    table: r.table, metric: r.priority, scope: SCOPES[r.scope!] ?? String(r.scope),
  })).sort();
}

function linkNames(ns: string): string[] {
  return (ipJson(ns, 'link', 'show') as any[]).map((l) => l.ifname);
}

// ---- tests ----

eachSocket('bridge and veth pair with the peer in the container namespace', async (t, kind) => {
  const w = world(t, kind);
  const { br, veth, eth0 } = await wire(w);

  const [brIp] = ipJson(w.sb.host, '-d', 'link', 'show', 'br0');
  t.like(brIp, { ifindex: br, ifname: 'br0', mtu: 1400, address: '02:00:00:00:00:01', linkinfo: { info_kind: 'bridge' } });
  t.true(brIp.flags.includes('UP'));

  const [vethIp] = ipJson(w.sb.host, '-d', 'link', 'show', 'veth0');
  t.like(vethIp, { ifindex: veth, ifname: 'veth0', mtu: 1400, address: '02:00:00:00:00:02', master: 'br0', linkinfo: { info_kind: 'veth', info_slave_kind: 'bridge' } });
  t.true(vethIp.flags.includes('UP'));

  const [eth0Ip] = ipJson(w.ctr, '-d', 'link', 'show', 'eth0');
  t.like(eth0Ip, { ifindex: eth0, ifname: 'eth0', mtu: 1400, address: '0a:58:0a:4d:00:05', linkinfo: { info_kind: 'veth' } });
  t.true(eth0Ip.flags.includes('UP'));
  t.false(linkNames(w.sb.host).includes('eth0'), 'the peer was made in the container, not moved there later');

  // Our decoders agree with iproute2 on every link of both namespaces.
  t.deepEqual(await linksFromUs(w.host), linksFromIp(w.sb.host));
  t.deepEqual(await linksFromUs(w.inCtr), linksFromIp(w.ctr));
  t.like(await w.host.linkGet('veth0'), { index: veth, kind: 'veth', slaveKind: 'bridge', master: br, mtu: 1400 });
  t.true(waitOperUp(w.ctr, 'eth0'));
  t.is(OPER_STATES[(await w.inCtr.linkGet('eth0'))!.operState], 'up');
  t.like(await w.host.linkGetByIndex(br), { name: 'br0', kind: 'bridge' });
  t.is(await w.host.linkGet('nope0'), undefined);
  t.is(await w.host.linkGetByIndex(99999), undefined);
});

eachSocket('addresses v4/v6 read back as ip lists them', async (t, kind) => {
  const w = world(t, kind);
  const { br, eth0 } = await wire(w);
  const [l] = ipJson(w.ctr, 'addr', 'show', 'dev', 'eth0');
  const global = l.addr_info.filter((a: any) => a.scope === 'global').map((a: any) => `${a.family} ${a.local}/${a.prefixlen}`);
  t.deepEqual(global, ['inet 10.77.0.5/24', 'inet6 fd77::5/64']);
  t.true(l.addr_info.some((a: any) => a.local === 'fd77::5' && a.family === 'inet6' && !a.tentative), 'nodad: usable at once');
  t.deepEqual(await addrsFromUs(w.inCtr), addrsFromIp(w.ctr));
  t.deepEqual(await addrsFromUs(w.host), addrsFromIp(w.sb.host));
  t.deepEqual((await addrsFromUs(w.host, br)).filter((a) => a.includes('global')), [
    JSON.stringify({ index: br, family: 4, addr: '10.77.0.1/24', scope: 'global' }),
    JSON.stringify({ index: br, family: 6, addr: 'fd77::1/64', scope: 'global' }),
  ].sort());

  await w.inCtr.addrDel(eth0, parseCidr('10.77.0.5/24'));
  await w.inCtr.addrDel(eth0, parseCidr('fd77::5/64'));
  t.deepEqual(ipJson(w.ctr, 'addr', 'show', 'dev', 'eth0')[0].addr_info.filter((a: any) => a.scope === 'global'), []);
  t.deepEqual(await addrsFromUs(w.inCtr), addrsFromIp(w.ctr));
});

eachSocket('routes v4/v6 with gateway, metric, mtu and table read back as ip lists them', async (t, kind) => {
  const w = world(t, kind);
  const { eth0 } = await wire(w);
  await w.inCtr.routeAdd({ dst: parseCidr('0.0.0.0/0'), gw: parseIP('10.77.0.1') });
  await w.inCtr.routeAdd({ dst: parseCidr('::/0'), gw: parseIP('fd77::1') });
  await w.inCtr.routeAdd({ dst: parseCidr('192.0.2.0/24'), gw: parseIP('10.77.0.1'), priority: 50, mtu: 1300, advmss: 1260 });
  await w.inCtr.routeAdd({ dst: parseCidr('198.51.100.0/24'), oif: eth0, table: 1000 });
  await w.inCtr.routeAdd({ dst: parseCidr('2001:db8:1::/48'), gw: parseIP('fd77::1'), oif: eth0, priority: 7, table: 100 });

  const v4 = ipJson(w.ctr, '-4', 'route', 'show', 'table', 'all');
  t.like(v4.find((r: any) => r.dst === 'default'), { gateway: '10.77.0.1', dev: 'eth0' });
  const special = v4.find((r: any) => r.dst === '192.0.2.0/24');
  t.like(special, { gateway: '10.77.0.1', dev: 'eth0', metric: 50 });
  t.deepEqual(special.metrics, [{ mtu: 1300, advmss: 1260 }]);
  t.like(v4.find((r: any) => r.dst === '198.51.100.0/24'), { dev: 'eth0', table: '1000', scope: 'link' });
  const v6 = ipJson(w.ctr, '-6', 'route', 'show', 'table', 'all');
  t.like(v6.find((r: any) => r.dst === 'default'), { gateway: 'fd77::1', dev: 'eth0' });
  t.like(v6.find((r: any) => r.dst === '2001:db8:1::/48'), { gateway: 'fd77::1', dev: 'eth0', metric: 7, table: '100' });

  for (const family of [4, 6] as const) t.deepEqual(await routesFromUs(w.inCtr, family), routesFromIp(w.ctr, family), `IPv${family}`);
  t.like((await w.inCtr.routeList(4)).find((r) => formatCidr(r.dst) === '192.0.2.0/24'), { mtu: 1300, advmss: 1260, priority: 50, protocol: 3 });

  // Replace changes the gateway in place; del removes exactly that route.
  await w.inCtr.routeReplace({ dst: parseCidr('192.0.2.0/24'), gw: parseIP('10.77.0.2'), priority: 50 });
  t.like(ipJson(w.ctr, 'route', 'show', '192.0.2.0/24')[0], { gateway: '10.77.0.2', metric: 50 });
  await w.inCtr.routeDel({ dst: parseCidr('192.0.2.0/24'), gw: parseIP('10.77.0.2'), priority: 50 });
  await w.inCtr.routeDel({ dst: parseCidr('2001:db8:1::/48'), gw: parseIP('fd77::1'), oif: eth0, priority: 7, table: 100 });
  t.deepEqual(ipJson(w.ctr, 'route', 'show', '192.0.2.0/24'), []);
  t.deepEqual(ipJson(w.ctr, '-6', 'route', 'show', 'table', '100'), []);
  for (const family of [4, 6] as const) t.deepEqual(await routesFromUs(w.inCtr, family), routesFromIp(w.ctr, family), `IPv${family} after del`);
});

eachSocket('routeDel removes a route the kernel or ip made (any protocol), as `ip route del` does', async (t, kind) => {
  const w = world(t, kind);
  const { eth0 } = await wire(w);
  // The prefix route that came with the address has protocol "kernel", not "boot".
  await w.inCtr.routeDel({ dst: parseCidr('10.77.0.0/24'), oif: eth0 });
  t.deepEqual(ipJson(w.ctr, '-4', 'route', 'show', '10.77.0.0/24'), []);
  await w.inCtr.routeDel({ dst: parseCidr('fd77::/64'), oif: eth0 });
  t.deepEqual(ipJson(w.ctr, '-6', 'route', 'show', 'fd77::/64'), []);
  ip('-n', w.ctr, 'route', 'add', '203.0.113.0/24', 'dev', 'eth0', 'proto', 'static');
  await w.inCtr.routeDel({ dst: parseCidr('203.0.113.0/24'), oif: eth0 });
  t.deepEqual(ipJson(w.ctr, '-4', 'route', 'show', '203.0.113.0/24'), []);
});

eachSocket('hairpin, promisc and mac on bridge ports read back through ip -d', async (t, kind) => {
  const w = world(t, kind);
  const { br, veth, eth0 } = await wire(w);
  await w.host.linkSetHairpin(veth, true);
  await w.host.linkSetPromisc(br, true);
  await w.inCtr.linkSetMac(eth0, '0a:58:0a:4d:00:99');
  const [v] = ipJson(w.sb.host, '-d', 'link', 'show', 'veth0');
  t.is(v.linkinfo.info_slave_data.hairpin, true);
  const [b] = ipJson(w.sb.host, '-d', 'link', 'show', 'br0');
  t.true(b.flags.includes('PROMISC'));
  t.is(b.promiscuity, 1);
  t.is(ipJson(w.ctr, 'link', 'show', 'eth0')[0].address, '0a:58:0a:4d:00:99');
  t.true(((await w.host.linkGetByIndex(br))!.flags & IFF_PROMISC) !== 0);

  await w.host.linkSetHairpin(veth, false);
  await w.host.linkSetPromisc(br, false);
  t.is(ipJson(w.sb.host, '-d', 'link', 'show', 'veth0')[0].linkinfo.info_slave_data.hairpin, false);
  t.false(ipJson(w.sb.host, 'link', 'show', 'br0')[0].flags.includes('PROMISC'));
});

eachSocket('peerUp brings up a peer in the same namespace too', async (t, kind) => {
  const w = world(t, kind);
  await w.host.linkAddVeth({ name: 'gw0', peerName: 'gw0p', up: true, peerUp: true });
  const links = ipJson(w.sb.host, 'link', 'show', 'type', 'veth') as any[];
  t.deepEqual(links.map((l) => [l.ifname, l.flags.includes('UP'), l.flags.includes('LOWER_UP')]).sort(), [['gw0', true, true], ['gw0p', true, true]]);
});

eachSocket('linkSetUp brings a link up', async (t, kind) => {
  const w = world(t, kind);
  await w.host.linkAddBridge('br1');
  const l = (await w.host.linkGet('br1'))!;
  t.false(ipJson(w.sb.host, 'link', 'show', 'br1')[0].flags.includes('UP'));
  await w.host.linkSetUp(l.index);
  t.true(ipJson(w.sb.host, 'link', 'show', 'br1')[0].flags.includes('UP'));
});

eachSocket('bridge VLAN: pvid untagged on a port of a vlan-filtering bridge', async (t, kind) => {
  const w = world(t, kind);
  try {
    await w.host.linkAddBridge('brv', { vlanFiltering: true, up: true });
  } catch (err) {
    // `ip link add brv type bridge vlan_filtering 1` fails the same way on such a kernel.
    if ((err as { code?: string }).code !== 'EOPNOTSUPP') throw err;
    t.log('skipped: this kernel has no CONFIG_BRIDGE_VLAN_FILTERING');
    t.pass();
    return;
  }
  const br = (await w.host.linkGet('brv'))!.index;
  await w.host.linkAddVeth({ name: 'vethv', peerName: 'eth1', peerNetnsFd: w.ctrNs.fd, master: br, up: true });
  const port = (await w.host.linkGet('vethv'))!.index;
  await w.host.bridgeVlanAdd(port, 42, { pvid: true, untagged: true });
  await w.host.bridgeVlanAdd(br, 42, { pvid: false, untagged: false, self: true });
  const vlans = JSON.parse(ip('netns', 'exec', w.sb.host, 'bridge', '-j', 'vlan', 'show'));
  const portVlans = vlans.find((v: any) => v.ifname === 'vethv').vlans;
  t.true(portVlans.some((v: any) => v.vlan === 42 && v.flags?.includes('PVID') && v.flags?.includes('Egress Untagged')), JSON.stringify(portVlans));
  t.true(vlans.find((v: any) => v.ifname === 'brv').vlans.some((v: any) => v.vlan === 42));
});

eachSocket('linkDel of one veth end removes both ends', async (t, kind) => {
  const w = world(t, kind);
  const { veth } = await wire(w);
  await w.host.linkDel(veth);
  t.deepEqual(ipJson(w.sb.host, 'link', 'show', 'type', 'veth'), []);
  t.deepEqual(ipJson(w.ctr, 'link', 'show', 'type', 'veth'), []);
  t.is(await w.host.linkGet('veth0'), undefined);
  t.is(await w.inCtr.linkGet('eth0'), undefined);
  t.truthy(await w.host.linkGet('br0'), 'the bridge stays');
  // Deleting it again is the kernel's ENODEV, with the op that failed.
  const err = await t.throwsAsync(w.host.linkDel(veth)) as any;
  t.like(err, { code: 'ENODEV', errno: 19, op: `RTM_DELLINK #${veth}` });
});

eachSocket('kernel errors surface as code/errno/op with the extended ACK', async (t, kind) => {
  const w = world(t, kind);
  const { br, eth0 } = await wire(w);

  const dupBridge = await t.throwsAsync(w.host.linkAddBridge('br0')) as any;
  t.like(dupBridge, { code: 'EEXIST', errno: 17, op: 'RTM_NEWLINK bridge br0', syscall: 'RTM_NEWLINK bridge br0' });
  t.regex(dupBridge.message, /^RTM_NEWLINK bridge br0: EEXIST/);

  const dupVeth = await t.throwsAsync(w.host.linkAddVeth({ name: 'veth0', peerName: 'eth9', peerNetnsFd: w.ctrNs.fd })) as any;
  t.like(dupVeth, { code: 'EEXIST', op: 'RTM_NEWLINK veth veth0' });
  t.false(linkNames(w.ctr).includes('eth9'), 'a failed pair leaves no peer behind');

  const dup4 = await t.throwsAsync(w.inCtr.addrAdd(eth0, parseCidr('10.77.0.5/24'))) as any;
  t.like(dup4, { code: 'EEXIST', errno: 17, extack: 'ipv4: Address already assigned' });
  t.is(dup4.message, `RTM_NEWADDR #${eth0}: EEXIST (ipv4: Address already assigned)`);
  const dup6 = await t.throwsAsync(w.host.addrAdd(br, parseCidr('fd77::1/64'), { nodad: true })) as any;
  t.like(dup6, { code: 'EEXIST', extack: 'ipv6: address already assigned' });

  await w.inCtr.routeAdd({ dst: parseCidr('192.0.2.0/24'), gw: parseIP('10.77.0.1') });
  const dupRoute = await t.throwsAsync(w.inCtr.routeAdd({ dst: parseCidr('192.0.2.0/24'), gw: parseIP('10.77.0.1') })) as any;
  t.like(dupRoute, { code: 'EEXIST', op: 'RTM_NEWROUTE' });

  const unreachable = await t.throwsAsync(w.inCtr.routeAdd({ dst: parseCidr('198.51.100.0/24'), gw: parseIP('10.10.0.2') })) as any;
  t.like(unreachable, { code: 'ENETUNREACH', extack: 'Nexthop has invalid gateway' });

  // The socket is still usable after errors: the next request gets its own reply.
  t.is((await w.host.linkGet('br0'))?.index, br);
});

eachSocket('a dump that spans many datagrams is read to the end', async (t, kind) => {
  const w = world(t, kind);
  const { eth0 } = await wire(w);
  // 600 routes: their dump is well over one 32 KiB datagram.
  for (let i = 0; i < 600; i++) await w.inCtr.routeAdd({ dst: parseCidr(`10.${100 + (i >> 8)}.${i & 0xff}.0/24`), gw: parseIP('10.77.0.1') });
  const ours = await routesFromUs(w.inCtr, 4);
  t.true(ours.length > 600);
  t.deepEqual(ours, routesFromIp(w.ctr, 4));
  t.is((await w.inCtr.routeList(4)).filter((r) => r.oif === eth0 && r.gw).length, 600);
});

/** rtmsg + RTA_DST + RTA_GATEWAY for `dst/24 via gw` in table main, written out by hand. */
function routeBody(dst: string, gw: string): Buffer {
  const rtmsg = Buffer.from([2 /* AF_INET */, 24, 0, 0, 254 /* main */, 3 /* boot */, 0 /* universe */, 1 /* unicast */, 0, 0, 0, 0]);
  return Buffer.concat([rtmsg, encodeAttrs([attr.bytes(1, Buffer.from(dst.split('.').map(Number))), attr.bytes(5, Buffer.from(gw.split('.').map(Number)))])]);
}

eachSocket('batch sends many rtnetlink requests in one datagram and names the one that failed', async (t, kind) => {
  const w = world(t, kind);
  await wire(w);
  const sock = openSocket(kind, Sandbox.path(w.ctr));
  t.teardown(() => sock.close());
  const RTM_NEWROUTE = 24;
  const reqs = Array.from({ length: 40 }, (_, i) => ({
    type: RTM_NEWROUTE, flags: NLM_F_CREATE | NLM_F_EXCL, body: routeBody(`172.16.${i}.0`, '10.77.0.1'), op: `route ${i}`,
  }));
  t.deepEqual(await sock.batch(reqs), [], 'only ACKs come back');
  t.is(ipJson(w.ctr, 'route', 'show', 'via', '10.77.0.1').filter((r: any) => r.dst.startsWith('172.16.')).length, 40);

  // Request 3 repeats route 0 (EEXIST), request 5 has an unreachable gateway: the first error is
  // thrown with its own op, and the requests around it still took effect.
  const mixed = Array.from({ length: 8 }, (_, i) => ({
    type: RTM_NEWROUTE, flags: NLM_F_CREATE | NLM_F_EXCL,
    body: i === 3 ? routeBody('172.16.0.0', '10.77.0.1') : i === 5 ? routeBody('172.17.5.0', '10.99.0.1') : routeBody(`172.17.${i}.0`, '10.77.0.1'),
    op: `route ${i}`,
  }));
  const err = await t.throwsAsync(sock.batch(mixed)) as any;
  t.like(err, { code: 'EEXIST', op: 'route 3' });
  const made = ipJson(w.ctr, 'route', 'show').map((r: any) => r.dst).filter((d: string) => d.startsWith('172.17.')).sort();
  t.deepEqual(made, ['172.17.0.0/24', '172.17.1.0/24', '172.17.2.0/24', '172.17.4.0/24', '172.17.6.0/24', '172.17.7.0/24']);
  // The socket still answers in order after the failed batch.
  t.deepEqual(await sock.batch(reqs.slice(0, 1).map((r) => ({ ...r, body: routeBody('172.18.0.0', '10.77.0.1') }))), []);
});

netnsTest('[async] a link delete waits in the kernel off the event loop, and deletes at once all land', async (t) => {
  const w = world(t, 'async');
  const names = Array.from({ length: 8 }, (_, i) => `vd${i}`);
  for (const name of names) await w.host.linkAddVeth({ name, peerName: `pd${name}`, peerNetnsFd: w.ctrNs.fd, peerHandle: w.inCtr });
  const indexes = await Promise.all(names.map(async (n) => (await w.host.linkGet(n))!.index));
  // A veth delete holds its sendmsg for RCU grace periods (~20 ms). Sent from the addon's own
  // thread, the loop reaches its check phase (setImmediate) before the delete is answered; sent
  // on the loop, the answer would be there (a microtask) before the loop turned at all.
  const order: string[] = [];
  const first = w.host.linkDel(indexes[0]!).then(() => order.push('deleted'));
  setImmediate(() => order.push('loop turned'));
  await first;
  t.deepEqual(order, ['loop turned', 'deleted']);
  await Promise.all(indexes.slice(1).map((i) => w.host.linkDel(i)));
  const left = (ipJson(w.sb.host, 'link', 'show') as any[]).map((l) => l.ifname as string).filter((n) => n.startsWith('vd'));
  t.deepEqual(left, []);
  t.deepEqual((ipJson(w.ctr, 'link', 'show') as any[]).map((l) => l.ifname as string).filter((n) => n.startsWith('pd')), [], 'the peers went with them');
  // A delete of what is gone fails with the kernel's error, from the thread as from the loop.
  t.like(await t.throwsAsync(w.host.linkDel(indexes[0]!)) as any, { code: 'ENODEV' });
});

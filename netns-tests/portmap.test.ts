/**
 * portmap end to end: bridge + host-local + portmap executables in a sandbox host namespace,
 * real TCP/UDP servers in container namespaces, clients in the outside namespace, the host,
 * and other containers. Each test DELs what it ADDed and checks that no element of ours is left.
 */
import { parseCidr } from '../pkg/ip/cidr.ts';
import { BlockingNetlinkSocket, NETLINK_NETFILTER } from '../pkg/netlink/socket.ts';
import { Nftables } from '../pkg/nftables/handle.ts';
import { applyRuleset } from '../pkg/nftables/model.ts';
import { SET, legacyHairpinElements, portmapElements, portmapSkeleton } from '../plugins/portmap/rules.ts';
import { Sandbox, ip, tcpRequest } from './lib/sandbox.ts';
import { netnsSerial } from './lib/netns-test.ts';
import { NET_A, NET_B, NFT, attach, bridgeConf, detach, nftView, owners, portmapConf, serve, udpRequest, withoutSets } from './lib/portmap-lib.ts';

// Every test is serial (netnsSerial): each starts several Node servers and clients, and run
// together on two cores they starve.
const OWNER = (cid: string, net = NET_A.name) => `net=${net} id=${cid} if=eth0`;
const WEB = [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }];

for (const brnf of ['0', '1']) {
  netnsSerial(`TCP mapping works from outside, host address, localhost and hairpin (bridge-nf-call-iptables=${brnf})`, async (t) => {
    const sb = new Sandbox('p');
    t.teardown(() => sb.cleanup());
    const out = sb.outside();
    // With 0 the host behaves as without br_netfilter: bridged frames never see IP netfilter.
    for (const k of ['bridge-nf-call-iptables', 'bridge-nf-call-ip6tables']) sb.exec(sb.host, 'sysctl', ['-qw', `net.bridge.${k}=${brnf}`]);
    const c1 = sb.container('c1');
    const c2 = sb.container('c2');
    // hairpinMode: with br_netfilter, DNAT happens while the frame is still being bridged, so
    // reaching itself sends the frame back out of the port it came in on (docs/cni-notes.md §5.4).
    const a1 = attach(sb, NET_A, c1, 'ctr1', WEB, { hairpinMode: true });
    const a2 = attach(sb, NET_A, c2, 'ctr2', [], { hairpinMode: true });
    await serve(sb, c1, 'web1', 80);

    t.is(tcpRequest(sb, out, '198.51.100.1', 8080), 'web1 198.51.100.2', 'outside peer');
    t.is(tcpRequest(sb, out, '2001:db8:ff::1', 8080), 'web1 2001:db8:ff::2', 'outside peer over IPv6');
    t.is(tcpRequest(sb, sb.host, '198.51.100.1', 8080), 'web1 198.51.100.1', 'host to its own uplink address');
    t.is(tcpRequest(sb, sb.host, '127.0.0.1', 8080), 'web1 10.77.0.1', 'localhost, masqueraded to the bridge address');
    t.is(tcpRequest(sb, c1, '198.51.100.1', 8080), 'web1 10.77.0.1', 'hairpin from the same container');
    t.is(tcpRequest(sb, c2, '198.51.100.1', 8080), 'web1 10.77.0.1', 'hairpin from another container');
    t.is(tcpRequest(sb, c2, '2001:db8:ff::1', 8080), 'web1 fd77::1', 'IPv6 hairpin from another container');
    const held = nftView(sb).elements;
    t.deepEqual(Object.fromEntries(Object.entries(held).filter(([, e]) => e.length).map(([k, e]) => [k, e.length])),
      { portmap_any4: 1, portmap_any6: 1, portmap_hairpin_if4: 2, portmap_hairpin_if6: 2 }, 'a mapping per family; per address a hairpin element for its bridge and one for bridged frames');
    t.deepEqual([...new Set(Object.values(held).flat())], [OWNER('ctr1')]);

    const d1 = detach(sb, NET_A, a1, WEB);
    t.is(d1.pm.code, 0, d1.pm.stdout);
    t.is(d1.br.code, 0, d1.br.stdout);
    const d2 = detach(sb, NET_A, a2, []);
    t.is(d2.pm.code, 0, d2.pm.stdout);
    const v = nftView(sb);
    t.deepEqual(owners(v), [], 'no element of ours is left');
    t.deepEqual(v.tables, ['inet cnikit'], 'only our table, with its shared skeleton');
    t.is(tcpRequest(sb, out, '198.51.100.1', 8080, 'x', 1000), '', 'the port is closed again');

    // DEL again (runtime retry) is a no-op success.
    t.is(detach(sb, NET_A, a1, WEB).pm.code, 0);
  });
}

netnsSerial('UDP mapping from the outside; hostIP-only mapping answers only on that address', async (t) => {
  const sb = new Sandbox('u');
  t.teardown(() => sb.cleanup());
  const out = sb.outside();
  const c1 = sb.container('c1');
  const c2 = sb.container('c2');
  const maps = [
    { hostPort: 5353, containerPort: 53, protocol: 'udp' },
    { hostPort: 9090, containerPort: 90, protocol: 'tcp', hostIP: '198.51.100.1' },
    { hostPort: 9191, containerPort: 90, protocol: 'tcp', hostIP: '2001:db8:ff::1' },
  ];
  const a1 = attach(sb, NET_A, c1, 'ctr1', maps);
  attach(sb, NET_A, c2, 'ctr2', []);
  await serve(sb, c1, 'dns1', 53, 'udp');
  await serve(sb, c1, 'svc1', 90);
  t.is(udpRequest(sb, out, '198.51.100.1', 5353), 'dns1 198.51.100.2');
  t.is(udpRequest(sb, out, '2001:db8:ff::1', 5353), 'dns1 2001:db8:ff::2');
  t.is(tcpRequest(sb, out, '198.51.100.1', 9090), 'svc1 198.51.100.2');
  // 10.77.0.1 is also a host address, but the mapping is bound to 198.51.100.1 only.
  t.is(tcpRequest(sb, c2, '10.77.0.1', 9090, 'x', 1000), '');
  t.is(tcpRequest(sb, out, '2001:db8:ff::1', 9090, 'x', 1000), '', 'an IPv4 hostIP is not mapped on IPv6');
  t.is(tcpRequest(sb, out, '2001:db8:ff::1', 9191), 'svc1 2001:db8:ff::2', 'an IPv6 hostIP mapping');
  t.is(tcpRequest(sb, out, '198.51.100.1', 9191, 'x', 1000), '', 'an IPv6 hostIP is not mapped on IPv4');
  t.is(tcpRequest(sb, c2, 'fd77::1', 9191, 'x', 1000), '', 'nor on another IPv6 address of the host');
  const d = detach(sb, NET_A, a1, maps);
  t.is(d.pm.code, 0, d.pm.stdout);
  t.is(udpRequest(sb, out, '198.51.100.1', 5353, 800), '');
  t.deepEqual(owners(nftView(sb)), []);
});

netnsSerial('a UDP flow that began before the mapping is mapped after ADD (stale conntrack entry flushed)', async (t) => {
  const sb = new Sandbox('f');
  t.teardown(() => sb.cleanup());
  const out = sb.outside();
  const c1 = sb.container('c1');
  const c2 = sb.container('c2');
  // A first mapping makes the host's nat hooks (and so conntrack) active.
  attach(sb, NET_A, c1, 'ctr1', WEB);
  t.is(udpRequest(sb, out, '198.51.100.1', 5353, 700, 40053), '', 'nothing answers yet; conntrack now holds the flow');
  const maps = [{ hostPort: 5353, containerPort: 53, protocol: 'udp' }];
  const a2 = attach(sb, NET_A, c2, 'ctr2', maps);
  await serve(sb, c2, 'dns2', 53, 'udp');
  t.is(udpRequest(sb, out, '198.51.100.1', 5353, 2000, 40053), 'dns2 198.51.100.2', 'the same 5-tuple now reaches the container');
  t.is(detach(sb, NET_A, a2, maps).pm.code, 0);
});

netnsSerial('a host port held by another container: clear error, nothing of the second ADD lands, the first keeps working', async (t) => {
  const sb = new Sandbox('c');
  t.teardown(() => sb.cleanup());
  const out = sb.outside();
  const c1 = sb.container('c1');
  const c2 = sb.container('c2');
  attach(sb, NET_A, c1, 'ctr1', WEB);
  await serve(sb, c1, 'web1', 80);
  const br = sb.plugin('bridge', { command: 'ADD', containerId: 'ctr2', netns: Sandbox.path(c2), conf: bridgeConf(sb, NET_A) });
  t.is(br.code, 0, br.stdout);
  // The first mapping is free, the second collides: the failure is in the middle of the batch.
  const maps = [{ hostPort: 7070, containerPort: 70, protocol: 'tcp' }, { hostPort: 8080, containerPort: 80, protocol: 'tcp' }];
  const pm = sb.plugin('portmap', { command: 'ADD', containerId: 'ctr2', netns: Sandbox.path(c2), conf: portmapConf(NET_A, maps, br.json) });
  t.is(pm.code, 1);
  t.is(pm.json.code, 999);
  t.is(pm.json.msg, 'failed to map host port tcp 8080 -> 10.77.0.3:80');
  t.regex(pm.json.details, /already mapped by container "ctr1" \(interface eth0\) of network "pmnet"/);
  t.deepEqual(owners(nftView(sb)).filter((o) => o.includes('ctr2')), [], 'nothing of ctr2 was added, not even 7070');
  t.is(tcpRequest(sb, out, '198.51.100.1', 8080), 'web1 198.51.100.2');

  // The runtime DELs the failed attachment with the same mappings: ctr1's element must survive.
  const del = sb.plugin('portmap', { command: 'DEL', containerId: 'ctr2', netns: Sandbox.path(c2), conf: portmapConf(NET_A, maps, br.json) });
  t.is(del.code, 0, del.stdout);
  t.is(tcpRequest(sb, out, '198.51.100.1', 8080), 'web1 198.51.100.2');
  t.is(owners(nftView(sb)).filter((o) => o === OWNER('ctr1')).length, 6);
});

netnsSerial('CHECK passes after ADD and fails once an element is gone; DEL without runtimeConfig finds elements by owner', async (t) => {
  const sb = new Sandbox('k');
  t.teardown(() => sb.cleanup());
  const c1 = sb.container('c1');
  const a1 = attach(sb, NET_A, c1, 'ctr1', WEB);
  const check = () => sb.plugin('portmap', { command: 'CHECK', containerId: 'ctr1', netns: Sandbox.path(c1), conf: portmapConf(NET_A, WEB, a1.result) });
  t.is(check().code, 0, check().stdout);
  sb.exec(sb.host, NFT, ['delete', 'element', 'inet', 'cnikit', 'portmap_any4', '{ tcp . 8080 }']);
  sb.exec(sb.host, 'sysctl', ['-qw', 'net.ipv4.conf.cnk0.route_localnet=0']);
  const bad = check();
  t.is(bad.code, 1);
  t.regex(bad.json.details, /tcp 8080 -> 10\.77\.0\.2:80 is missing/);
  t.regex(bad.json.details, /route_localnet is off on cnk0/);
  const noCheck = sb.plugin('portmap', { command: 'CHECK', containerId: 'ctr1', netns: Sandbox.path(c1), conf: portmapConf(NET_A, WEB, undefined) });
  t.is(noCheck.json.code, 7);
  // cnitool del without CAP_ARGS: no runtimeConfig, still everything of ctr1 goes.
  const del = sb.plugin('portmap', { command: 'DEL', containerId: 'ctr1', netns: Sandbox.path(c1), conf: portmapConf(NET_A, undefined, a1.result) });
  t.is(del.code, 0, del.stdout);
  t.deepEqual(owners(nftView(sb)), []);
});

netnsSerial('two networks: GC of one removes only its stale mappings; the last GC removes our table', async (t) => {
  const sb = new Sandbox('g');
  t.teardown(() => sb.cleanup());
  const out = sb.outside();
  const ca = sb.container('ca');
  const cb = sb.container('cb');
  const ma = [{ hostPort: 8081, containerPort: 80, protocol: 'tcp' }];
  const mb = [{ hostPort: 8082, containerPort: 80, protocol: 'tcp' }];
  attach(sb, NET_A, ca, 'ctra', ma);
  attach(sb, NET_B, cb, 'ctrb', mb);
  await serve(sb, ca, 'weba', 80);
  await serve(sb, cb, 'webb', 80);
  t.is(tcpRequest(sb, out, '198.51.100.1', 8081), 'weba 198.51.100.2');
  t.is(tcpRequest(sb, out, '198.51.100.1', 8082), 'webb 198.51.100.2');

  const gc = (n: typeof NET_A, valid: { containerID: string; ifname: string }[]) => sb.plugin('portmap', {
    command: 'GC', conf: { cniVersion: '1.1.0', name: n.name, type: 'portmap', 'cni.dev/valid-attachments': valid },
  });
  // GC of network A that still lists ctra keeps everything.
  t.is(gc(NET_A, [{ containerID: 'ctra', ifname: 'eth0' }]).code, 0);
  t.is(owners(nftView(sb)).length, 12);
  // GC of network A with no valid attachment removes A's only; B keeps working.
  const r = gc(NET_A, []);
  t.is(r.code, 0, r.stdout);
  t.deepEqual([...new Set(owners(nftView(sb)))], [OWNER('ctrb', NET_B.name)]);
  t.is(tcpRequest(sb, out, '198.51.100.1', 8081, 'x', 1000), '');
  t.is(tcpRequest(sb, out, '198.51.100.1', 8082), 'webb 198.51.100.2');
  t.is(gc(NET_B, []).code, 0);
  t.deepEqual(nftView(sb).tables, [], 'no element left anywhere: table inet cnikit is gone');
});

netnsSerial('masqAll: every published connection is masqueraded; snat false: no hairpin element', async (t) => {
  const sb = new Sandbox('q');
  t.teardown(() => sb.cleanup());
  const out = sb.outside();
  const c1 = sb.container('c1');
  const c2 = sb.container('c2');
  const a1 = attach(sb, NET_A, c1, 'ctr1', WEB, {}, { masqAll: true });
  const maps2 = [{ hostPort: 8090, containerPort: 80, protocol: 'tcp' }];
  const a2 = attach(sb, NET_A, c2, 'ctr2', maps2, {}, { snat: false });
  await serve(sb, c1, 'web1', 80);
  await serve(sb, c2, 'web2', 80);
  t.is(tcpRequest(sb, out, '198.51.100.1', 8080), 'web1 10.77.0.1', 'outside peer masqueraded to the bridge address');
  t.is(tcpRequest(sb, out, '198.51.100.1', 8090), 'web2 198.51.100.2', 'snat false: the peer address is kept');
  const v = nftView(sb);
  t.deepEqual(v.elements.portmap_masqall4, [OWNER('ctr1')], 'only the masqAll attachment has a masquerade element');
  t.deepEqual(v.elements.portmap_hairpin_if4 ?? [], [], 'and no hairpin element: snat false has none, masqAll covers it');
  t.is(detach(sb, NET_A, a1, WEB).pm.code, 0);
  t.is(detach(sb, NET_A, a2, maps2).pm.code, 0);
  t.deepEqual(owners(nftView(sb)), []);
});

netnsSerial('bad config is refused with the right code and changes nothing', (t) => {
  const sb = new Sandbox('b');
  t.teardown(() => sb.cleanup());
  const c1 = sb.container('c1');
  const prev = { cniVersion: '1.0.0', ips: [{ address: '10.77.0.9/24' }] };
  const run = (mappings: unknown, extra: Record<string, unknown> = {}, prevResult: unknown = prev) =>
    sb.plugin('portmap', { command: 'ADD', containerId: 'x', netns: Sandbox.path(c1), conf: portmapConf(NET_A, mappings as never, prevResult, extra) });
  t.is(run([{ hostPort: 0, containerPort: 80 }]).json.code, 7);
  t.is(run([{ hostPort: 80, containerPort: 80, protocol: 'icmp' }]).json.code, 7);
  t.is(run([{ hostPort: 80, containerPort: 80, hostIP: 'nope' }]).json.code, 7);
  t.is(run([{ hostPort: 80, containerPort: 80 }, { hostPort: 80, containerPort: 81 }]).json.code, 7);
  t.is(run(WEB, {}, null).json.code, 7, 'no prevResult');
  for (const [k, v] of [['markMasqBit', 13], ['externalSetMarkChain', 'X'], ['conditionsV4', ['-s', '1.2.3.4']], ['conditionsV6', ['!', '-d', '::1']], ['backend', 'iptables']] as const) {
    const r = run(WEB, { [k]: v });
    t.is(r.json.code, 2, `${k}: ${r.stdout}`);
    t.true(r.json.msg.includes(k));
  }
  // No mappings: prevResult is echoed and nothing is created.
  const echo = run([]);
  t.is(echo.code, 0);
  t.deepEqual(echo.json.ips, prev.ips);
  t.deepEqual(nftView(sb).tables, []);
});

netnsSerial('20 concurrent ADDs then 20 concurrent DELs: every mapping lands once, fixed rules are not duplicated', async (t) => {
  const sb = new Sandbox('z');
  t.teardown(() => sb.cleanup());
  const ns = sb.container('c');
  // portmap only reads addresses from prevResult; the containers need not exist for this.
  const prev = (i: number) => ({ cniVersion: '1.0.0', interfaces: [{ name: 'eth0', sandbox: Sandbox.path(ns) }], ips: [{ address: `10.90.${i}.2/24`, interface: 0 }] });
  const maps = (i: number) => [{ hostPort: 10000 + i, containerPort: 80, protocol: 'tcp' }];
  const run = (command: string, i: number) => sb.pluginAsync('portmap', { command, containerId: `par${i}`, netns: Sandbox.path(ns), conf: portmapConf(NET_A, maps(i), prev(i)) });
  // The route a bridge would give: the hairpin element names the link that leads to each address.
  ip('-n', sb.host, 'route', 'add', '10.90.0.0/16', 'dev', 'lo');
  const adds = await Promise.all(Array.from({ length: 20 }, (_, i) => run('ADD', i)));
  t.deepEqual(adds.filter((r) => r.code !== 0).map((r) => r.stdout), []);
  const v = nftView(sb);
  t.is(v.rules, 13, 'the fixed rules exist once');
  t.is(owners(v).length, 60, 'a map element and two hairpin elements per container');
  t.is(v.elements.portmap_hairpin_if4?.length, 40);
  const dels = await Promise.all(Array.from({ length: 20 }, (_, i) => run('DEL', i)));
  t.deepEqual(dels.filter((r) => r.code !== 0).map((r) => r.stdout), []);
  t.deepEqual(owners(nftView(sb)), []);
});

netnsSerial('upgrade: an attachment made with the legacy hairpin range keeps its hairpin until its DEL removes it; new ADDs use the hash set', async (t) => {
  const sb = new Sandbox('u');
  t.teardown(() => sb.cleanup());
  sb.outside();
  const c1 = sb.container('c1');
  const c2 = sb.container('c2');
  // ctr1's bridge attachment, then its port mapping as cnikit wrote it before 2026-12: the ruleset
  // without the hash sets and their rules, and a subnet range in portmap_hairpin4.
  const br1 = sb.plugin('bridge', { command: 'ADD', containerId: 'ctr1', netns: Sandbox.path(c1), conf: bridgeConf(sb, NET_A, { hairpinMode: true }) });
  t.is(br1.code, 0, br1.stdout);
  const v4 = parseCidr((br1.json.ips as { address: string }[]).find((i) => !i.address.includes(':'))!.address);
  const legacy = {
    ...withoutSets(portmapSkeleton(), [SET.HAIRPIN_IF4, SET.HAIRPIN_IF6, SET.MASQALL4, SET.MASQALL6]),
    elements: [
      ...portmapElements({ network: NET_A.name, containerId: 'ctr1', ifName: 'eth0', v4, mappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }], snat: false, masqAll: false }),
      { ...legacyHairpinElements({ v4 })[0]!, comment: OWNER('ctr1') },
    ],
  };
  const nft = new Nftables(BlockingNetlinkSocket.open(NETLINK_NETFILTER, sb.hostPath));
  t.teardown(() => nft.close());
  await applyRuleset(nft, legacy);
  t.is(nftView(sb).rules, 9, 'the legacy layout');
  await serve(sb, c1, 'web1', 80);
  t.is(tcpRequest(sb, c1, '198.51.100.1', 8080), 'web1 10.77.0.1', 'hairpin through the legacy range');

  const a2 = attach(sb, NET_A, c2, 'ctr2', [{ hostPort: 8090, containerPort: 80, protocol: 'tcp' }], { hairpinMode: true });
  const v = nftView(sb);
  t.is(v.rules, 13, 'the new layout, the legacy rule kept');
  t.deepEqual(v.elements.portmap_hairpin4, [OWNER('ctr1')], 'the legacy element is kept');
  t.deepEqual(v.elements.portmap_hairpin_if4, [OWNER('ctr2'), OWNER('ctr2')], 'the new attachment writes the hash set only');
  t.is(tcpRequest(sb, c1, '198.51.100.1', 8080), 'web1 10.77.0.1', 'the legacy hairpin still works');

  const del1 = sb.plugin('portmap', { command: 'DEL', containerId: 'ctr1', netns: Sandbox.path(c1), conf: portmapConf(NET_A, WEB, br1.json) });
  t.is(del1.code, 0, del1.stdout);
  t.deepEqual(owners(nftView(sb)).filter((o) => o === OWNER('ctr1')), [], 'DEL removed the legacy element and the mapping');
  t.is(detach(sb, NET_A, a2, [{ hostPort: 8090, containerPort: 80, protocol: 'tcp' }]).pm.code, 0);
  t.deepEqual(owners(nftView(sb)), []);
});

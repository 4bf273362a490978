/**
 * bridge ipMasq end to end: a server in the outside namespace sees container traffic coming from
 * the host's uplink address (IPv4 and IPv6), a server in a neighbour container sees the real
 * container address, and DEL/GC leave no element of ours.
 */
import { type Cidr, parseCidr } from '../pkg/ip/cidr.ts';
import { BlockingNetlinkSocket, NETLINK_NETFILTER } from '../pkg/netlink/socket.ts';
import { Nftables } from '../pkg/nftables/handle.ts';
import { applyRuleset } from '../pkg/nftables/model.ts';
import { IPMASQ_SET, ipMasqSkeleton, legacyIpMasqElements } from '../plugins/bridge/ipmasq.ts';
import { Sandbox, tcpRequest } from './lib/sandbox.ts';
import { netnsTest } from './lib/netns-test.ts';
import { NET_A, bridgeConf, nftView, owners, serve, withoutSets } from './lib/portmap-lib.ts';

netnsTest('ipMasq: outside sees the uplink address, neighbours see the container; DEL and GC remove our elements', async (t) => {
  const sb = new Sandbox('m');
  t.teardown(() => sb.cleanup());
  const out = sb.outside();
  const c1 = sb.container('c1');
  const c2 = sb.container('c2');
  const conf = bridgeConf(sb, NET_A, { ipMasq: true });
  const add = (ns: string, cid: string) => sb.plugin('bridge', { command: 'ADD', containerId: cid, netns: Sandbox.path(ns), conf });
  const r1 = add(c1, 'ctr1');
  t.is(r1.code, 0, r1.stdout);
  const r2 = add(c2, 'ctr2');
  t.is(r2.code, 0, r2.stdout);
  await serve(sb, out, 'far', 7000);
  await serve(sb, c2, 'near', 7000);

  t.is(tcpRequest(sb, c1, '198.51.100.2', 7000), 'far 198.51.100.1', 'IPv4 masqueraded to the uplink address');
  t.is(tcpRequest(sb, c1, '2001:db8:ff::2', 7000), 'far 2001:db8:ff::1', 'IPv6 masqueraded to the uplink address');
  t.is(tcpRequest(sb, c1, '10.77.0.3', 7000), 'near 10.77.0.2', 'no masquerade inside the subnet');
  t.is(tcpRequest(sb, c1, 'fd77::3', 7000), 'near fd77::2', 'no masquerade inside the IPv6 subnet');
  const mine = owners(nftView(sb)).filter((o) => o === 'net=pmnet id=ctr1 if=eth0');
  t.is(mine.length, 4, 'two elements per address, two addresses');

  const check = sb.plugin('bridge', { command: 'CHECK', containerId: 'ctr1', netns: Sandbox.path(c1), conf: { ...conf, prevResult: r1.json } });
  t.is(check.code, 0, check.stdout);

  const del = sb.plugin('bridge', { command: 'DEL', containerId: 'ctr1', netns: Sandbox.path(c1), conf: { ...conf, prevResult: r1.json } });
  t.is(del.code, 0, del.stdout);
  t.deepEqual(owners(nftView(sb)).filter((o) => o.includes('ctr1')), []);
  t.is(sb.plugin('bridge', { command: 'DEL', containerId: 'ctr1', netns: Sandbox.path(c1), conf }).code, 0, 'DEL again, without prevResult');

  // ctr2 is gone from the runtime's view: GC removes its elements and then our empty table.
  const gc = sb.plugin('bridge', { command: 'GC', conf: { ...conf, cniVersion: '1.1.0', 'cni.dev/valid-attachments': [] } });
  t.is(gc.code, 0, gc.stdout);
  t.deepEqual(nftView(sb).tables, []);
});

netnsTest('ipMasq upgrade: an attachment with the legacy ranges keeps its masquerade, passes CHECK, and DEL removes it', async (t) => {
  const sb = new Sandbox('mu');
  t.teardown(() => sb.cleanup());
  const out = sb.outside();
  const c1 = sb.container('c1');
  const c2 = sb.container('c2');
  const conf = bridgeConf(sb, NET_A, { ipMasq: true });
  // ctr1 as cnikit attached it before 2026-12: the ruleset without the hash sets, its ranges in ipmasq4/6.
  const r1 = sb.plugin('bridge', { command: 'ADD', containerId: 'ctr1', netns: Sandbox.path(c1), conf: { ...conf, ipMasq: false } });
  t.is(r1.code, 0, r1.stdout);
  const addrs: Cidr[] = (r1.json.ips as { address: string }[]).map((i) => parseCidr(i.address));
  const nft = new Nftables(BlockingNetlinkSocket.open(NETLINK_NETFILTER, sb.hostPath));
  t.teardown(() => nft.close());
  await applyRuleset(nft, {
    ...withoutSets(ipMasqSkeleton(), [...Object.values(IPMASQ_SET.src), ...Object.values(IPMASQ_SET.local)]),
    elements: legacyIpMasqElements(addrs).map((e) => ({ ...e, comment: 'net=pmnet id=ctr1 if=eth0' })),
  });
  await serve(sb, out, 'far', 7000);
  t.is(tcpRequest(sb, c1, '198.51.100.2', 7000), 'far 198.51.100.1', 'masqueraded by the legacy ranges');

  const r2 = sb.plugin('bridge', { command: 'ADD', containerId: 'ctr2', netns: Sandbox.path(c2), conf });
  t.is(r2.code, 0, r2.stdout);
  const v = nftView(sb);
  t.deepEqual(v.elements.ipmasq4, ['net=pmnet id=ctr1 if=eth0', 'net=pmnet id=ctr1 if=eth0'], 'the legacy ranges are kept');
  t.deepEqual(v.elements.ipmasq_src4, ['net=pmnet id=ctr2 if=eth0'], 'the new attachment writes the hash sets only');
  t.is(tcpRequest(sb, c1, '198.51.100.2', 7000), 'far 198.51.100.1', 'the legacy masquerade still works');
  t.is(tcpRequest(sb, c2, '2001:db8:ff::2', 7000), 'far 2001:db8:ff::1', 'and the new one');
  const check = sb.plugin('bridge', { command: 'CHECK', containerId: 'ctr1', netns: Sandbox.path(c1), conf: { ...conf, prevResult: r1.json } });
  t.is(check.code, 0, check.stdout);

  const del = sb.plugin('bridge', { command: 'DEL', containerId: 'ctr1', netns: Sandbox.path(c1), conf: { ...conf, prevResult: r1.json } });
  t.is(del.code, 0, del.stdout);
  t.deepEqual(owners(nftView(sb)).filter((o) => o.includes('ctr1')), [], 'DEL removed the legacy ranges');
  t.is(sb.plugin('bridge', { command: 'DEL', containerId: 'ctr2', netns: Sandbox.path(c2), conf: { ...conf, prevResult: r2.json } }).code, 0);
  t.deepEqual(owners(nftView(sb)), []);
});

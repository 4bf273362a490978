/**
 * Isolation between and inside networks (issue 13), with real packets: the firewall's
 * `ingressPolicy` (same-bridge keeps other networks out while each reaches the outside and the
 * other's published ports through a host address, as Docker does), `strictIsolation` (netavark's
 * strict: also nothing out into another network, an open one included), `internal` (nothing in or
 * out of the bridge, names still resolve), `icc: false` (no traffic between the containers of
 * one bridge, bridged or routed), and the admin chain that runs first. The host's FORWARD policy
 * is drop (iptables-nft) unless a test says otherwise, as on a host where Docker runs.
 */
import { Sandbox, tcpRequest } from './lib/sandbox.ts';
import { netnsSerial } from './lib/netns-test.ts';
import { NFT, type NetSpec, serve } from './lib/portmap-lib.ts';
import { attach, bridgeNf, detach, firewallCall, forwardPolicy, hostCmd, iptablesS, setComments } from './lib/firewall-lib.ts';
import { resolve } from './lib/dns-lib.ts';

const A: NetSpec = { name: 'isoa', bridge: 'cnkia', subnet4: '10.81.1.0/24', subnet6: 'fd81:1::/64' };
const B: NetSpec = { name: 'isob', bridge: 'cnkib', subnet4: '10.81.2.0/24', subnet6: 'fd81:2::/64' };
const S: NetSpec = { name: 'isos', bridge: 'cnkis', subnet4: '10.81.3.0/24', subnet6: 'fd81:3::/64' };
const O: NetSpec = { name: 'isoo', bridge: 'cnkio', subnet4: '10.81.4.0/24', subnet6: 'fd81:4::/64' };
const PUB_B = [{ hostPort: 8081, containerPort: 80, protocol: 'tcp' }];

/** The server's reply (`<name> <peer address it saw>`), '' when nothing answered. */
const reply = (sb: Sandbox, from: string, host: string, port: number): string => tcpRequest(sb, from, host, port, 'x', 1500);

netnsSerial('same-bridge: two networks cannot reach each other by address, reach the outside and each other\'s published port via the host', async (t) => {
  const sb = new Sandbox('is');
  t.teardown(() => sb.cleanup());
  const out = sb.outside();
  bridgeNf(sb, true);
  forwardPolicy(sb, 'DROP');
  const fw = { ingressPolicy: 'same-bridge' };
  const a1 = attach(sb, A, sb.container('a1'), 'a1', { firewall: fw });
  const a2 = attach(sb, A, sb.container('a2'), 'a2', { firewall: fw });
  const b1 = attach(sb, B, sb.container('b1'), 'b1', { firewall: fw, mappings: PUB_B });
  for (const a of [a1, a2, b1]) await serve(sb, a.ns, a.cid, 80);
  await serve(sb, out, 'outside', 8000);

  t.is(reply(sb, a1.ns, a2.ip4, 80), `a2 ${a1.ip4}`, 'inside network A');
  t.is(reply(sb, a1.ns, a2.ip6, 80), `a2 ${a1.ip6}`, 'inside network A over IPv6');
  t.is(reply(sb, a1.ns, b1.ip4, 80), '', 'A -> B by address is dropped');
  t.is(reply(sb, a1.ns, b1.ip6, 80), '', 'A -> B by address over IPv6 is dropped');
  t.is(reply(sb, b1.ns, a1.ip4, 80), '', 'B -> A by address is dropped');
  // Bridge's ipMasq masquerades what leaves a container's subnet, also towards another bridge.
  t.is(reply(sb, a1.ns, '198.51.100.1', 8081), 'b1 10.81.2.1', 'A reaches B\'s published port through the host address');
  t.is(reply(sb, out, '198.51.100.1', 8081), 'b1 198.51.100.2', 'the outside reaches it too');
  t.is(reply(sb, a1.ns, '198.51.100.2', 8000), 'outside 198.51.100.1', 'A reaches the outside');
  t.is(reply(sb, b1.ns, '198.51.100.2', 8000), 'outside 198.51.100.1', 'B reaches the outside');
  // "Whatever the routes": a host route to B through A's gateway changes nothing.
  sb.exec(a1.ns, 'ip', ['route', 'add', `${b1.ip4}/32`, 'via', '10.81.1.1']);
  t.is(reply(sb, a1.ns, b1.ip4, 80), '', 'not with an explicit route either');

  for (const a of [a1, a2, b1]) detach(sb, a);
  t.deepEqual(setComments(sb, 'firewall_isolated'), []);
  t.notRegex(iptablesS(sb), /cnikit/);
});

netnsSerial('ingress policies decide for the destination: open lets everyone in, same-bridge keeps other networks out; without a drop policy as well', async (t) => {
  const sb = new Sandbox('ip');
  t.teardown(() => sb.cleanup());
  bridgeNf(sb, true);
  const a1 = attach(sb, A, sb.container('a1'), 'a1', { firewall: { ingressPolicy: 'open' } });
  const b1 = attach(sb, B, sb.container('b1'), 'b1', { firewall: { ingressPolicy: 'same-bridge' } });
  for (const a of [a1, b1]) await serve(sb, a.ns, a.cid, 80);
  t.is(reply(sb, b1.ns, a1.ip4, 80), 'a1 10.81.1.1', 'B -> A (open) passes (masqueraded by bridge\'s ipMasq)');
  t.is(reply(sb, a1.ns, b1.ip4, 80), '', 'A -> B (same-bridge) is dropped');
  // The same network ADDs again with another policy (its conflist was edited): updated in place.
  const again = firewallCall(sb, a1, 'ADD', { ingressPolicy: 'same-bridge' });
  t.is(again.code, 0, again.stdout);
  t.is(reply(sb, b1.ns, a1.ip4, 80), '', 'now B -> A is dropped too');
  const back = firewallCall(sb, a1, 'ADD', { ingressPolicy: 'open' });
  t.is(back.code, 0, back.stdout);
  t.regex(back.stderr, /ingress isolation of bridge cnkia is set, the config does not ask for it: updated to the config of network .*isoa/);
  t.is(reply(sb, b1.ns, a1.ip4, 80), 'a1 10.81.1.1', 'and back');
  // Another network on A's bridge with other settings is refused while A has containers.
  const other = sb.plugin('firewall', { command: 'ADD', containerId: 'x1', netns: Sandbox.path(a1.ns),
    conf: { cniVersion: '1.0.0', name: 'intruder', type: 'firewall', internal: true, prevResult: a1.result } });
  t.is(other.json?.code, 7, other.stdout);
  t.regex(other.json?.details ?? '', /bridge "cnkia" is already used by network "isoa"/);
  detach(sb, a1);
  detach(sb, b1);
  t.deepEqual(setComments(sb, 'firewall_bridges'), []);
});

netnsSerial('strictIsolation: containers reach each other, the outside and other networks\' published ports; nothing passes between it and an open or same-bridge network by address, either way', async (t) => {
  const sb = new Sandbox('st');
  t.teardown(() => sb.cleanup());
  const out = sb.outside();
  bridgeNf(sb, true);
  forwardPolicy(sb, 'DROP');
  const strict = { ingressPolicy: 'same-bridge', strictIsolation: true };
  const s1 = attach(sb, S, sb.container('s1'), 's1', { firewall: strict, mappings: [{ hostPort: 8084, containerPort: 80 }] });
  const s2 = attach(sb, S, sb.container('s2'), 's2', { firewall: strict });
  const o1 = attach(sb, O, sb.container('o1'), 'o1', { firewall: { ingressPolicy: 'open' }, mappings: [{ hostPort: 8085, containerPort: 80 }] });
  const b1 = attach(sb, B, sb.container('b1'), 'b1', { firewall: { ingressPolicy: 'same-bridge' }, mappings: PUB_B });
  for (const a of [s1, s2, o1, b1]) await serve(sb, a.ns, a.cid, 80);
  await serve(sb, out, 'outside', 8000);

  t.is(reply(sb, s1.ns, s2.ip4, 80), `s2 ${s1.ip4}`, 'inside the strict network');
  t.is(reply(sb, s1.ns, s2.ip6, 80), `s2 ${s1.ip6}`, 'inside it over IPv6');
  t.is(reply(sb, s1.ns, '198.51.100.2', 8000), 'outside 198.51.100.1', 'the strict network reaches the outside');
  t.is(reply(sb, s1.ns, '2001:db8:ff::2', 8000), 'outside 2001:db8:ff::1', 'over IPv6 too');
  t.is(reply(sb, b1.ns, o1.ip4, 80), 'o1 10.81.4.1', 'same-bridge -> open passes (the destination decides)');
  t.is(reply(sb, s1.ns, o1.ip4, 80), '', 'strict -> open by address is dropped (the source decides too)');
  t.is(reply(sb, s1.ns, o1.ip6, 80), '', 'over IPv6 as well');
  t.is(reply(sb, o1.ns, s1.ip4, 80), '', 'open -> strict is dropped');
  t.is(reply(sb, s1.ns, b1.ip4, 80), '', 'strict -> same-bridge is dropped');
  t.is(reply(sb, b1.ns, s1.ip4, 80), '', 'same-bridge -> strict is dropped');
  sb.exec(s1.ns, 'ip', ['route', 'add', `${o1.ip4}/32`, 'via', '10.81.3.1']);
  t.is(reply(sb, s1.ns, o1.ip4, 80), '', 'not with an explicit route either');
  t.is(reply(sb, s1.ns, '198.51.100.1', 8085), 'o1 10.81.4.1', 'strict reaches the open network\'s published port through the host address');
  t.is(reply(sb, s1.ns, '198.51.100.1', 8081), 'b1 10.81.2.1', 'and the same-bridge network\'s');
  t.is(reply(sb, o1.ns, '198.51.100.1', 8084), 's1 10.81.3.1', 'others reach the strict network\'s published port');
  t.is(reply(sb, out, '198.51.100.1', 8084), 's1 198.51.100.2', 'so does the outside');

  t.is(firewallCall(sb, s1, 'CHECK').code, 0, firewallCall(sb, s1, 'CHECK').stdout);
  const loose = firewallCall(sb, s1, 'CHECK', { ingressPolicy: 'same-bridge' });
  t.regex(loose.json?.details ?? '', /strict isolation of bridge cnkis is set, the config does not ask for it/, 'CHECK tells the config from the kernel');
  t.deepEqual(setComments(sb, 'firewall_strict'), ['net=isos']);
  detach(sb, s1);
  t.deepEqual(setComments(sb, 'firewall_strict'), ['net=isos'], 'the element stays while the network has a container');
  t.is(reply(sb, s2.ns, o1.ip4, 80), '', 'and still holds');
  detach(sb, s2);
  t.deepEqual(setComments(sb, 'firewall_strict'), [], 'the last DEL removes it');
  t.deepEqual(setComments(sb, 'firewall_isolated'), ['net=isob'], 'only the strict network\'s state went');
  for (const a of [o1, b1]) detach(sb, a);
  t.deepEqual(setComments(sb, 'firewall_bridges'), []);
  t.notRegex(iptablesS(sb), /cnikit/);
});

netnsSerial('internal: nothing in or out of the bridge, whatever the routes; containers inside reach each other and resolve names', async (t) => {
  const sb = new Sandbox('in');
  t.teardown(() => sb.cleanup());
  const out = sb.outside();
  bridgeNf(sb, true);
  forwardPolicy(sb, 'DROP');
  // The chain keeps its default route and masquerade on purpose: the firewall alone must stop it.
  const fw = { ingressPolicy: 'same-bridge', internal: true };
  const i1 = attach(sb, A, sb.container('i1'), 'web1', { firewall: fw, dns: true, mappings: [{ hostPort: 8082, containerPort: 80 }] });
  const i2 = attach(sb, A, sb.container('i2'), 'web2', { firewall: fw, dns: true });
  const b1 = attach(sb, B, sb.container('b1'), 'b1', { firewall: { ingressPolicy: 'open' }, mappings: PUB_B });
  for (const a of [i1, i2, b1]) await serve(sb, a.ns, a.cid, 80);
  await serve(sb, out, 'outside', 8000);

  t.is(reply(sb, i1.ns, i2.ip4, 80), `web2 ${i1.ip4}`, 'inside the internal network');
  t.deepEqual(resolve(sb, i1.ns, { name: 'web2.dns.cnikit', server: '10.81.1.1' }), [i2.ip4], 'names resolve');
  t.is(reply(sb, i1.ns, '198.51.100.2', 8000), '', 'no outbound, although the container has a default route');
  t.is(reply(sb, i1.ns, '2001:db8:ff::2', 8000), '', 'nor over IPv6');
  t.is(reply(sb, i1.ns, b1.ip4, 80), '', 'nor to an open network by address');
  t.is(reply(sb, i1.ns, '198.51.100.1', 8081), '', 'nor to its published port');
  t.is(reply(sb, b1.ns, i1.ip4, 80), '', 'nothing comes in');
  t.is(reply(sb, out, '198.51.100.1', 8082), '', 'not even to a published port');
  t.is(reply(sb, b1.ns, '198.51.100.2', 8000), 'outside 198.51.100.1', 'the other network is not affected');

  for (const a of [i1, i2, b1]) detach(sb, a);
  t.deepEqual(setComments(sb, 'firewall_internal'), []);
});

for (const brnf of [true, false]) {
  netnsSerial(`icc false: containers of one bridge cannot reach each other, bridged or routed, but reach the outside and are published (bridge-nf-call-iptables=${brnf ? 1 : 0})`, async (t) => {
    const sb = new Sandbox('ic');
    t.teardown(() => sb.cleanup());
    const out = sb.outside();
    bridgeNf(sb, brnf);
    forwardPolicy(sb, 'DROP');
    const fw = { icc: false };
    const c1 = attach(sb, A, sb.container('c1'), 'c1', { firewall: fw, mappings: [{ hostPort: 8083, containerPort: 80 }] });
    const c2 = attach(sb, A, sb.container('c2'), 'c2', { firewall: fw });
    for (const a of [c1, c2]) await serve(sb, a.ns, a.cid, 80);
    await serve(sb, out, 'outside', 8000);
    t.is(reply(sb, c2.ns, c1.ip4, 80), '', 'c2 -> c1 on the bridge is dropped');
    t.is(reply(sb, c2.ns, c1.ip6, 80), '', 'over IPv6 too');
    sb.exec(c2.ns, 'ip', ['route', 'add', `${c1.ip4}/32`, 'via', '10.81.1.1']);
    t.is(reply(sb, c2.ns, c1.ip4, 80), '', 'routed through the gateway as well');
    t.is(reply(sb, c1.ns, '198.51.100.2', 8000), 'outside 198.51.100.1', 'outbound passes');
    t.is(reply(sb, out, '198.51.100.1', 8083), 'c1 198.51.100.2', 'the published port answers the outside');
    t.is(firewallCall(sb, c1, 'CHECK').code, 0, firewallCall(sb, c1, 'CHECK').stdout);
    const port = JSON.parse(hostCmd(sb, 'bridge', ['-j', '-d', 'link', 'show']))
      .filter((l: { master?: string }) => l.master === A.bridge).map((l: { isolated?: boolean }) => l.isolated);
    t.deepEqual(port, [true, true], 'both ports are isolated');
    for (const a of [c1, c2]) detach(sb, a);
  });
}

netnsSerial('the admin chain (iptablesAdminChainName) runs first: its accept passes every drop, its drop drops; its rules survive our table\'s rewrites', async (t) => {
  const sb = new Sandbox('ad');
  t.teardown(() => sb.cleanup());
  const out = sb.outside();
  bridgeNf(sb, true);
  forwardPolicy(sb, 'DROP');
  const fw = { ingressPolicy: 'same-bridge', iptablesAdminChainName: 'MY-ADMIN' };
  const a1 = attach(sb, A, sb.container('a1'), 'a1', { firewall: fw });
  const b1 = attach(sb, B, sb.container('b1'), 'b1', { firewall: fw });
  for (const a of [a1, b1]) await serve(sb, a.ns, a.cid, 80);
  await serve(sb, out, 'outside', 8000);
  t.is(reply(sb, a1.ns, b1.ip4, 80), '');
  hostCmd(sb, NFT, ['add', 'rule', 'inet', 'cnikit', 'MY-ADMIN', 'ip', 'daddr', b1.ip4, 'tcp', 'dport', '80', 'accept']);
  hostCmd(sb, NFT, ['add', 'rule', 'inet', 'cnikit', 'MY-ADMIN', 'ip', 'saddr', b1.ip4, 'ip', 'daddr', '198.51.100.2', 'drop']);
  t.is(reply(sb, a1.ns, b1.ip4, 80), 'b1 10.81.2.1', 'the admin lets A reach B:80, through iptables\' drop policy too');
  t.is(reply(sb, b1.ns, '198.51.100.2', 8000), '', 'the admin keeps B from the outside');
  // Another container's ADD rewrites our chains, never the admin's.
  const a2 = attach(sb, A, sb.container('a2'), 'a2', { firewall: fw });
  t.is(JSON.parse(hostCmd(sb, NFT, ['-j', 'list', 'chain', 'inet', 'cnikit', 'MY-ADMIN'])).nftables.filter((x: { rule?: unknown }) => x.rule).length, 2);
  for (const a of [a1, a2, b1]) detach(sb, a);
  t.notRegex(iptablesS(sb), /cnikit/);
});

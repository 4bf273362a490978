/**
 * The conflist `network create` writes (CONTRACTS.md: chain order, keys, only plugins cnikit
 * builds) and what ls/inspect read back from any conflist, ours or not.
 */
import test from 'ava';
import { parseCidr, parseIP } from '../../pkg/ip/cidr.ts';
import { type NetworkSpec, buildConflist, summarize } from './conflist.ts';

const base: NetworkSpec = {
  name: 'web', bridge: 'cnikit0', ranges: [{ subnet: parseCidr('10.89.0.0/24') }, { subnet: parseCidr('fd12:3456:789a::/64'), gateway: parseIP('fd12:3456:789a::fe') }],
  internal: false, isolate: 'same-bridge', icc: true, dns: { domain: 'dns.cnikit', resolver: 'gateway' }, labels: { team: 'a' }, created: '2026-12-01T00:00:00.000Z',
};
const TODAY = new Set(['bridge', 'host-local', 'portmap', 'dnsname']);

test('the default network: bridge + host-local, portmap, dnsname; default routes; cnikit metadata', (t) => {
  t.deepEqual(buildConflist(base, TODAY), {
    cniVersion: '1.0.0', name: 'web',
    plugins: [
      {
        type: 'bridge', bridge: 'cnikit0', isGateway: true, ipMasq: true, hairpinMode: true,
        ipam: { type: 'host-local', ranges: [[{ subnet: '10.89.0.0/24' }], [{ subnet: 'fd12:3456:789a::/64', gateway: 'fd12:3456:789a::fe' }]], routes: [{ dst: '0.0.0.0/0' }, { dst: '::/0' }] },
        capabilities: { ips: true, mac: true },
      },
      { type: 'portmap', capabilities: { portMappings: true } },
      { type: 'dnsname', domainName: 'dns.cnikit', resolver: 'gateway', capabilities: { aliases: true } },
    ],
    cnikit: { createdBy: 'cnikit network create', labels: { team: 'a' }, created: '2026-12-01T00:00:00.000Z' },
  });
});

test('firewall and tuning join the chain in contract order once they are built', (t) => {
  const all = new Set([...TODAY, 'firewall', 'tuning']);
  const types = (s: NetworkSpec) => (buildConflist(s, all).plugins as { type: string }[]).map((p) => p.type);
  t.deepEqual(types(base), ['bridge', 'portmap', 'firewall', 'tuning', 'dnsname']);
  const fw = (s: NetworkSpec) => (buildConflist(s, all).plugins as Record<string, unknown>[]).find((p) => p.type === 'firewall');
  t.deepEqual(fw(base), { type: 'firewall', ingressPolicy: 'same-bridge' });
  t.deepEqual(fw({ ...base, isolate: 'strict' }), { type: 'firewall', ingressPolicy: 'same-bridge', strictIsolation: true }, 'netavark strict, not the reference\'s isolated');
  t.deepEqual(fw({ ...base, isolate: 'strict', icc: false }), { type: 'firewall', ingressPolicy: 'same-bridge', strictIsolation: true, icc: false });
  t.deepEqual(fw({ ...base, isolate: 'open', internal: true }), { type: 'firewall', ingressPolicy: 'open', internal: true });
  t.deepEqual((buildConflist(base, all).plugins as Record<string, unknown>[])[3], { type: 'tuning', capabilities: { mac: true } });
});

test('--internal: no default gateway, no masquerade, no routes; DNS answers names only', (t) => {
  const c = buildConflist({ ...base, internal: true }, TODAY);
  const [br, , dns] = c.plugins as Record<string, any>[];
  t.is(br!.isDefaultGateway, undefined);
  t.false(br!.ipMasq);
  t.true(br!.isGateway, 'the gateway address stays: the DNS responder listens there');
  t.deepEqual(br!.ipam.routes, []);
  t.true(dns!.internal);
});

test('--no-dns, --mtu, state directories and upstreams', (t) => {
  const c = buildConflist({ ...base, dns: undefined, mtu: 1400, ipamDir: '/tmp/x/ipam' }, TODAY);
  t.deepEqual((c.plugins as { type: string }[]).map((p) => p.type), ['bridge', 'portmap']);
  t.is((c.plugins as any)[0].mtu, 1400);
  t.is((c.plugins as any)[0].ipam.dataDir, '/tmp/x/ipam');
  const d = buildConflist({ ...base, dns: { domain: 'a.test', resolver: '127.0.0.11', upstreams: [], dir: '/tmp/x/dns' } }, TODAY);
  t.deepEqual((d.plugins as any)[2], { type: 'dnsname', domainName: 'a.test', resolver: '127.0.0.11', upstreams: [], recordsDir: '/tmp/x/dns', capabilities: { aliases: true } });
});

test('summaries of our conflists and of others (Podman-style, single .conf, legacy subnet)', (t) => {
  const ours = summarize(buildConflist(base, TODAY), '/n/web.conflist');
  t.like(ours, { name: 'web', bridge: 'cnikit0', subnets: ['10.89.0.0/24', 'fd12:3456:789a::/64'], dns: { domain: 'dns.cnikit', resolver: 'gateway' }, internal: false, cnikit: { labels: { team: 'a' }, created: base.created } });
  t.true(summarize(buildConflist({ ...base, internal: true, dns: undefined }, TODAY), 'x').internal);
  const podman = summarize({ cniVersion: '0.4.0', name: 'podman', plugins: [{ type: 'bridge', bridge: 'cni-podman0', isGateway: true, ipMasq: true, ipam: { type: 'host-local', routes: [{ dst: '0.0.0.0/0' }], ranges: [[{ subnet: '10.88.0.5/16', gateway: '10.88.0.1' }]] } }, { type: 'portmap' }] }, 'p');
  t.like(podman, { bridge: 'cni-podman0', subnets: ['10.88.0.0/16'], dns: undefined, cnikit: undefined, internal: false, types: ['bridge', 'portmap'] });
  t.like(summarize({ cniVersion: '0.3.1', name: 'old', type: 'bridge', ipam: { type: 'host-local', subnet: '10.1.0.0/16' } }, 'o'), { bridge: 'cni0', subnets: ['10.1.0.0/16'] });
  t.like(summarize({ name: 'mv', plugins: [{ type: 'macvlan', ipam: { type: 'static', addresses: [{ address: '192.0.2.5/24' }] } }] }, 'm'), { bridge: undefined, subnets: ['192.0.2.0/24'] });
  t.like(summarize({ name: 'fake', cnikit: { createdBy: 'someone else' }, plugins: [] }, 'f'), { cnikit: undefined });
  const all = new Set([...TODAY, 'firewall']);
  const isolation = (isolate: NetworkSpec['isolate']) => summarize(buildConflist({ ...base, isolate }, all), 'i').isolation;
  t.deepEqual([isolation('open'), isolation('same-bridge'), isolation('strict')], ['open', 'same-bridge', 'strict'], '--isolate reads back as given');
  t.is(summarize({ name: 'p', plugins: [{ type: 'firewall', backend: '', ingressPolicy: '' }] }, 'p').isolation, 'open', 'the reference\'s "" is open');
});

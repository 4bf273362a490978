/**
 * portmap's pure parts: config parsing (codes and messages), container address selection from
 * prevResult, and the elements an attachment owns (keys, data, owner tags), without root.
 */
import test from 'ava';
import { type CniCode, CniError } from '../../pkg/cni/errors.ts';
import { parseCidr, parseIP } from '../../pkg/ip/cidr.ts';
import { containerAddresses, parsePortmapConf } from './config.ts';
import { ALL_SETS, SET, legacyHairpinElements, portmapElements, portmapSkeleton } from './rules.ts';

const base = { cniVersion: '1.0.0', name: 'net', type: 'portmap' };
const withMaps = (portMappings: unknown[], extra: Record<string, unknown> = {}) => ({ ...base, runtimeConfig: { portMappings }, ...extra });

const rejects = test.macro((t, conf: Record<string, unknown>, code: CniCode, details: RegExp) => {
  const err = t.throws(() => parsePortmapConf(conf), { instanceOf: CniError }) as CniError;
  t.is(err.code, code);
  t.regex(`${err.message} ${err.details ?? ''}`, details);
});

test('hostPort 0', rejects, withMaps([{ hostPort: 0, containerPort: 80 }]), 7, /hostPort: must be an integer port/);
test('containerPort too big', rejects, withMaps([{ hostPort: 80, containerPort: 70000 }]), 7, /containerPort/);
test('unknown protocol', rejects, withMaps([{ hostPort: 80, containerPort: 80, protocol: 'icmp' }]), 7, /protocol: must be tcp, udp or sctp/);
test('bad hostIP', rejects, withMaps([{ hostPort: 80, containerPort: 80, hostIP: '1.2.3' }]), 7, /hostIP: not an IP address/);
test('same host port twice', rejects, withMaps([{ hostPort: 80, containerPort: 80 }, { hostPort: 80, containerPort: 81, protocol: 'TCP' }]), 7, /maps the same host port as \[0\]/);
test('markMasqBit', rejects, withMaps([], { markMasqBit: 13 }), 2, /markMasqBit.*iptables/);
test('externalSetMarkChain', rejects, withMaps([], { externalSetMarkChain: 'KUBE-MARK-MASQ' }), 2, /externalSetMarkChain/);
test('conditionsV4', rejects, withMaps([], { conditionsV4: ['-s', '1.2.3.4'] }), 2, /conditionsV4/);
test('backend iptables', rejects, withMaps([], { backend: 'iptables' }), 2, /backend/);
test('mappings not a list', rejects, { ...base, runtimeConfig: { portMappings: 'x' } }, 7, /portMappings/);

test('defaults: snat on, masqAll off, protocol tcp, wildcard hostIP', (t) => {
  const c = parsePortmapConf(withMaps([{ hostPort: 8080, containerPort: 80 }, { hostPort: 53, containerPort: 53, protocol: 'UDP', hostIP: '' }], { backend: 'nftables' }));
  t.true(c.snat);
  t.false(c.masqAll);
  t.deepEqual(c.mappings, [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }, { hostPort: 53, containerPort: 53, protocol: 'udp' }]);
  t.is(c.prevResult, undefined);
});

test('container addresses: first of each family on the container interface', (t) => {
  const r = {
    cniVersion: '1.0.0',
    interfaces: [{ name: 'br0' }, { name: 'veth1' }, { name: 'eth0', sandbox: '/run/netns/x' }, { name: 'eth1', sandbox: '/run/netns/x' }],
    ips: [{ address: '192.0.2.9/24', interface: 3 }, { address: '10.77.0.5/24', interface: 2 }, { address: '10.77.0.6/24', interface: 2 }, { address: 'fd77::5/64' }],
  };
  const a = containerAddresses(r, 'eth0');
  t.deepEqual(a, { v4: parseCidr('10.77.0.5/24'), v6: parseCidr('fd77::5/64') });
  t.deepEqual(containerAddresses(undefined, 'eth0'), {});
});

test('elements: one per mapping and family, a hairpin element per address (its link . it), all owner-tagged', (t) => {
  const els = portmapElements({
    network: 'net', containerId: 'c1', ifName: 'eth0', v4: parseCidr('10.77.0.5/24'), v6: parseCidr('fd77::5/64'), snat: true, masqAll: false,
    via: { 4: 'cni0', 6: 'cni0' },
    mappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }, { hostPort: 53, containerPort: 5353, protocol: 'udp', hostIP: parseIP('192.0.2.1') }],
  });
  t.deepEqual(els.map((e) => e.set), [SET.ANY4, SET.ADDR4, SET.HAIRPIN_IF4, SET.HAIRPIN_IF4, SET.ANY6, SET.HAIRPIN_IF6, SET.HAIRPIN_IF6], 'the IPv4 hostIP is skipped for IPv6');
  t.true(els.every((e) => e.comment === 'net=net id=c1 if=eth0'));
  t.is(els[0]!.key.toString('hex'), '060000001f900000', 'tcp . 8080, each field padded to 4 bytes');
  t.is(els[0]!.data!.toString('hex'), '0a4d000500500000', '10.77.0.5 . 80');
  t.is(els[1]!.key.toString('hex'), 'c000020111000000' + '00350000', '192.0.2.1 . udp . 53');
  t.is(els[2]!.key.toString('hex'), Buffer.from('cni0').toString('hex') + '00'.repeat(12) + '0a4d0005', '"cni0" (16 bytes) . 10.77.0.5');
  t.is(els[2]!.keyEnd, undefined, 'a hash set: no range');
  t.is(els[3]!.key.toString('hex'), '00'.repeat(16) + '0a4d0005', '"" (no input link) . 10.77.0.5');
  t.is(els[0]!.describe, 'tcp 8080 -> 10.77.0.5:80');
});

test('elements: masqAll masquerades every connection to the address; no link known: only the bridged-frame element; snat false: none', (t) => {
  const input = { network: 'n', containerId: 'c', ifName: 'eth0', v4: parseCidr('10.77.0.5/24'), mappings: [{ hostPort: 1, containerPort: 2, protocol: 'sctp' as const }] };
  const all = portmapElements({ ...input, snat: true, masqAll: true, via: { 4: 'cni0' } });
  t.is(all[1]!.set, SET.MASQALL4);
  t.is(all[1]!.key.toString('hex'), '0a4d0005');
  t.deepEqual(portmapElements({ ...input, snat: true, masqAll: false }).map((e) => e.set), [SET.ANY4, SET.HAIRPIN_IF4], 'no route to the container: no routed neighbour can reach it');
  t.deepEqual(portmapElements({ ...input, snat: false, masqAll: false, via: { 4: 'cni0' } }).map((e) => e.set), [SET.ANY4]);
});

test('elements: the legacy hairpin ranges DEL looks for (subnet, and everything with masqAll)', (t) => {
  const els = legacyHairpinElements({ v4: parseCidr('10.77.0.5/24') });
  t.deepEqual(els.map((e) => [e.set, e.key.toString('hex'), e.keyEnd!.toString('hex')]), [
    [SET.LEGACY_HAIRPIN4, '0a4d00000a4d0005', '0a4d00ff0a4d0005'],
    [SET.LEGACY_HAIRPIN4, '000000000a4d0005', 'ffffffff0a4d0005'],
  ]);
});

test('skeleton: every set it declares is one DEL/GC scans; four chains, fixed rules', (t) => {
  const s = portmapSkeleton();
  t.deepEqual(s.sets.map((x) => x.name).sort(), [...ALL_SETS].sort());
  t.deepEqual(s.chains.map((c) => c.name), ['portmap_prerouting', 'portmap_output', 'portmap_hostports', 'portmap_postrouting']);
  t.is(s.rules.length, 13);
  t.deepEqual(s.elements, []);
});

/** ipMasq's pure part: the complement-of-subnet ranges each container address owns. */
import test from 'ava';
import { parseCidr } from '../../pkg/ip/cidr.ts';
import { IPMASQ_SET, ipMasqElements, ipMasqSkeleton } from './ipmasq.ts';

const hex = (b: Buffer | undefined) => b?.toString('hex');

test('an IPv4 address owns the two ranges around its subnet', (t) => {
  const els = ipMasqElements({ network: 'n', containerId: 'c', ifName: 'eth0', addrs: [parseCidr('10.77.0.5/24')] });
  t.deepEqual(els.map((e) => [e.set, hex(e.key), hex(e.keyEnd)]), [
    [IPMASQ_SET[4], '0a4d0005' + '00000000', '0a4d0005' + '0a4cffff'], // 0.0.0.0 - 10.76.255.255
    [IPMASQ_SET[4], '0a4d0005' + '0a4d0100', '0a4d0005' + 'ffffffff'], // 10.77.1.0 - 255.255.255.255
  ]);
  t.true(els.every((e) => e.comment === 'net=n id=c if=eth0'));
});

test('a subnet at the edge of the space leaves one range; IPv6 works the same way', (t) => {
  const low = ipMasqElements({ network: 'n', containerId: 'c', ifName: 'eth0', addrs: [parseCidr('0.0.0.9/8')] });
  t.deepEqual(low.map((e) => [hex(e.key)!.slice(8), hex(e.keyEnd)!.slice(8)]), [['01000000', 'ffffffff']]);
  const v6 = ipMasqElements({ network: 'n', containerId: 'c', ifName: 'eth0', addrs: [parseCidr('fd77::5/64')] });
  t.is(v6.length, 2);
  t.true(v6.every((e) => e.set === IPMASQ_SET[6] && e.key.length === 32));
  t.is(hex(v6[0]!.keyEnd)!.slice(32), 'fd76ffffffffffffffffffffffffffff');
  t.is(hex(v6[1]!.key)!.slice(32), 'fd770000000000010000000000000000');
});

test('no address, no element; the skeleton returns multicast before masquerading', (t) => {
  t.deepEqual(ipMasqElements({ network: 'n', containerId: 'c', ifName: 'eth0', addrs: [] }), []);
  const s = ipMasqSkeleton();
  t.deepEqual(s.rules.map((r) => r.exprs.at(-1)!.type), ['verdict', 'verdict', 'masq', 'masq']);
});

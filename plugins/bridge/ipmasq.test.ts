/** ipMasq's pure part: the elements each container address owns, and the legacy ranges DEL still looks for. */
import test from 'ava';
import { parseCidr } from '../../pkg/ip/cidr.ts';
import { IPMASQ_SET, ipMasqElements, ipMasqSkeleton, legacyIpMasqElements } from './ipmasq.ts';

const hex = (b: Buffer | undefined) => b?.toString('hex');
const input = (addrs: string[]) => ({ network: 'n', containerId: 'c', ifName: 'eth0', addrs: addrs.map(parseCidr), link: 'cni0' });

test('an address owns "address . its bridge" (left alone) and "address" (masqueraded), in hash sets', (t) => {
  const els = ipMasqElements(input(['10.77.0.5/24', 'fd77::5/64']));
  t.deepEqual(els.map((e) => [e.set, hex(e.key), e.keyEnd]), [
    [IPMASQ_SET.local[4], '0a4d0005' + Buffer.from('cni0').toString('hex') + '00'.repeat(12), undefined],
    [IPMASQ_SET.src[4], '0a4d0005', undefined],
    [IPMASQ_SET.local[6], 'fd770000000000000000000000000005' + Buffer.from('cni0').toString('hex') + '00'.repeat(12), undefined],
    [IPMASQ_SET.src[6], 'fd770000000000000000000000000005', undefined],
  ]);
  t.true(els.every((e) => e.comment === 'net=n id=c if=eth0'));
  t.deepEqual(ipMasqElements(input([])), []);
});

test('legacy: an address owned the two ranges around its subnet (one at the edge of the space); IPv6 the same way', (t) => {
  t.deepEqual(legacyIpMasqElements([parseCidr('10.77.0.5/24')]).map((e) => [e.set, hex(e.key), hex(e.keyEnd)]), [
    [IPMASQ_SET.legacy[4], '0a4d0005' + '00000000', '0a4d0005' + '0a4cffff'], // 0.0.0.0 - 10.76.255.255
    [IPMASQ_SET.legacy[4], '0a4d0005' + '0a4d0100', '0a4d0005' + 'ffffffff'], // 10.77.1.0 - 255.255.255.255
  ]);
  const low = legacyIpMasqElements([parseCidr('0.0.0.9/8')]);
  t.deepEqual(low.map((e) => [hex(e.key)!.slice(8), hex(e.keyEnd)!.slice(8)]), [['01000000', 'ffffffff']]);
  const v6 = legacyIpMasqElements([parseCidr('fd77::5/64')]);
  t.is(v6.length, 2);
  t.true(v6.every((e) => e.set === IPMASQ_SET.legacy[6] && e.key.length === 32));
  t.is(hex(v6[0]!.keyEnd)!.slice(32), 'fd76ffffffffffffffffffffffffffff');
  t.is(hex(v6[1]!.key)!.slice(32), 'fd770000000000010000000000000000');
});

test('the skeleton returns multicast, then what stays on the bridge, before masquerading; the legacy rules last', (t) => {
  const s = ipMasqSkeleton();
  t.deepEqual(s.rules.map((r) => r.exprs.at(-1)!.type), ['verdict', 'verdict', 'verdict', 'masq', 'verdict', 'masq', 'masq', 'masq']);
  t.deepEqual(s.sets.map((x) => [x.name, x.interval === true]), [
    ['ipmasq_src4', false], ['ipmasq_local4', false], ['ipmasq4', true], ['ipmasq_src6', false], ['ipmasq_local6', false], ['ipmasq6', true],
  ]);
});

/** Subnet picking and checking: Podman's pools in order, skipping whatever is in use, and errors that name the overlap. */
import test from 'ava';
import { formatCidr, parseCidr, parseIP } from '../../pkg/ip/cidr.ts';
import { type UsedRange, checkSubnets, pickFreeSubnet, pickUla } from './subnets.ts';

const used = (...xs: [string, string][]): UsedRange[] => xs.map(([c, what]) => ({ cidr: parseCidr(c), what }));
const pick = (u: UsedRange[]) => { const c = pickFreeSubnet(u); return c && formatCidr(c); };

test('the first free /24 of 10.89.0.0/16, skipping networks, addresses and routes', (t) => {
  t.is(pick([]), '10.89.0.0/24');
  t.is(pick(used(['10.89.0.0/24', 'network "a"'], ['10.89.1.5/32', 'address'], ['10.89.2.0/23', 'route'])), '10.89.4.0/24');
  t.is(pick(used(['10.89.0.128/25', 'a smaller range'])), '10.89.1.0/24', 'a /24 partly used is not free');
});

test('a used range larger than the pool moves on to the next pool in one step', (t) => {
  t.is(pick(used(['10.89.0.0/16', 'route'])), '10.90.0.0/24');
  t.is(pick(used(['10.88.0.0/13', 'route'])), '10.96.0.0/24');
  t.is(pick(used(['10.0.0.0/8', 'vpn route'])), undefined, 'nothing left in 10/8');
  t.is(pick(used(['0.0.0.0/1', 'x'])), undefined);
});

test('other families and unrelated ranges do not get in the way', (t) => {
  t.is(pick(used(['fd00::/8', 'ula'], ['192.168.0.0/16', 'lan'], ['172.16.0.0/12', 'docker'])), '10.89.0.0/24');
});

test('ULA /64: fd00::/8 with the random 40-bit global ID, retried past collisions', (t) => {
  const draws = [Buffer.from([0x12, 0x34, 0x56, 0x78, 0x9a]), Buffer.from([0xab, 0xcd, 0xef, 0x01, 0x23])];
  const random = () => draws.shift()!;
  const c = pickUla(used(['fd12:3456:789a::/48', 'network "x"']), random);
  t.is(c && formatCidr(c), 'fdab:cdef:123::/64');
  t.is(pickUla(used(['fd00::/8', 'everything']), () => Buffer.alloc(5)), undefined);
});

test('explicit subnets: an overlap names what it overlaps; gateways go to the subnet holding them', (t) => {
  const u = used(['10.50.0.0/24', 'network "net1" (10.50.0.0/24 in /etc/cni/net.d/net1.conflist)'], ['10.60.0.0/16', 'route 10.60.0.0/16 dev d0 of this host']);
  t.throws(() => checkSubnets([parseCidr('10.50.0.0/16')], [], u), { message: 'subnet 10.50.0.0/16 overlaps network "net1" (10.50.0.0/24 in /etc/cni/net.d/net1.conflist)' });
  t.throws(() => checkSubnets([parseCidr('10.60.3.0/24')], [], u), { message: 'subnet 10.60.3.0/24 overlaps route 10.60.0.0/16 dev d0 of this host' });
  t.throws(() => checkSubnets([parseCidr('10.70.0.0/24'), parseCidr('10.70.0.0/25')], [], u), { message: /overlaps subnet 10\.70\.0\.0\/24/ });
  const r = checkSubnets([parseCidr('10.70.0.0/24'), parseCidr('fd70::/64')], [parseIP('fd70::fe'), parseIP('10.70.0.254')], u);
  t.deepEqual(r.map((x) => [formatCidr(x.subnet), x.gateway && x.gateway.value]), [['10.70.0.0/24', parseIP('10.70.0.254').value], ['fd70::/64', parseIP('fd70::fe').value]]);
  t.throws(() => checkSubnets([parseCidr('10.70.0.0/24')], [parseIP('10.71.0.1')], u), { message: /gateway 10\.71\.0\.1 is in none of the subnets/ });
  t.throws(() => checkSubnets([parseCidr('10.70.0.0/24')], [parseIP('10.70.0.1'), parseIP('10.70.0.2')], u), { message: /two gateways/ });
  t.throws(() => checkSubnets([parseCidr('10.70.0.0/24')], [parseIP('10.70.0.255')], u), { message: /network or broadcast address/ });
});

/** The command's argument and environment parsers, as cnitool parses the same inputs. */
import test from 'ava';
import { formatCidr } from '../pkg/ip/cidr.ts';
import { cnitoolContainerId, collectAddHost, collectAddress, collectLabel, collectSubnet, intIn, parseArgsEnv, parseCapArgs, parseMac, parseNetworkName } from './parse.ts';

test('cnitool container id: "cnitool-" + 20 hex of SHA-512 of the absolute netns path', (t) => {
  // `echo -n /run/netns/ctr1 | sha512sum | cut -c1-20`
  t.is(cnitoolContainerId('/run/netns/ctr1'), 'cnitool-96279096f34b33f944ce');
  t.is(cnitoolContainerId('/run/netns/../netns/ctr1'), cnitoolContainerId('/run/netns/ctr1'));
});

test('CNI_ARGS pairs as cnitool splits them', (t) => {
  t.deepEqual(parseArgsEnv('IgnoreUnknown=1;K8S_POD_NAME=web;X=a=b'), [['IgnoreUnknown', '1'], ['K8S_POD_NAME', 'web'], ['X', 'a=b']]);
  t.deepEqual(parseArgsEnv(''), []);
  t.throws(() => parseArgsEnv('A=1;;B=2'), { message: /invalid CNI_ARGS pair ""/ });
  t.throws(() => parseArgsEnv('novalue'), { message: /invalid CNI_ARGS pair "novalue"/ });
});

test('CAP_ARGS must be a JSON object', (t) => {
  t.deepEqual(parseCapArgs('{"mac":"c2:11:22:33:44:55"}'), { mac: 'c2:11:22:33:44:55' });
  t.deepEqual(parseCapArgs(undefined), {});
  t.throws(() => parseCapArgs('[1]'), { message: /must be a JSON object/ });
  t.throws(() => parseCapArgs('{'), { message: /not valid JSON/ });
});

test('values of network create and run', (t) => {
  t.deepEqual(collectSubnet('10.89.5.0/24').map(formatCidr), ['10.89.5.0/24']);
  t.throws(() => collectSubnet('10.89.5.1/24'), { message: /host bits set: did you mean 10\.89\.5\.0\/24\?/ });
  t.throws(() => collectSubnet('10.89.5.0/31'), { message: /too small/ });
  t.throws(() => collectSubnet('nope'), { message: /is not a subnet/ });
  t.is(parseMac('92:D0:C6:0A:29:33'), '92:d0:c6:0a:29:33');
  t.throws(() => parseMac('93:d0:c6:0a:29:33'), { message: /multicast/ });
  t.deepEqual(collectLabel('b=2', collectLabel('a=x=y')), { a: 'x=y', b: '2' });
  t.deepEqual(collectAddHost('v6:[fd00::5]', collectAddHost('db:10.89.0.5')), [['db', '10.89.0.5'], ['v6', 'fd00::5']]);
  t.deepEqual(collectAddHost('web=fd00::1'), [['web', 'fd00::1']]);
  t.throws(() => collectAddHost('db'), { message: /is not NAME:IP/ });
  t.deepEqual(collectAddress(6)('FD00::0001'), ['fd00::1']);
  t.throws(() => collectAddress(4)('fd00::1'), { message: /is not an IPv4 address/ });
  t.is(intIn(68, 65535)('1400'), 1400);
  t.is(parseNetworkName('my_net.v2'), 'my_net.v2');
  t.throws(() => parseNetworkName('host'), { message: /cannot be a network name: `cnikit run --network host` means the host's namespace/ });
  t.throws(() => parseNetworkName('-x'), { message: /not a valid network name/ });
  t.throws(() => intIn(68, 65535)('10'), { message: /between 68 and 65535/ });
});

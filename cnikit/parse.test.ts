/** The command's argument and environment parsers, as cnitool parses the same inputs. */
import test from 'ava';
import { cnitoolContainerId, parseArgsEnv, parseCapArgs, parsePublish } from './parse.ts';

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

test('-p forms', (t) => {
  t.deepEqual(parsePublish('8080:80'), [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }]);
  t.deepEqual(parsePublish('127.0.0.1:53:5353/udp'), [{ hostPort: 53, containerPort: 5353, protocol: 'udp', hostIP: '127.0.0.1' }]);
  t.deepEqual(parsePublish('[::1]:8443:443/tcp', [{ hostPort: 1, containerPort: 2, protocol: 'tcp' }]).length, 2);
  t.is(parsePublish('[::1]:8443:443')[0]!.hostIP, '::1');
  t.throws(() => parsePublish('80'), { message: /is not HOST:CONTAINER/ });
  t.throws(() => parsePublish('70000:80'), { message: /port 70000 .* not between 1 and 65535/ });
  t.throws(() => parsePublish('80:80/icmp'), { message: /is not HOST:CONTAINER/ });
});

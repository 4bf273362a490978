import test from 'ava';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ResultsCache } from './cache.ts';
import { parseArgsEnv } from './chain.ts';
import { cnitoolContainerId, parseCapArgs, parsePublish } from '../cnikit/cli.ts';

function tmp(t: import('ava').ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'cnikit-cache-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('write produces libcni\'s file: name, modes, keys, omitempty', (t) => {
  const dir = tmp(t);
  const c = new ResultsCache(dir);
  const file = c.write({ containerId: 'c1', config: Buffer.from('{"x":1}').toString('base64'), ifName: 'eth0', networkName: 'net', netns: '/run/netns/a', cniArgs: [], capabilityArgs: {}, result: { cniVersion: '1.0.0' } });
  t.is(file, join(dir, 'results', 'net-c1-eth0'));
  t.is(statSync(join(dir, 'results')).mode & 0o777, 0o700);
  t.is(statSync(file).mode & 0o777, 0o600);
  t.deepEqual(JSON.parse(readFileSync(file, 'utf8')), { kind: 'cniCacheV1', containerId: 'c1', config: 'eyJ4IjoxfQ==', ifName: 'eth0', networkName: 'net', netns: '/run/netns/a', result: { cniVersion: '1.0.0' } });
  const e = c.read('net', 'c1', 'eth0')!;
  t.is(e.config.toString(), '{"x":1}');
  t.false(e.legacy);
  c.remove('net', 'c1', 'eth0');
  c.remove('net', 'c1', 'eth0');
  t.is(c.read('net', 'c1', 'eth0'), undefined);
});

test('read: a legacy bare result; list skips legacy, broken and other networks', (t) => {
  const dir = tmp(t);
  mkdirSync(join(dir, 'results'));
  writeFileSync(join(dir, 'results', 'net-old-eth0'), JSON.stringify({ cniVersion: '0.4.0', ips: [] }));
  writeFileSync(join(dir, 'results', 'net-bad-eth0'), '{');
  writeFileSync(join(dir, 'results', 'net-ok-eth0'), JSON.stringify({ kind: 'cniCacheV1', containerId: 'ok', ifName: 'eth0', networkName: 'net', config: '', cniArgs: [['A', 'b']] }));
  writeFileSync(join(dir, 'results', 'other-ok-eth0'), JSON.stringify({ kind: 'cniCacheV1', containerId: 'ok', ifName: 'eth0', networkName: 'other', config: '' }));
  const c = new ResultsCache(dir);
  const legacy = c.read('net', 'old', 'eth0')!;
  t.true(legacy.legacy);
  t.deepEqual(legacy.result, { cniVersion: '0.4.0', ips: [] });
  t.is(legacy.containerId, 'old');
  t.throws(() => c.read('net', 'bad', 'eth0'), { message: /cannot parse cached result/ });
  t.deepEqual(c.list('net').map((e) => [e.containerId, e.cniArgs]), [['ok', [['A', 'b']]]]);
  t.is(c.list().length, 2);
  t.deepEqual(new ResultsCache(join(dir, 'none')).list(), []);
});

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

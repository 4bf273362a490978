/** The results cache in libcni's layout: file names, modes, keys, legacy entries and listing. */
import test from 'ava';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ResultsCache } from './cache.ts';

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

/**
 * The restore file's format (no root): the reference's layout and keys both ways, what counts
 * as damaged, how a repeated ADD's originals merge, and the atomic replace.
 */
import test from 'ava';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeState, encodeState, isEmpty, mergeOriginals, readStateText, removeState, sameAttachment, stateFile, writeStateText } from './state.ts';

test('encodeState writes the reference\'s keys first, in its order and one-space indent, then ours', (t) => {
  t.is(encodeState({ sysctl: { 'net/ipv4/ip_forward': '0' }, ifindex: 2, mtu: 1500, mac: 'd2:3d:5d:63:32:b1', promisc: false, network: 'n', netns: 4026532555 }),
    '{\n "mac": "d2:3d:5d:63:32:b1",\n "promisc": false,\n "mtu": 1500,\n "sysctl": {\n  "net/ipv4/ip_forward": "0"\n },\n "network": "n",\n "netns": 4026532555,\n "ifindex": 2\n}');
  t.is(encodeState({ mtu: 0, mac: '', sysctl: {} }), '{}', 'Go\'s omitempty');
});

test('decodeState reads the reference\'s file (1.1.1 and main) and ours; "mtu": 0 and "mac": "" are not saved', (t) => {
  t.deepEqual(decodeState('{\n "mac": "d2:3d:5d:63:32:b1",\n "promisc": false,\n "mtu": 1500,\n "allmulti": false\n}'), { mac: 'd2:3d:5d:63:32:b1', promisc: false, mtu: 1500, allmulti: false });
  t.deepEqual(decodeState('{"txQLen": 1000, "mtu": 0, "mac": ""}'), { txQLen: 1000 });
  const ours = { mac: '02:00:00:00:00:01', sysctl: { 'net/core/somaxconn': '4096' }, network: 'n', netns: 7, ifindex: 2 };
  t.deepEqual(decodeState(encodeState(ours)), ours);
  t.deepEqual(decodeState('{"mtu": 1500, "future": true}'), { mtu: 1500 }, 'unknown keys are ignored');
});

test('decodeState: anything else is damaged (undefined)', (t) => {
  for (const text of ['', '{', 'null', '[]', '{"mtu": "1500"}', '{"sysctl": {"a": 1}}', '{"promisc": 1}']) t.is(decodeState(text), undefined, text);
});

test('mergeOriginals: what an earlier ADD saved wins, new attributes and sysctls are added, the identity is the new one', (t) => {
  const earlier = { mac: '0a:00:00:00:00:01', sysctl: { 'net/a': '0' }, netns: 1, ifindex: 2, network: 'n' };
  const now = { mac: '02:00:00:00:00:09', mtu: 1500, sysctl: { 'net/a': '1', 'net/b': '5' }, netns: 1, ifindex: 2, network: 'n' };
  t.deepEqual(mergeOriginals(earlier, now), { mac: '0a:00:00:00:00:01', mtu: 1500, sysctl: { 'net/a': '0', 'net/b': '5' }, netns: 1, ifindex: 2, network: 'n' });
  t.deepEqual(mergeOriginals(undefined, { mtu: 1500 }), { mtu: 1500 });
  t.true(isEmpty({ network: 'n', netns: 1 }));
  t.false(isEmpty({ sysctl: { 'net/a': '0' } }));
});

test('writeStateText: a 0700 directory made as needed, a 0600 file replaced whole, no temp file left; removeState of nothing is fine', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cnikit-tuning-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = stateFile(join(dir, 'data'), 'ctr1', 'eth0');
  t.is(file, join(dir, 'data', 'ctr1_eth0.json'));
  t.is(readStateText(file), undefined);
  writeStateText(file, '{"mtu": 1500}');
  writeStateText(file, '{"mtu": 1400}');
  t.is(readFileSync(file, 'utf8'), '{"mtu": 1400}');
  t.is(statSync(join(dir, 'data')).mode & 0o777, 0o700);
  t.is(statSync(file).mode & 0o777, 0o600);
  t.deepEqual(readdirSync(join(dir, 'data')), ['ctr1_eth0.json']);
  removeState(file);
  t.notThrows(() => removeState(file));
});

test('sameAttachment: compared where both say; another namespace or link is another attachment', (t) => {
  t.true(sameAttachment({ netns: 5, ifindex: 2 }, { netns: 5, ifindex: 2 }));
  t.true(sameAttachment({ mtu: 1500 }, { netns: 5, ifindex: 2 }), 'the reference\'s file says neither');
  t.true(sameAttachment({ netns: 5, ifindex: 2 }, { netns: 5 }));
  t.false(sameAttachment({ netns: 5, ifindex: 2 }, { netns: 6, ifindex: 2 }));
  t.false(sameAttachment({ netns: 5, ifindex: 2 }, { netns: 5, ifindex: 3 }));
});

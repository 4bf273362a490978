// Allocator unit tests against MemoryStore (no root, no disk): walk order, cursor, wrap, gateway
// skipping, duplicates, exhaustion messages, requested addresses, rollback, DEL/CHECK/GC/STATUS.
import test from 'ava';
import { CniError } from '../../pkg/cni/errors.ts';
import { formatIP, parseIP } from '../../pkg/ip/cidr.ts';
import { allocate, capacity, collectGarbage, exhaustedSets, findAttachment, releaseAttachment, walkRangeSet } from './allocator.ts';
import { type RangeSet, loadIpamConf, placeRequested } from './config.ts';
import { MemoryStore } from './memory-store.ts';

function sets(ipam: Record<string, unknown>, cniVersion = '1.0.0'): RangeSet[] {
  return loadIpamConf({ cniVersion, name: 'net', ipam: { type: 'host-local', ...ipam } }).ranges;
}

/** Runs fn holding the store's lock, synchronously (MemoryStore's lock is a flag; the allocator is what is tested here). */
function locked<T>(store: MemoryStore, fn: () => T): T {
  if (store.locked) throw new Error('MemoryStore: lock is not re-entrant');
  store.locked = true;
  try {
    return fn();
  } finally {
    store.locked = false;
  }
}

function one(store: MemoryStore, s: RangeSet[], cid: string, ifName = 'eth0', requested: string[] = []): string[] {
  const req = placeRequested(s, requested.map(parseIP));
  return locked(store, () => allocate(store, s, cid, ifName, req)).map((a) => formatIP(a.ip));
}

function walk(s: RangeSet, last?: string): string[] {
  return [...walkRangeSet(s, last ? parseIP(last) : undefined)].map((c) => formatIP(c.ip));
}

test('the walk starts at rangeStart, skips the gateway and stops after one cycle', (t) => {
  const s = sets({ ranges: [[{ subnet: '10.0.0.0/29' }]] });
  t.deepEqual(walk(s[0]!), ['10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.5', '10.0.0.6']);
});

test('the walk starts after the cursor and wraps across the ranges of a set', (t) => {
  const s = sets({ ranges: [[
    { subnet: '10.0.0.0/29', rangeStart: '10.0.0.4' },
    { subnet: '10.0.1.0/29', rangeEnd: '10.0.1.3' },
  ]] });
  t.deepEqual(walk(s[0]!, '10.0.0.5'), ['10.0.0.6', '10.0.1.2', '10.0.1.3', '10.0.0.4', '10.0.0.5']);
  // A cursor outside the set (the ranges changed) restarts at the first rangeStart.
  t.deepEqual(walk(s[0]!, '192.168.9.9'), ['10.0.0.4', '10.0.0.5', '10.0.0.6', '10.0.1.2', '10.0.1.3']);
});

test('a gateway inside the range is skipped wherever it lies', (t) => {
  const s = sets({ ranges: [[{ subnet: '10.0.0.0/29', gateway: '10.0.0.4' }]] });
  t.deepEqual(walk(s[0]!), ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.5', '10.0.0.6']);
  t.deepEqual(walk(s[0]!, '10.0.0.3'), ['10.0.0.5', '10.0.0.6', '10.0.0.1', '10.0.0.2', '10.0.0.3']);
});

test('IPv6 ranges run to the last address (no broadcast)', (t) => {
  const s = sets({ ranges: [[{ subnet: 'fd00::/126' }]] });
  t.deepEqual(walk(s[0]!), ['fd00::2', 'fd00::3']);
});

test('consecutive ADDs get consecutive addresses and move the cursor; released ones come back only after a wrap', (t) => {
  const store = new MemoryStore();
  const s = sets({ ranges: [[{ subnet: '10.0.0.0/29' }]] });
  t.deepEqual(one(store, s, 'a'), ['10.0.0.2']);
  t.deepEqual(one(store, s, 'b'), ['10.0.0.3']);
  t.is(store.cursors.get(0), '10.0.0.3');
  locked(store, () => releaseAttachment(store, 'a', 'eth0'));
  t.deepEqual(one(store, s, 'c'), ['10.0.0.4']);
  t.deepEqual(one(store, s, 'd'), ['10.0.0.5']);
  t.deepEqual(one(store, s, 'e'), ['10.0.0.6']);
  t.deepEqual(one(store, s, 'f'), ['10.0.0.2']);
  t.is(store.files.get('10.0.0.2'), 'f\r\neth0');
});

test('dual-stack: one address per set, cursor per set index', (t) => {
  const store = new MemoryStore();
  const s = sets({ ranges: [[{ subnet: '10.0.0.0/24' }], [{ subnet: 'fd00::/64' }]] });
  t.deepEqual(one(store, s, 'a'), ['10.0.0.2', 'fd00::2']);
  t.is(store.cursors.get(0), '10.0.0.2');
  t.is(store.cursors.get(1), 'fd00::2');
});

test('an exhausted set is an error naming the range set, and releases what this call took in earlier sets', (t) => {
  const store = new MemoryStore();
  const s = sets({ ranges: [[{ subnet: '10.0.0.0/24' }], [{ subnet: '10.1.0.0/30' }]] });
  t.deepEqual(one(store, s, 'a'), ['10.0.0.2', '10.1.0.2']);
  const err = t.throws(() => one(store, s, 'b'), { instanceOf: CniError });
  t.is(err.message, 'failed to allocate for range 1: no IP addresses available in range set: 10.1.0.1-10.1.0.2');
  t.is(err.code, 999);
  t.deepEqual([...store.files.keys()].sort(), ['10.0.0.2', '10.1.0.2']);
});

test('a second ADD of the same attachment is a duplicate; another ifname is not', (t) => {
  const store = new MemoryStore();
  const s = sets({ ranges: [[{ subnet: '10.0.0.0/24' }]] });
  one(store, s, 'a');
  const err = t.throws(() => one(store, s, 'a'), { instanceOf: CniError });
  t.is(err.message, 'failed to allocate for range 0: 10.0.0.2 has been allocated to a, duplicate allocation is not allowed');
  t.deepEqual(one(store, s, 'a', 'eth1'), ['10.0.0.3']);
});

test('requested addresses are reserved exactly, taken ones fail and roll back', (t) => {
  const store = new MemoryStore();
  const s = sets({ ranges: [[{ subnet: '10.0.0.0/24' }], [{ subnet: 'fd00::/64' }]] });
  t.deepEqual(one(store, s, 'a', 'eth0', ['fd00::99', '10.0.0.77']), ['10.0.0.77', 'fd00::99']);
  const err = t.throws(() => one(store, s, 'b', 'eth0', ['10.0.0.5', 'fd00::99']), { instanceOf: CniError });
  t.is(err.message, 'failed to allocate for range 1: requested IP address fd00::99 is not available in range set fd00::1-fd00::ffff:ffff:ffff:ffff');
  t.false(store.files.has('10.0.0.5'));
});

test('placing requested addresses: gateway and unplaced ones are config errors before any lease', (t) => {
  const s = sets({ ranges: [[{ subnet: '10.0.0.0/24', rangeEnd: '10.0.0.100' }]] });
  const gw = t.throws(() => placeRequested(s, [parseIP('10.0.0.1')]), { instanceOf: CniError });
  t.is(gw.code, 7);
  t.regex(gw.details!, /requested ip 10\.0\.0\.1 is subnet's gateway/);
  const err = t.throws(() => placeRequested(s, [parseIP('10.0.0.150')]), { instanceOf: CniError });
  t.regex(err.details!, /failed to allocate all requested IPs: 10\.0\.0\.150/);
  // Two requested addresses in one set: only one can be placed.
  t.regex((t.throws(() => placeRequested(s, [parseIP('10.0.0.5'), parseIP('10.0.0.6')])) as CniError).details!, /requested IPs: 10\.0\.0\.6/);
});

test('a failing store write rolls back the leases of this call', (t) => {
  const store = new MemoryStore();
  const s = sets({ ranges: [[{ subnet: '10.0.0.0/24' }], [{ subnet: 'fd00::/64' }]] });
  store.failReserveAfter = 1;
  t.throws(() => one(store, s, 'a'), { message: /ENOSPC/ });
  t.is(store.files.size, 0);
});

test('DEL releases the attachment only, falls back to legacy leases, and is idempotent', (t) => {
  const store = new MemoryStore();
  const s = sets({ ranges: [[{ subnet: '10.0.0.0/24' }]] });
  one(store, s, 'a', 'eth0');
  one(store, s, 'a', 'eth1');
  store.files.set('10.0.0.50', 'legacy\n');
  t.deepEqual(locked(store, () => releaseAttachment(store, 'a', 'eth0')).map(formatIP), ['10.0.0.2']);
  t.deepEqual(locked(store, () => releaseAttachment(store, 'a', 'eth0')), []);
  t.deepEqual([...store.files.keys()].sort(), ['10.0.0.3', '10.0.0.50']);
  t.deepEqual(locked(store, () => findAttachment(store, 'legacy', 'eth7')).map(formatIP), ['10.0.0.50']);
  t.deepEqual(locked(store, () => releaseAttachment(store, 'legacy', 'eth7')).map(formatIP), ['10.0.0.50']);
  t.deepEqual(locked(store, () => findAttachment(store, 'a', 'eth0')), []);
});

test('a legacy lease of the same container counts as a duplicate', (t) => {
  const store = new MemoryStore();
  const s = sets({ ranges: [[{ subnet: '10.0.0.0/24' }]] });
  store.files.set('10.0.0.9', 'old');
  t.throws(() => one(store, s, 'old'), { message: /10\.0\.0\.9 has been allocated to old/ });
});

test('GC keeps valid attachments (and legacy leases of valid containers) and drops the rest', (t) => {
  const store = new MemoryStore();
  const s = sets({ ranges: [[{ subnet: '10.0.0.0/24' }]] });
  one(store, s, 'a');
  one(store, s, 'b');
  one(store, s, 'b', 'eth1');
  store.files.set('10.0.0.60', 'a');
  store.files.set('10.0.0.61', 'gone');
  const released = locked(store, () => collectGarbage(store, [{ containerID: 'a', ifname: 'eth0' }, { containerID: 'b', ifname: 'eth1' }]));
  t.deepEqual(released.map(formatIP).sort(), ['10.0.0.3', '10.0.0.61']);
  t.deepEqual([...store.files.keys()].sort(), ['10.0.0.2', '10.0.0.4', '10.0.0.60']);
  t.deepEqual(locked(store, () => collectGarbage(store, [])).length, 3);
  t.is(store.files.size, 0);
});

test('STATUS: capacity excludes the gateway; a set is exhausted when every address is leased', (t) => {
  const store = new MemoryStore();
  const s = sets({ ranges: [[{ subnet: '10.0.0.0/29' }], [{ subnet: '10.1.0.0/30' }]] });
  t.deepEqual(s.map(capacity), [5n, 1n]);
  t.deepEqual(locked(store, () => exhaustedSets(store, s)), []);
  one(store, s, 'a');
  t.deepEqual(locked(store, () => exhaustedSets(store, s)), [1]);
  locked(store, () => releaseAttachment(store, 'a', 'eth0'));
  t.deepEqual(locked(store, () => exhaustedSets(store, s)), []);
});

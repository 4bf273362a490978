// DiskStore against a temp directory (no root needed: flock is unprivileged): the file layout of
// disk-store.ts's header, legacy leases, entries that are not leases, and the allocator on disk.
import test from 'ava';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatIP, parseIP } from '../../pkg/ip/cidr.ts';
import { allocate, findAttachment, releaseAttachment } from './allocator.ts';
import { loadIpamConf } from './config.ts';
import { DiskStore } from './disk-store.ts';

function tmp(t: { teardown(fn: () => void): void }): string {
  const d = mkdtempSync(join(tmpdir(), 'cnikit-hl-unit-'));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

test('reserve writes `<cid>\\r\\n<ifname>` 0600 with O_EXCL and the cursor without newline', async (t) => {
  const store = new DiskStore(tmp(t), 'net');
  t.false(store.present());
  await store.withLock(() => {
    t.true(store.reserve(parseIP('10.0.0.2'), ' ctr1 ', 'eth0', 0));
    t.false(store.reserve(parseIP('10.0.0.2'), 'ctr2', 'eth0', 0));
    t.true(store.reserve(parseIP('fd00::0:2'), 'ctr1', 'eth0', 1));
  });
  t.true(store.present());
  t.deepEqual(readdirSync(store.dir).sort(), ['10.0.0.2', 'fd00::2', 'last_reserved_ip.0', 'last_reserved_ip.1', 'lock']);
  t.deepEqual(readFileSync(join(store.dir, '10.0.0.2')), Buffer.from('ctr1\r\neth0'));
  t.is(statSync(join(store.dir, '10.0.0.2')).mode & 0o777, 0o600);
  t.is(readFileSync(join(store.dir, 'last_reserved_ip.0'), 'utf8'), '10.0.0.2');
  t.is(readFileSync(join(store.dir, 'last_reserved_ip.1'), 'utf8'), 'fd00::2');
  t.is(statSync(store.dir).mode & 0o777, 0o755);
  t.is(formatIP(store.lastReserved(1)!), 'fd00::2');
  t.is(store.lastReserved(7), undefined);
});

test('leases: legacy files are read, whitespace trimmed, non-lease entries ignored', async (t) => {
  const store = new DiskStore(tmp(t), 'net');
  mkdirSync(store.dir, { recursive: true });
  writeFileSync(join(store.dir, '10.0.0.5'), 'old\n');
  writeFileSync(join(store.dir, '10.0.0.6'), 'new\r\neth1\n');
  writeFileSync(join(store.dir, 'last_reserved_ip.0'), '10.0.0.6');
  writeFileSync(join(store.dir, '.last_reserved_ip.0.tmp1'), 'x');
  mkdirSync(join(store.dir, '10.0.0.7'));
  const leases = (await store.withLock(() => store.leases())).map((l) => ({ ...l, ip: formatIP(l.ip) }));
  t.deepEqual(leases.sort((a, b) => a.ip.localeCompare(b.ip)), [
    { ip: '10.0.0.5', containerId: 'old', ifName: undefined },
    { ip: '10.0.0.6', containerId: 'new', ifName: 'eth1' },
  ]);
});

test('allocate, find and release on disk; a garbage cursor restarts the walk', async (t) => {
  const data = tmp(t);
  const { ranges } = loadIpamConf({ cniVersion: '1.0.0', name: 'net', ipam: { ranges: [[{ subnet: '10.0.0.0/29' }]] } });
  const store = new DiskStore(data, 'net');
  const ips = (await store.withLock(() => allocate(store, ranges, 'a', 'eth0'))).map((x) => formatIP(x.ip));
  t.deepEqual(ips, ['10.0.0.2']);
  writeFileSync(join(store.dir, 'last_reserved_ip.0'), 'garbage');
  t.deepEqual((await store.withLock(() => allocate(store, ranges, 'b', 'eth0'))).map((x) => formatIP(x.ip)), ['10.0.0.3']);
  t.deepEqual((await store.withLock(() => findAttachment(store, 'a', 'eth0'))).map(formatIP), ['10.0.0.2']);
  t.deepEqual((await store.withLock(() => releaseAttachment(store, 'a', 'eth0'))).map(formatIP), ['10.0.0.2']);
  t.deepEqual(readdirSync(store.dir).sort(), ['10.0.0.3', 'last_reserved_ip.0', 'lock']);
});

test('a process that keeps what it read still sees changes made behind its back: leases added, removed, or replaced', async (t) => {
  const store = new DiskStore(tmp(t), 'net');
  const owners = async (s: DiskStore) => (await s.withLock(() => s.leases({ reuse: true }))).map((l) => `${formatIP(l.ip)} ${l.containerId}`).sort();
  await store.withLock(() => {
    t.true(store.reserve(parseIP('10.0.0.2'), 'a', 'eth0', 0));
    t.true(store.reserve(parseIP('10.0.0.3'), 'b', 'eth0', 0));
  });
  t.deepEqual(await owners(store), ['10.0.0.2 a', '10.0.0.3 b']);
  // Another writer (the reference host-local, another process): a new lease, one gone, one replaced.
  writeFileSync(join(store.dir, '10.0.0.4'), 'c\r\neth0');
  rmSync(join(store.dir, '10.0.0.2'));
  t.deepEqual(await owners(new DiskStore(join(store.dir, '..'), 'net')), ['10.0.0.3 b', '10.0.0.4 c']);
  rmSync(join(store.dir, '10.0.0.3'));
  writeFileSync(join(store.dir, '10.0.0.3'), 'd\r\neth0');
  t.deepEqual(await owners(store), ['10.0.0.3 d', '10.0.0.4 c']);
  // Its own changes keep it current without a rereading.
  await store.withLock(() => {
    store.release(parseIP('10.0.0.4'));
    t.true(store.reserve(parseIP('10.0.0.5'), 'e', 'eth1', 0));
  });
  t.deepEqual(await owners(store), ['10.0.0.3 d', '10.0.0.5 e']);
  t.deepEqual(readdirSync(store.dir).filter((f) => f.startsWith('10.')).sort(), ['10.0.0.3', '10.0.0.5']);
});

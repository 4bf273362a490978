/**
 * Netns.open's checks on CNI_NETNS, none of which need root: a missing path is an unknown
 * container (3), a file that is not a namespace or is the plugin's own namespace is code 8
 * (unless CNI_NETNS_OVERRIDE=1, as upstream).
 */
import test from 'ava';
import { closeSync, fstatSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CniCode, CniError } from '../cni/errors.ts';
import { Netns, netnsExists } from './netns.ts';

const dir = mkdtempSync(join(tmpdir(), 'cnikit-netns-'));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));

test('a missing netns path is code 3', (t) => {
  const err = t.throws(() => Netns.open(join(dir, 'gone'), {}), { instanceOf: CniError });
  t.is(err?.code as number | undefined, CniCode.UnknownContainer);
  t.false(netnsExists(join(dir, 'gone')));
});

test('a regular file is not a namespace (8)', (t) => {
  const f = join(dir, 'file');
  writeFileSync(f, 'x');
  const err = t.throws(() => Netns.open(f, {}), { instanceOf: CniError });
  t.is(err?.code as number | undefined, CniCode.InvalidNetns);
  t.true(netnsExists(f));
});

test('the plugin\'s own namespace is refused (8) unless CNI_NETNS_OVERRIDE=1', (t) => {
  const err = t.throws(() => Netns.open('/proc/self/ns/net', {}), { instanceOf: CniError });
  t.is(err?.code as number | undefined, CniCode.InvalidNetns);
  t.is(err?.message, 'netns is the plugin\'s own namespace');
  const ns = Netns.open('/proc/self/ns/net', { CNI_NETNS_OVERRIDE: '1' });
  t.true(ns.fd >= 0);
  t.is(ns.path, '/proc/self/ns/net');
  ns.close();
  t.notThrows(() => ns.close(), 'closing twice is harmless');
});

test('another path to our own namespace (/proc/PID/ns/net of this process) is refused too', (t) => {
  const err = t.throws(() => Netns.open(`/proc/${process.pid}/ns/net`, {}), { instanceOf: CniError });
  t.is(err?.code as number | undefined, CniCode.InvalidNetns);
});

test('a second close never closes the file that took the number meanwhile', (t) => {
  const ns = Netns.open('/proc/self/ns/net', { CNI_NETNS_OVERRIDE: '1' });
  ns.close();
  const file = openSync('/proc/self/stat', 'r'); // the lowest free number: most likely the netns fd's
  try {
    ns.close();
    t.notThrows(() => fstatSync(file), 'the file is still open');
  } finally {
    closeSync(file);
  }
});

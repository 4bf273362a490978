/**
 * Netns.open's checks on CNI_NETNS, none of which need root: a missing path is an unknown
 * container (3), a file that is not a namespace or is the plugin's own namespace is code 8
 * (unless CNI_NETNS_OVERRIDE=1, as upstream).
 */
import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
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

test('another process\'s namespace file of the same namespace is refused too', (t) => {
  // /proc/1/ns/net is init's: the same namespace as ours unless we run in a container.
  let same: boolean;
  try {
    same = (Netns.open('/proc/1/ns/net', { CNI_NETNS_OVERRIDE: '1' }).close(), true) && require_same();
  } catch {
    t.pass('cannot read /proc/1/ns/net here');
    return;
  }
  if (!same) return t.pass('init runs in another namespace');
  const err = t.throws(() => Netns.open('/proc/1/ns/net', {}), { instanceOf: CniError });
  t.is(err?.code as number | undefined, CniCode.InvalidNetns);
});

function require_same(): boolean {
  const { statSync } = process.getBuiltinModule('node:fs');
  const a = statSync('/proc/self/ns/net');
  const b = statSync('/proc/1/ns/net');
  return a.ino === b.ino && a.dev === b.dev;
}

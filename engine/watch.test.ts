import test from 'ava';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BuildWatch, netnsPinned, ownNetns } from './watch.ts';

test('a replaced file (same content, new inode) counts as a new build', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cnikit-watch-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const f = join(dir, 'engine.cjs');
  writeFileSync(f, 'x');
  const w = new BuildWatch([f]);
  t.is(w.changed(), undefined);
  writeFileSync(join(dir, 'tmp'), 'x');
  renameSync(join(dir, 'tmp'), f);
  t.is(w.changed(), f);
});

test('a missing file counts as changed once it appears', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cnikit-watch-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const w = new BuildWatch([join(dir, 'none')]);
  t.is(w.changed(), undefined);
  writeFileSync(join(dir, 'none'), '');
  t.truthy(w.changed());
});

test('the namespace this test runs in is pinned by other processes', (t) => {
  t.regex(ownNetns(), /^net:\[\d+\]$/);
  t.true(netnsPinned(ownNetns()));
  t.false(netnsPinned('net:[1]'));
});

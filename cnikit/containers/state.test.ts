/** `cnikit run`'s records: live while their owner runs (same pid and start time), pruned otherwise; found by name, id or prefix. */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ContainerState, StateDir, processStart } from './state.ts';

function dir(t: { teardown(fn: () => void): void }): StateDir {
  const d = mkdtempSync(join(tmpdir(), 'cnikit-state-'));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  return new StateDir(d);
}

const record = (id: string, o: Partial<ContainerState> = {}): ContainerState => ({
  version: 1, id, aliases: [], pid: process.pid, pidStart: processStart(process.pid)!, command: ['sleep'], mode: 'host', netns: '',
  created: '2026-12-01T00:00:00.000Z', cacheDir: '/c', files: {}, addHosts: [], attachments: [], ...o,
});

test('a record is live while its owner runs; a dead pid, a reused pid or a gone netns make it stale, and listLive prunes it', (t) => {
  const s = dir(t);
  const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
  s.write(record('cnikit-aaaaaaaaaaaa', { name: 'web' }));
  s.write(record('cnikit-bbbbbbbbbbbb', { pid: dead }));
  s.write(record('cnikit-cccccccccccc', { pidStart: '1' }));
  s.write(record('cnikit-dddddddddddd', { mode: 'bridge', netns: join(s.dir, 'gone') }));
  mkdirSync(s.filesDir('cnikit-bbbbbbbbbbbb'));
  writeFileSync(join(s.dir, 'junk.json'), '{"version":2}');
  const { live, pruned } = s.listLive();
  t.deepEqual(live.map((x) => x.id), ['cnikit-aaaaaaaaaaaa']);
  t.deepEqual(pruned.map((x) => x.id).sort(), ['cnikit-bbbbbbbbbbbb', 'cnikit-cccccccccccc', 'cnikit-dddddddddddd']);
  t.false(existsSync(s.file('cnikit-bbbbbbbbbbbb')));
  t.false(existsSync(s.filesDir('cnikit-bbbbbbbbbbbb')), 'its files go with it');
  t.true(existsSync(join(s.dir, 'junk.json')), 'a file that is not a record is left alone');
});

test('find: by name, by id, by a unique prefix; otherwise not-found', (t) => {
  const s = dir(t);
  s.write(record('cnikit-aaaa11111111', { name: 'web' }));
  s.write(record('cnikit-aaaa22222222'));
  t.is(s.find('web').id, 'cnikit-aaaa11111111');
  t.is(s.find('cnikit-aaaa22222222').id, 'cnikit-aaaa22222222');
  t.is(s.find('cnikit-aaaa2').id, 'cnikit-aaaa22222222');
  t.throws(() => s.find('cnikit-aaaa'), { message: '"cnikit-aaaa" matches 2 containers' });
  t.like(t.throws(() => s.find('db')), { message: 'no running container "db"', reason: 'not-found' });
});

// The manifest is the one list of executables: the build wrote each of them, and the README's
// table shows exactly them, with their about text.
import test from 'ava';
import { existsSync, readFileSync } from 'node:fs';
import { EXECUTABLES } from './executables.ts';

const root = new URL('.', import.meta.url);

test('every manifest entry exists and was built into dist/bin', (t) => {
  for (const e of EXECUTABLES) {
    t.true(existsSync(new URL(e.entry, root)), `${e.entry} exists`);
    const built = e.role === 'daemon' ? `dist/bin/.lib/${e.type}.cjs` : `dist/bin/${e.type}`;
    t.true(existsSync(new URL(built, root)), `${built} was built`);
  }
});

test('the README table lists the manifest, in order, with its about text', (t) => {
  const readme = readFileSync(new URL('README.md', root), 'utf8');
  const rows = [...readme.matchAll(/^\| `([a-z-]+)` \| (.*) \|$/gm)].map((m) => [m[1], m[2]]);
  t.deepEqual(rows, EXECUTABLES.map((e) => [e.type, e.about]));
});

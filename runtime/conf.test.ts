import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CniError } from '../pkg/cni/errors.ts';
import { listNetworks, loadNetwork, parseConfAsList, parseConfList, resolveNetwork } from './conf.ts';

const list = (o: Record<string, unknown>) => Buffer.from(JSON.stringify({ cniVersion: '1.0.0', name: 'net', plugins: [{ type: 'bridge' }], ...o }));

function rejects(t: import('ava').ExecutionContext, fn: () => unknown, code: number, re: RegExp): void {
  const err = t.throws(fn);
  t.true(err instanceof CniError);
  t.is((err as CniError).code as number, code);
  t.regex(`${err!.message}: ${(err as CniError).details}`, re);
}

test('a conflist keeps every plugin key and reads disable* as bool or string', (t) => {
  const l = parseConfList(list({ disableCheck: 'true', disableGC: false, plugins: [{ type: 'bridge', bridge: 'br9', capabilities: { mac: true } }] }), 'f');
  t.is(l.name, 'net');
  t.true(l.disableCheck);
  t.false(l.disableGC);
  t.deepEqual(l.plugins, [{ type: 'bridge', bridge: 'br9', capabilities: { mac: true } }]);
  t.is(l.cniVersion, '1.0.0');
});

test('versions: the highest implemented of cniVersion ∪ cniVersions, unknown ones ignored', (t) => {
  const l = parseConfList(list({ cniVersion: '0.4.0', cniVersions: ['1.0.0', '1.1.0', '2.0.0'] }));
  t.deepEqual(l.candidateVersions, ['1.1.0', '1.0.0', '0.4.0']);
  t.is(l.cniVersion, '1.1.0');
  rejects(t, () => parseConfList(list({ cniVersion: '3.0.0' }), 'f.conflist'), 1, /incompatible CNI versions in f\.conflist: .*\[3\.0\.0\]/);
  rejects(t, () => parseConfList(list({ cniVersion: undefined })), 7, /cniVersion: missing/);
});

const bad: [string, Record<string, unknown>, RegExp][] = [
  ['no name', { name: undefined }, /name: missing: the network needs a "name"/],
  ['bad name', { name: 'a b' }, /name: must start with a letter or digit/],
  ['no plugins', { plugins: undefined }, /plugins: missing: a conflist needs a "plugins" list/],
  ['empty plugins', { plugins: [] }, /plugins: needs at least one plugin/],
  ['plugin without type', { plugins: [{ type: 'bridge' }, {}] }, /plugins\[1\]\.type: missing: every plugin needs a "type"/],
  ['type with a slash', { plugins: [{ type: '../bin/sh' }] }, /plugins\[0\]\.type: must be a plugin name, not a path/],
  ['type not a string', { plugins: [{ type: 5 }] }, /plugins\[0\]\.type: expected a string/],
  ['capability not bool', { plugins: [{ type: 'portmap', capabilities: { portMappings: 'yes' } }] }, /plugins\[0\]\.capabilities\.portMappings: capability values must be true or false/],
  ['bad disableCheck', { disableCheck: 'maybe' }, /disableCheck: expected true or false/],
  ['bad version string', { cniVersion: '1.0' }, /cniVersion: expected a version like "1\.0\.0"/],
];
for (const [title, o, re] of bad) {
  test(`invalid conflist: ${title}`, (t) => rejects(t, () => parseConfList(list(o), '/etc/x.conflist'), 7, new RegExp(`invalid network config in /etc/x\\.conflist: .*${re.source}`)));
}

test('not JSON, or not an object: code 6 naming the file', (t) => {
  rejects(t, () => parseConfList(Buffer.from('{"name": '), 'a.conflist'), 6, /invalid network config in a\.conflist: not valid JSON/);
  rejects(t, () => parseConfList(Buffer.from('[1]'), 'a.conflist'), 6, /expected a JSON object/);
});

test('a single .conf is wrapped into a one-plugin list with the same bytes in the cache form', (t) => {
  const l = parseConfAsList(Buffer.from(JSON.stringify({ cniVersion: '0.4.0', name: 'one', type: 'bridge', bridge: 'b' })), 'one.conf');
  t.is(l.plugins.length, 1);
  t.is(l.plugins[0]!.bridge, 'b');
  t.deepEqual(JSON.parse(l.bytes.toString()), { cniVersion: '0.4.0', name: 'one', plugins: [{ cniVersion: '0.4.0', name: 'one', type: 'bridge', bridge: 'b' }] });
  rejects(t, () => parseConfAsList(Buffer.from(JSON.stringify({ cniVersion: '0.4.0', name: 'one' })), 'one.conf'), 7, /type: missing/);
});

test('directory lookup: conflists first (sorted), then .conf/.json; not found lists what exists', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cnikit-conf-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, '20-b.conflist'), list({ name: 'shared', plugins: [{ type: 'second' }] }));
  writeFileSync(join(dir, '10-a.conflist'), list({ name: 'shared', plugins: [{ type: 'first' }] }));
  writeFileSync(join(dir, '05-single.conf'), JSON.stringify({ cniVersion: '1.0.0', name: 'single', type: 'bridge' }));
  writeFileSync(join(dir, '06-shared.json'), JSON.stringify({ cniVersion: '1.0.0', name: 'shared', type: 'never' }));
  writeFileSync(join(dir, 'README.md'), 'not a config');
  t.is(loadNetwork(dir, 'shared').plugins[0]!.type, 'first');
  t.is(loadNetwork(dir, 'single').plugins[0]!.type, 'bridge');
  t.deepEqual(listNetworks(dir).map((l) => l.name), ['shared', 'single']);
  rejects(t, () => loadNetwork(dir, 'nope'), 7, /no net configuration with name "nope" in .*: networks there: shared, single/);
  rejects(t, () => loadNetwork(join(dir, 'missing'), 'x'), 7, /no net configurations found in/);
  t.is(resolveNetwork('/nonexistent', join(dir, '20-b.conflist')).plugins[0]!.type, 'second');
  writeFileSync(join(dir, '00-broken.conflist'), '{');
  rejects(t, () => loadNetwork(dir, 'single'), 6, /00-broken\.conflist: not valid JSON/);
});

test('keys as libcni matches them: list keys exact, plugin keys case-insensitive, capability names exact', (t) => {
  const l = parseConfList(list({ plugins: [{ Type: 'portmap', Capabilities: { portMappings: true, PortMappings: false } }] }));
  t.deepEqual(l.plugins, [{ type: 'portmap', capabilities: { portMappings: true, PortMappings: false } }]);
  rejects(t, () => parseConfList(Buffer.from(JSON.stringify({ cniVersion: '1.0.0', Name: 'net', plugins: [{ type: 'bridge' }] }))), 7, /name: missing/);
  rejects(t, () => parseConfList(Buffer.from(JSON.stringify({ cniVersion: '1.0.0', name: 'net', Plugins: [{ type: 'bridge' }] }))), 7, /plugins: missing/);
  const one = parseConfAsList(Buffer.from(JSON.stringify({ CNIVersion: '0.4.0', NAME: 'one', Type: 'bridge' })));
  t.is(one.name, 'one');
  t.is(one.cniVersion, '0.4.0');
  t.is(one.plugins[0]!.type, 'bridge');
});

/**
 * The shared parse of record files: what the plugin notes when it writes a file is what a parse
 * of that file gives (so the responder's reload may use it), an unchanged file comes from
 * memory, and a file changed by another writer is parsed again with unchanged lines keeping
 * their record objects.
 */
import test from 'ava';
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { noteWritten, readParsed } from './parsed-files.ts';
import { type NetworkRecords, formatRecords, parseRecords } from './records.ts';

const records = (): NetworkRecords => ({
  network: 'app', domain: 'dns.test', port: 5353, upstreams: ['10.0.0.53', '[fd00::53]:5300'], resolver: '127.0.0.11', internal: true,
  resolvConf: '/etc/with space/resolv.conf', hostNetns: 4026531840, bridge: { name: 'br-app', index: 7 },
  containers: [
    { containerId: 'c1', ifName: 'eth0', addresses: ['10.89.0.2/24', 'fd00::2/64'], gateways: ['10.89.0.1', 'fd00::1'], names: ['web', 'Www'], netns: { ino: 4026532001, path: '/run/netns/a b' } },
    { containerId: 'c2', ifName: 'net1', addresses: ['10.89.0.3/24'], gateways: ['10.89.0.1'], names: ['db'] },
  ],
});

function withDir(t: { teardown: (f: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'cnikit-parsed-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('the records noted at a write are what parsing the written file gives', (t) => {
  const dir = withDir(t);
  for (const rec of [records(), { ...records(), upstreams: undefined, resolver: undefined, internal: undefined, resolvConf: undefined, bridge: undefined }]) {
    // As the plugin builds them: optional keys absent, upstreams present (undefined: from resolv.conf).
    for (const k of Object.keys(rec) as (keyof NetworkRecords)[]) if (rec[k] === undefined && k !== 'upstreams') delete rec[k];
    const text = formatRecords(rec);
    writeFileSync(join(dir, 'app.records'), text);
    noteWritten(dir, 'app.records', text, rec);
    const fromDisk = parseRecords(text, 'app', join(dir, 'app.records'));
    t.deepEqual(fromDisk.problems, []);
    t.deepEqual(readParsed(dir, 'app.records')!.parsed, fromDisk);
  }
});

test('an unchanged file comes from memory; one changed by another writer is parsed again, keeping unchanged records', (t) => {
  const dir = withDir(t);
  const rec = records();
  const text = formatRecords(rec);
  writeFileSync(join(dir, 'app.records'), text);
  noteWritten(dir, 'app.records', text, rec);
  const first = readParsed(dir, 'app.records')!;
  t.is(readParsed(dir, 'app.records'), first);
  // Another process appends a container (a new stamp: size and mtime).
  const added = `${text}container c3 eth0 10.89.0.4/24 10.89.0.1 cache\n`;
  writeFileSync(join(dir, 'app.records'), added);
  utimesSync(join(dir, 'app.records'), new Date(), new Date(Date.now() + 5000));
  const second = readParsed(dir, 'app.records')!;
  t.not(second, first);
  t.is(second.text, added);
  const [c1, c2, c3] = second.parsed.records!.containers;
  t.is(c1, first.parsed.records!.containers[0]);
  t.is(c2, first.parsed.records!.containers[1]);
  t.deepEqual(c3!.names, ['cache']);
  rmSync(join(dir, 'app.records'));
  t.is(readParsed(dir, 'app.records'), undefined);
});

test('a file removed by the writer is forgotten', (t) => {
  const dir = withDir(t);
  const rec = records();
  writeFileSync(join(dir, 'app.records'), formatRecords(rec));
  noteWritten(dir, 'app.records', formatRecords(rec), rec);
  rmSync(join(dir, 'app.records'));
  noteWritten(dir, 'app.records', undefined);
  t.is(readParsed(dir, 'app.records'), undefined);
});

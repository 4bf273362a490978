/**
 * Crash-proof records without root: the records format's bindings round trip, the liveness
 * verdicts over a fake host (links, addresses, namespaces), what RecordsState serves and what it
 * wants pruned, problems logged once, a bounded sweep, prune.ts on a temp directory, and the
 * scope of a container on several networks (Docker's order, internal networks).
 */
import test from 'ava';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger, silentLogger } from '../pkg/log.ts';
import { RCODE, TYPE, nameKey } from './wire.ts';
import { buildView, containerScope, lookupIn } from './backend.ts';
import { type HostProbe, UNSEEN, deadContainers, gatewaysOf, judgeBinding, netnsAlive, netnsInoOf } from './liveness.ts';
import { listDiff } from './list-diff.ts';
import { tryPruneRecordsDir } from './prune.ts';
import { type ContainerRecord, type NetworkRecords, formatRecords, parseRecords } from './records.ts';
import { DnsServer } from './server.ts';
import { RecordsState } from './state.ts';

const HOST = 4026531840;

/** A host with links (ifindex -> name), local addresses (address -> ifindex) and live namespaces (path -> inode). */
function fakeHost(o: { links?: Record<number, string>; addrs?: Record<string, number>; netns?: Record<string, number> } = {}) {
  const h = { links: { 7: 'br-a', 8: 'br-b', ...o.links }, addrs: { '10.89.0.1': 7, '10.90.0.1': 8, ...o.addrs }, netns: { ...o.netns } as Record<string, number>, opened: 0 };
  const probe = (): HostProbe => {
    h.opened++;
    return {
      hostNetns: HOST,
      linkName: async (i) => h.links[i as keyof typeof h.links],
      addressOwners: async () => new Map(Object.entries(h.addrs)),
      netnsIno: (p) => h.netns[p],
      close() {},
    };
  };
  return { h, probe };
}

const ctr = (id: string, ip: string, gw: string, names: string[], netns?: [number, string]): ContainerRecord => ({
  containerId: id, ifName: 'eth0', addresses: [`${ip}/24`], gateways: [gw], names, ...(netns ? { netns: { ino: netns[0], path: netns[1] } } : {}),
});

function net(name: string, containers: ContainerRecord[], more: Partial<NetworkRecords> = {}): NetworkRecords {
  return { network: name, domain: 'dns.cnikit', port: 53, upstreams: [], hostNetns: HOST, bridge: { name: 'br-a', index: 7 }, containers, ...more };
}

function dir(t: { teardown(fn: () => void): void }): string {
  const d = mkdtempSync(join(tmpdir(), 'cnikit-state-'));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

function logLines(): { log: ReturnType<typeof createLogger>; lines: string[] } {
  const lines: string[] = [];
  return { log: createLogger({ debug: false, write: (l) => lines.push(l) }), lines };
}

test('records: bindings, resolver, internal and resolvconf round trip; a path with a space is escaped', (t) => {
  const r = net('neta', [ctr('c1', '10.89.0.5', '10.89.0.1', ['web'], [4026532001, '/run/netns/with space%'])], {
    resolver: '127.0.0.11', internal: true, resolvConf: '/etc/resolv.conf', upstreams: undefined,
  });
  const text = formatRecords(r);
  t.regex(text, /^version 2$/m);
  t.regex(text, /container c1 eth0 10\.89\.0\.5\/24 10\.89\.0\.1 web 4026532001 \/run\/netns\/with%20space%25$/m);
  const back = parseRecords(text, 'neta');
  t.deepEqual(back.problems, []);
  t.is(back.version, 2);
  t.deepEqual(back.records, r);
});

test('records: a file without a version is version 1 and still read; a later version is skipped as a whole', (t) => {
  const v1 = parseRecords('# cnikit dnsname records v1\nnetwork a\ndomain d.test\ncontainer c1 eth0 10.0.0.5/24 10.0.0.1 web\n', 'a');
  t.is(v1.version, 1);
  t.is(v1.records?.containers.length, 1);
  const v9 = parseRecords('version 9\nnetwork a\ndomain d.test\n', 'a', 'a.records');
  t.is(v9.records, undefined);
  t.regex(v9.problems[0]!.msg, /version 9 .*file skipped/);
  for (const bad of ['host x', 'bridge br-a', 'bridge br-a 0', 'resolver 127.0.0.1', 'resolvconf etc/resolv.conf', 'internal yes', 'container c1 eth0 10.0.0.5/24 10.0.0.1 web 12 relative/path']) {
    t.is(parseRecords(`domain d.test\n${bad}\n`, 'a').problems.length, 1, bad);
  }
});

test('liveness: a network is live while its bridge has its name and ifindex and no other link holds its gateway', async (t) => {
  const { h, probe } = fakeHost();
  const r = net('neta', [ctr('c1', '10.89.0.5', '10.89.0.1', ['web'])]);
  t.deepEqual(await judgeBinding(r, probe()), { state: 'live', verified: true });
  t.deepEqual(await judgeBinding({ ...r, hostNetns: undefined, bridge: undefined }, probe()), { state: 'live', verified: false }, 'unbound: as written');
  t.like(await judgeBinding({ ...r, hostNetns: 1 }, probe()), { state: 'foreign' });
  h.links[7] = 'br-other';
  t.like(await judgeBinding(r, probe()), { state: 'gone', why: 'its bridge br-a (#7) is gone (ifindex 7 is now br-other)' });
  delete (h.links as Record<number, string>)[7];
  t.like(await judgeBinding(r, probe()), { state: 'gone', why: 'its bridge br-a (#7) is gone' });
  h.links[7] = 'br-a';
  h.addrs['10.89.0.1'] = 8;
  t.like(await judgeBinding(r, probe()), { state: 'gone', why: 'its gateway 10.89.0.1 is now on another link (#8)' });
  delete (h.addrs as Record<string, number>)['10.89.0.1'];
  t.deepEqual(await judgeBinding(r, probe()), { state: 'live', verified: false }, 'a gateway not up (yet) is no reason to prune');
});

test('liveness: a container is dead once its netns path names another inode or none', (t) => {
  const { probe } = fakeHost({ netns: { '/run/netns/a': 11, '/run/netns/b': 99 } });
  const cs = [ctr('a', '10.89.0.5', '10.89.0.1', ['a'], [11, '/run/netns/a']), ctr('b', '10.89.0.6', '10.89.0.1', ['b'], [12, '/run/netns/b']),
    ctr('c', '10.89.0.7', '10.89.0.1', ['c'], [13, '/run/netns/c']), ctr('d', '10.89.0.8', '10.89.0.1', ['d'])];
  t.deepEqual(deadContainers(cs, probe()).map((c) => c.containerId), ['b', 'c']);
});

test('liveness: netnsInoOf gives the inode of a namespace file, UNSEEN for a plain file (a bind mount of another mount namespace), nothing for no file', (t) => {
  const d = dir(t);
  writeFileSync(join(d, 'pinned'), '');
  t.is(netnsInoOf('/proc/self/ns/net'), statSync('/proc/self/ns/net').ino);
  t.is(netnsInoOf(join(d, 'pinned')), UNSEEN);
  t.is(netnsInoOf(join(d, 'gone')), undefined);
  t.true(netnsAlive({ netnsIno: netnsInoOf }, { ino: 5, path: join(d, 'pinned') }), 'cannot be seen: alive until the file goes');
  t.false(netnsAlive({ netnsIno: netnsInoOf }, { ino: 5, path: join(d, 'gone') }));
});

test('state: gone networks and dead containers are not served and are to be pruned; an address two networks claim goes to the verified one', async (t) => {
  const d = dir(t);
  const { h, probe } = fakeHost({ netns: { '/n/a1': 21, '/n/b1': 22 } });
  writeFileSync(join(d, 'aaa-stale.records'), formatRecords(net('aaa-stale', [ctr('s1', '10.89.0.9', '10.89.0.1', ['stale'])], { bridge: { name: 'br-old', index: 5 } })));
  writeFileSync(join(d, 'neta.records'), formatRecords(net('neta', [ctr('a1', '10.89.0.5', '10.89.0.1', ['web'], [21, '/n/a1']), ctr('a2', '10.89.0.6', '10.89.0.1', ['db'], [23, '/n/a2'])])));
  writeFileSync(join(d, 'netb.records'), formatRecords(net('netb', [ctr('b1', '10.90.0.5', '10.90.0.1', ['cache'], [22, '/n/b1'])], { bridge: { name: 'br-b', index: 8 } })));
  writeFileSync(join(d, 'unbound.records'), formatRecords({ network: 'unbound', domain: 'dns.cnikit', port: 53, upstreams: [], containers: [ctr('u1', '10.90.0.7', '10.90.0.1', ['hand'])] }));
  const s = new RecordsState({ recordsDir: d, log: silentLogger, probe });
  await s.refresh();
  const b = s.build();
  t.deepEqual([...b.backend.views.keys()], ['neta', 'netb', 'unbound'], 'the stale network is not served');
  t.is(b.networks, 3);
  t.is(b.backend.viewFor('10.89.0.1', 53)?.name, 'neta');
  t.is(b.backend.viewFor('10.90.0.1', 53)?.name, 'netb', 'the bound, verified network wins the address over the unbound one');
  t.deepEqual(b.backend.conflicts.map((c) => [c.listen, c.winner, c.loser]), [['10.90.0.1|53', 'netb', 'unbound']]);
  const a = b.backend.views.get('neta')!;
  t.truthy(a.names.get(nameKey('web')));
  t.is(a.names.get(nameKey('db')), undefined, 'the dead container is left out');
  t.true(s.needsPrune);
  // The bridge of netb goes: netb is no longer served once the links are checked.
  delete (h.links as Record<number, string>)[8];
  t.true(await s.checkLinks());
  t.deepEqual([...s.build().backend.views.keys()], ['neta', 'unbound']);
});

test('state: an unchanged file is not read again, unchanged lines keep their records, and problems are logged once', async (t) => {
  const d = dir(t);
  const { probe } = fakeHost({ netns: { '/n/a1': 21, '/n/a2': 22 } });
  const { log, lines } = logLines();
  const file = join(d, 'neta.records');
  writeFileSync(file, formatRecords(net('neta', [ctr('a1', '10.89.0.5', '10.89.0.1', ['web'], [21, '/n/a1'])])) + 'container broken\n');
  writeFileSync(join(d, 'future.records'), 'version 7\ndomain d.test\n');
  const s = new RecordsState({ recordsDir: d, log, probe });
  t.true(await s.refresh());
  const first = s.build().backend.views.get('neta')!;
  t.false(await s.refresh(), 'nothing changed on disk');
  writeFileSync(file, readFileSync(file, 'utf8') + formatRecords(net('neta', [ctr('a2', '10.89.0.6', '10.89.0.1', ['db'], [22, '/n/a2'])])).split('\n').filter((l) => l.startsWith('container')).join('\n') + '\n');
  t.true(await s.refresh());
  const second = s.build().backend.views.get('neta')!;
  t.is(second, first, 'the view is updated in place, not rebuilt');
  t.truthy(second.names.get(nameKey('db')));
  await s.refresh();
  s.build();
  const warnings = lines.filter((l) => l.includes('"level":"warn"'));
  t.is(warnings.filter((l) => l.includes('neta.records')).length, 1, 'the broken line, once');
  t.is(warnings.filter((l) => l.includes('future.records')).length, 1, 'the other version, once');
});

test('state: a sweep checks at most its budget of namespaces, round robin', async (t) => {
  const d = dir(t);
  const netns: Record<string, number> = {};
  const cs = Array.from({ length: 5 }, (_, i) => { netns[`/n/${i}`] = 100 + i; return ctr(`c${i}`, `10.89.0.${10 + i}`, '10.89.0.1', [`n${i}`], [100 + i, `/n/${i}`]); });
  writeFileSync(join(d, 'neta.records'), formatRecords(net('neta', cs)));
  const { h, probe } = fakeHost({ netns });
  const s = new RecordsState({ recordsDir: d, log: silentLogger, probe });
  await s.refresh();
  delete h.netns['/n/4'];
  let asked = 0;
  const counting = { netnsIno: (p: string) => { asked++; return h.netns[p]; } };
  t.false(s.sweep(2, counting), 'c0, c1');
  t.false(s.sweep(2, counting), 'c2, c3');
  t.true(s.sweep(2, counting), 'c4 is found dead on the third sweep');
  t.is(asked, 6);
  t.is(s.build().backend.views.get('neta')!.names.get(nameKey('n4')), undefined);
});

test('server: a liveness sweep of 250 containers stats at most 100 of them in one turn of the loop', async (t) => {
  const d = dir(t);
  const netns: Record<string, number> = {};
  const cs = Array.from({ length: 250 }, (_, i) => { netns[`/n/${i}`] = 100 + i; return ctr(`c${i}`, `10.89.${i >> 8}.${i & 255}`, '10.89.0.1', [`n${i}`], [100 + i, `/n/${i}`]); });
  writeFileSync(join(d, 'neta.records'), formatRecords(net('neta', cs)));
  const { h, probe } = fakeHost({ netns });
  let asked = 0;
  const counting = () => ({ ...probe(), netnsIno: (p: string) => { asked++; return h.netns[p]; } });
  const server = new DnsServer({ recordsDir: d, listen: [], probe: counting, cache: false, log: silentLogger });
  t.teardown(() => server.close());
  await server.reload('test');
  t.is(server.names, 250);
  delete h.netns['/n/249'];
  asked = 0;
  const perTurn: number[] = [];
  let last = 0;
  let sampling = true;
  const sample = () => { perTurn.push(asked - last); last = asked; if (sampling) setImmediate(sample); };
  setImmediate(sample);
  t.true(await server.check(2000, false), 'the dead one is found');
  sampling = false;
  await new Promise((r) => setImmediate(r));
  t.is(asked, 250, 'every container once');
  t.true(Math.max(...perTurn) <= 100, `stats per turn: ${perTurn.filter((n) => n).join(', ')}`);
  t.is(server.names, 249);
});

test('prune: removes what is gone, drops dead lines, removes crashed temp files; leaves what is not ours to judge', async (t) => {
  const d = dir(t);
  const { probe } = fakeHost({ netns: { '/n/a1': 21 } });
  writeFileSync(join(d, 'gone.records'), formatRecords(net('gone', [ctr('g1', '10.89.0.9', '10.89.0.1', ['g'])], { bridge: { name: 'br-old', index: 5 } })));
  writeFileSync(join(d, 'neta.records'), formatRecords(net('neta', [ctr('a1', '10.89.0.5', '10.89.0.1', ['web'], [21, '/n/a1']), ctr('a2', '10.89.0.6', '10.89.0.1', ['db'], [22, '/n/a2'])])));
  writeFileSync(join(d, 'alldead.records'), formatRecords(net('alldead', [ctr('x1', '10.90.0.5', '10.90.0.1', ['x'], [30, '/n/x1'])], { bridge: { name: 'br-b', index: 8 } })));
  writeFileSync(join(d, 'foreign.records'), formatRecords(net('foreign', [ctr('f1', '10.91.0.5', '10.91.0.1', ['f'], [40, '/n/f1'])], { hostNetns: 12345 })));
  writeFileSync(join(d, 'future.records'), 'version 9\n');
  writeFileSync(join(d, '.neta.records.tmp999'), 'half');
  const r = await tryPruneRecordsDir(d, probe());
  t.truthy(r);
  t.deepEqual(r!.removed.map((x) => x.file.split('/').pop()).sort(), ['alldead.records', 'gone.records']);
  t.deepEqual(r!.dropped.map((x) => [x.file.split('/').pop(), x.containers]).sort(), [['alldead.records', ['x1/eth0']], ['neta.records', ['a2/eth0']]]);
  t.deepEqual(r!.temps.map((x) => x.split('/').pop()), ['.neta.records.tmp999']);
  t.deepEqual(parseRecords(readFileSync(join(d, 'neta.records'), 'utf8'), 'neta').records!.containers.map((c) => c.containerId), ['a1']);
  t.true(existsSync(join(d, 'foreign.records')));
  t.true(existsSync(join(d, 'future.records')));
});

test('scope of a container on several networks: the first network in Docker\'s order that knows a name answers; internal ones last, and nothing forwarded when all are internal', (t) => {
  const mk = (name: string, ip: string, names: string[], more: Partial<NetworkRecords> = {}) => buildView(name, [net(name, [ctr(`${name}1`, ip, ip.replace(/\d+$/, '1'), names)], more)], 1);
  const b = mk('netb', '10.90.0.5', ['db', 'both']);
  const a = mk('neta', '10.89.0.5', ['web', 'both']);
  const i = mk('aaa-internal', '10.91.0.5', ['secret', 'both'], { internal: true });
  const scope = containerScope('m', [b, i, a]);
  t.deepEqual(scope.views.map((v) => v.name), ['neta', 'netb', 'aaa-internal']);
  t.false(scope.internal);
  const ask = (key: string) => lookupIn(scope, nameKey(key), TYPE.A, 1);
  t.like(ask('both'), { kind: 'reply', rcode: RCODE.NOERROR, ancount: 1 });
  t.deepEqual((ask('both') as unknown as { answers: Buffer[] }).answers[0]!.subarray(12), Buffer.from([10, 89, 0, 5]), 'neta (first by name) answers');
  t.deepEqual((ask('secret.dns.cnikit') as unknown as { answers: Buffer[] }).answers[0]!.subarray(12), Buffer.from([10, 91, 0, 5]));
  t.like(ask('nosuch.dns.cnikit'), { kind: 'reply', rcode: RCODE.NXDOMAIN });
  t.like(ask('example.org'), { kind: 'forward' });
  t.true(containerScope('n', [i]).internal, 'only internal networks: nothing is forwarded');
  t.deepEqual(containerScope('n', [i]).upstreams, []);
});

test('a network\'s gateways: each once, canonical, in the order first seen, whatever runs of equal ones the containers make', (t) => {
  const c = (id: string, gateways: string[]): ContainerRecord => ({ containerId: id, ifName: 'eth0', addresses: [], gateways, names: [id] });
  const rec: NetworkRecords = { network: 'n', domain: 'd', port: 53, upstreams: [], containers: [
    c('a', ['10.89.0.1']), c('b', ['10.89.0.1']), c('c', ['fd89:0::1', '10.89.0.1']), c('d', ['10.89.0.1']), c('e', ['bad']), c('f', ['10.90.0.1']),
  ] };
  t.deepEqual(gatewaysOf(rec).sort(), ['10.89.0.1', '10.90.0.1', 'fd89::1']);
  t.deepEqual(gatewaysOf({ ...rec, containers: [] }), []);
  // New versions of the list (a few records in or out, counted from a recent version) and
  // unrelated ones (counted from scratch) give what a full count gives.
  let seed = 7;
  const rnd = (n: number) => { seed = (seed * 1103515245 + 12345) >>> 0; return seed % n; };
  const full = (list: ContainerRecord[]) => [...new Set(list.flatMap((x) => x.gateways))].sort();
  let list: ContainerRecord[] = [];
  for (let step = 0; step < 200; step++) {
    list = step % 40 === 39 ? [] : [...list];
    for (let k = rnd(3); k >= 0; k--) {
      if (list.length && rnd(2)) list.splice(rnd(list.length), 1);
      else list.splice(rnd(list.length + 1), 0, c(`x${step}.${k}`, [`10.${80 + rnd(4)}.0.1`]));
    }
    t.deepEqual(gatewaysOf({ ...rec, containers: list }).sort(), full(list), `step ${step}`);
  }
  // A list appended to in place after it was counted is counted again.
  const grown = [c('g1', ['10.1.0.1'])];
  t.deepEqual(gatewaysOf({ ...rec, containers: grown }), ['10.1.0.1']);
  grown.push(c('g2', ['10.2.0.1']));
  t.deepEqual(gatewaysOf({ ...rec, containers: grown }).sort(), ['10.1.0.1', '10.2.0.1']);
});

test('listDiff: the records only one version holds, found by the slots; undefined past the bound', (t) => {
  const [a, b, c, d, e] = ['a', 'b', 'c', 'd', 'e'].map((x) => ({ x }));
  t.deepEqual(listDiff([a, b, c], [a, b, c, d]), { removed: [], added: [d] });
  t.deepEqual(listDiff([a, b, c, d], [a, c, d]), { removed: [b], added: [] });
  t.deepEqual(listDiff([a, b, c], [e, b, c]), { removed: [a], added: [e] });
  t.deepEqual(listDiff([a, b, c, d], [b, c, d, a]), { removed: [], added: [] }, 'a record moved is in both');
  t.deepEqual(listDiff([], [a]), { removed: [], added: [a] });
  t.deepEqual(listDiff([a, b], [a, b]), { removed: [], added: [] });
  t.is(listDiff([a, b, c, d, e], [], 4), undefined);
});

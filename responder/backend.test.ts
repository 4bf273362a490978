/**
 * Backend and wire codec unit tests (no root): lookups from fixture record directories, and
 * responses from the hand-written encoder decoded by dns2's general codec.
 */
import test from 'ava';
import dns2 from 'dns2';
import { fileURLToPath } from 'node:url';
import { Backend, type View, addressOfReverse, buildView, clientAllowed, lookup, reverseName } from './backend.ts';
import { type ContainerRecord, type NetworkRecords, formatRecords, loadRecordsDir, parseRecords, parseUpstream } from './records.ts';
import { RCODE, TYPE, type Query, encodeResponse, keyInZone, nameKey, parseQuery, udpLimit } from './wire.ts';
import { loadSlowParser } from './slow-path.ts';
import { formatIP, ipToBytes, parseIP } from '../pkg/ip/cidr.ts';

const fixtures = (d: string) => fileURLToPath(new URL(`testdata/${d}`, import.meta.url));
const { Packet } = dns2;

function load(dir: string): Backend {
  const { networks, problems } = loadRecordsDir(fixtures(dir));
  if (dir === 'records' && problems.length) throw new Error(JSON.stringify(problems));
  return new Backend(networks, 7);
}

function query(name: string, type: number, opts: { edns?: number; id?: number } = {}): Buffer {
  const p = new Packet();
  p.header.id = opts.id ?? 0x1234;
  p.header.rd = 1;
  p.questions.push({ name, type, class: Packet.CLASS.IN } as never);
  if (opts.edns) p.additionals.push(Packet.Resource.EDNS([], { udpPayloadSize: opts.edns }) as never);
  return p.toBuffer();
}

function ask(b: Backend, network: string, name: string, type: number, edns?: number) {
  const q = parseQuery(query(name, type, { edns })) as Query;
  if (!('key' in q)) throw new Error('query did not parse');
  const r = lookup(b.views.get(network)!, q.key, q.qtype, q.qclass);
  if (r.kind !== 'reply') return { kind: r.kind } as const;
  const resp = Packet.parse(encodeResponse(q, r, udpLimit(q)));
  return { kind: 'reply' as const, resp, rcode: resp.header.rcode, answers: resp.answers.map((a: any) => a.address ?? a.domain), authority: resp.authorities };
}

test('fixture records parse without problems, and round-trip through formatRecords', (t) => {
  const { networks, problems } = loadRecordsDir(fixtures('records'));
  t.deepEqual(problems, []);
  t.deepEqual(networks.map((n) => n.network), ['appnet', 'other']);
  for (const n of networks) t.deepEqual(parseRecords(formatRecords(n), n.network).records, n);
  t.deepEqual(networks[1]!.upstreams, []);
  t.deepEqual(networks[0]!.upstreams, ['192.0.2.53', '192.0.2.54:5353']);
});

test('a malformed line or file is reported and skipped, the rest still loads', (t) => {
  const { networks, problems } = loadRecordsDir(fixtures('broken'));
  t.deepEqual(networks.map((n) => n.network), ['good']);
  t.deepEqual(networks[0]!.containers.map((c) => c.containerId), ['g1', 'g3']);
  const msgs = problems.map((p) => `${p.file.split('/').pop()}:${p.line ?? ''}`);
  t.true(msgs.includes('good.records:4'));
  t.true(msgs.includes('good.records:5'));
  t.true(msgs.includes('good.records:6'));
  t.true(msgs.includes('nodomain.records:'));
  t.true(msgs.some((m) => m.startsWith('binary.records')));
  const b = new Backend(networks);
  t.deepEqual(ask(b, 'good', 'also-good.dns.cnikit', TYPE.A).answers, ['10.91.0.7']);
});

test('short and qualified names, case-insensitively, A and AAAA', (t) => {
  const b = load('records');
  t.deepEqual(ask(b, 'appnet', 'web', TYPE.A).answers, ['10.89.0.5']);
  t.deepEqual(ask(b, 'appnet', 'WEB.Dns.Cnikit', TYPE.A).answers, ['10.89.0.5']);
  t.deepEqual(ask(b, 'appnet', 'www.dns.cnikit.', TYPE.AAAA).answers, ['fd89::5']);
  t.deepEqual(ask(b, 'appnet', 'api.v1', TYPE.A).answers, ['10.89.0.7']);
  const r = ask(b, 'appnet', 'web', TYPE.A);
  t.is(r.rcode, RCODE.NOERROR);
  t.true(!!(r as any).resp.header.aa);
  t.is((r as any).resp.answers[0].name, 'web');
});

test('a shared alias returns every address, in rotating order', (t) => {
  const b = load('records');
  const seen = new Set<string>();
  for (let i = 0; i < 3; i++) {
    const a = ask(b, 'appnet', 'shared.dns.cnikit', TYPE.A).answers as string[];
    t.deepEqual([...a].sort(), ['10.89.0.5', '10.89.0.6', '10.89.0.7']);
    seen.add(a[0]!);
  }
  t.is(seen.size, 3);
});

test('networks are separate: names of one are unknown in the other', (t) => {
  const b = load('records');
  t.is(ask(b, 'other', 'web.other.test', TYPE.A).rcode, RCODE.NXDOMAIN);
  t.is(ask(b, 'other', 'web.dns.cnikit', TYPE.A).kind, 'forward');
  t.is(ask(b, 'other', 'web', TYPE.A).kind, 'forward');
  t.deepEqual(ask(b, 'other', 'cache', TYPE.A).answers, ['10.90.0.5']);
  t.true(clientAllowed(b.views.get('appnet')!, '10.89.0.200'));
  t.true(clientAllowed(b.views.get('appnet')!, 'fd89::77'));
  t.false(clientAllowed(b.views.get('appnet')!, '10.90.0.5'));
  t.false(clientAllowed(b.views.get('appnet')!, 'garbage'));
  t.is(b.viewFor('10.89.0.1', 53)?.name, 'appnet');
  t.is(b.viewFor('fd89::1', 53)?.name, 'appnet');
  t.is(b.viewFor('10.90.0.1', 53)?.name, 'other');
  t.is(b.viewOfClient('10.90.0.9')?.name, 'other');
});

test('unknown name in the domain: NXDOMAIN with the SOA; known name, other type: NODATA with the SOA', (t) => {
  const b = load('records');
  const nx = ask(b, 'appnet', 'nosuch.dns.cnikit', TYPE.A);
  t.is(nx.rcode, RCODE.NXDOMAIN);
  t.is((nx as any).authority.length, 1);
  t.is((nx as any).authority[0].type, TYPE.SOA);
  t.is((nx as any).authority[0].name, 'dns.cnikit');
  t.is((nx as any).authority[0].serial, 7);
  const nodata = ask(b, 'appnet', 'db', TYPE.AAAA);
  t.is(nodata.rcode, RCODE.NOERROR);
  t.deepEqual(nodata.answers, []);
  t.is((nodata as any).authority[0].type, TYPE.SOA);
  const mx = ask(b, 'appnet', 'web.dns.cnikit', TYPE.MX);
  t.is(mx.rcode, RCODE.NOERROR);
  t.deepEqual(mx.answers, []);
  const soa = ask(b, 'appnet', 'dns.cnikit', TYPE.SOA);
  t.is((soa as any).resp.answers[0].type, TYPE.SOA);
  t.is(ask(b, 'appnet', 'example.com', TYPE.A).kind, 'forward');
  t.is(ask(b, 'appnet', 'xdns.cnikit', TYPE.A).kind, 'forward');
});

test('PTR for container addresses; unknown address of the subnet is NXDOMAIN; others are forwarded', (t) => {
  const b = load('records');
  t.deepEqual(ask(b, 'appnet', '5.0.89.10.in-addr.arpa', TYPE.PTR).answers, ['web.dns.cnikit']);
  t.deepEqual(ask(b, 'appnet', reverseName(parseIP('fd89::5')), TYPE.PTR).answers, ['web.dns.cnikit']);
  t.is(ask(b, 'appnet', '99.0.89.10.in-addr.arpa', TYPE.PTR).rcode, RCODE.NXDOMAIN);
  t.is(ask(b, 'appnet', '5.0.90.10.in-addr.arpa', TYPE.PTR).kind, 'forward');
  t.is(ask(b, 'other', '5.0.89.10.in-addr.arpa', TYPE.PTR).kind, 'forward');
  t.deepEqual(addressOfReverse(nameKey('1.2.3.4.in-addr.arpa')), parseIP('4.3.2.1'));
  t.is(addressOfReverse(nameKey('1.2.300.4.in-addr.arpa')), undefined);
});

test('lookup costs one map access: 10,000 names build and answer', (t) => {
  const containers = Array.from({ length: 10_000 }, (_, i) => ({
    containerId: `c${i}`, ifName: 'eth0', addresses: [`10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/8`], gateways: ['10.0.0.1'], names: [`n${i}`],
  }));
  const b = new Backend([{ network: 'big', domain: 'dns.cnikit', port: 53, upstreams: [], containers }]);
  t.is(b.views.get('big')!.names.size, 20_000);
  t.deepEqual(ask(b, 'big', 'n9999.dns.cnikit', TYPE.A).answers, ['10.100.39.15']);
});

test('EDNS: OPT echoed; an answer larger than the client size is truncated with TC', (t) => {
  const containers = Array.from({ length: 60 }, (_, i) => ({
    containerId: `c${i}`, ifName: 'eth0', addresses: [`10.1.0.${i + 2}/24`], gateways: ['10.1.0.1'], names: [`x${i}`, 'many'],
  }));
  const b = new Backend([{ network: 'n', domain: 'd.test', port: 53, upstreams: [], containers }]);
  const plain = ask(b, 'n', 'many.d.test', TYPE.A);
  t.true((plain as any).resp.header.tc === 1);
  t.is(plain.answers?.length, 0);
  const big = ask(b, 'n', 'many.d.test', TYPE.A, 4096);
  t.falsy((big as any).resp.header.tc);
  t.is(big.answers?.length, 60);
  const opt = (big as any).resp.additionals.find((r: any) => r.type === TYPE.OPT);
  t.is(opt.class, 1232);
});

test('parser: responses and runts are dropped, bad questions FORMERR, other opcodes NOTIMP', (t) => {
  t.deepEqual(parseQuery(Buffer.alloc(5)), { action: 'drop' });
  const resp = query('web', TYPE.A);
  resp[2]! |= 0x80;
  t.deepEqual(parseQuery(resp), { action: 'drop' });
  const twoQ = query('web', TYPE.A);
  twoQ[5] = 2;
  t.like(parseQuery(twoQ), { action: 'reply', rcode: RCODE.FORMERR, id: 0x1234 });
  const cut = query('web.dns.cnikit', TYPE.A).subarray(0, 20);
  t.like(parseQuery(cut), { action: 'reply', rcode: RCODE.FORMERR });
  const notify = query('web', TYPE.A);
  notify[2] = (notify[2]! & 0x87) | (4 << 3);
  t.like(parseQuery(notify), { action: 'reply', rcode: RCODE.NOTIMP });
  const badOpt = query('web', TYPE.A, { edns: 1232 });
  badOpt.writeUInt16BE(900, badOpt.length - 2); // OPT rdlength beyond the end
  t.like(parseQuery(badOpt), { action: 'reply', rcode: RCODE.FORMERR });
});

test('a compressed question name goes to the dns2 slow path and gets the same answer', async (t) => {
  const b = load('records');
  // header + question "web" + pointer: qname = \x03web + pointer to a later "\x03dns\x06cnikit\x00"
  const m = Buffer.from([0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 3, 0x77, 0x65, 0x62, 0xc0, 22, 0, 1, 0, 1, 3, 0x64, 0x6e, 0x73, 6, 0x63, 0x6e, 0x69, 0x6b, 0x69, 0x74, 0]);
  t.deepEqual(parseQuery(m), { action: 'slow' });
  const q = (await loadSlowParser())(m)!;
  t.is(q.key, nameKey('web.dns.cnikit'));
  const r = lookup(b.views.get('appnet')!, q.key, q.qtype, q.qclass);
  t.is(r.kind, 'reply');
  const resp = Packet.parse(encodeResponse(q, r as never, 512));
  t.is(resp.header.id, 0xabcd);
  t.deepEqual(resp.answers.map((a: any) => a.address), ['10.89.0.5']);
});

test('keyInZone is label-aligned', (t) => {
  t.true(keyInZone(nameKey('a.dns.cnikit'), nameKey('dns.cnikit')));
  t.true(keyInZone(nameKey('dns.cnikit'), nameKey('dns.cnikit')));
  t.false(keyInZone(nameKey('adns.cnikit'), nameKey('dns.cnikit')));
  t.false(keyInZone(nameKey('cnikit'), nameKey('dns.cnikit')));
});

test('record files take exactly the addresses the core parser takes, and answer with their bytes', (t) => {
  const good = ['10.0.0.1', '0.0.0.0', '255.255.255.255', '::', '::1', 'fd89::5', '2001:db8::ff:1', '1:2:3:4:5:6:7:8', '::ffff:10.1.2.3', '1::', 'fe80::1:2:3:4:5:6'];
  const bad = ['10.0.0', '10.0.0.256', '01.2.3.4', '1:2:3:4:5:6:7:8:9', '1::2::3', 'fe80::1%eth0', ':::', '12345::', 'g::1', '', '1.2.3.4/24', '1:2:3:4:5:6:7::8:9'];
  for (const s of good) {
    const ip = parseIP(s);
    const r = parseRecords(`domain d.test\ncontainer c1 eth0 ${s}/${ip.family === 4 ? 24 : 64} ${s} web\n`, 'n');
    t.deepEqual(r.problems, [], s);
    const v = new Backend([r.records!]).views.get('n')!;
    t.deepEqual(v.listen, [{ address: formatIP(ip), port: 53 }], s);
    const e = v.names.get(nameKey('web'))!;
    t.deepEqual((ip.family === 4 ? e.a : e.aaaa)!.subarray(12), ipToBytes(ip), s);
  }
  for (const s of bad) {
    t.is(parseRecords(`domain d.test\ncontainer c1 eth0 10.0.0.5/24 ${s || '-'} web\n`, 'n').problems.length, 1, `gateway ${s}`);
    t.is(parseRecords(`domain d.test\ncontainer c1 eth0 ${s || '-'}/24 10.0.0.1 web\n`, 'n').problems.length, 1, `address ${s}`);
  }
  t.deepEqual(parseUpstream('[fd00::53]:5353'), { address: 'fd00::53', port: 5353 });
  t.deepEqual(parseUpstream('192.0.2.1:53'), { address: '192.0.2.1', port: 53 });
  t.is(parseUpstream('dns.example'), undefined);
  t.is(parseUpstream('192.0.2.1:99999'), undefined);
});

test('EDNS: an unknown EDNS version gets BADVERS; two OPT records are FORMERR', (t) => {
  const b = load('records');
  const m = query('web', TYPE.A, { edns: 1232 });
  m[m.length - 5] = 1; // OPT: name, type, class, ext-rcode, VERSION, flags, rdlength
  const q = parseQuery(m) as Query;
  t.is(q.edns?.version, 1);
  const r = lookup(b.views.get('appnet')!, q.key, q.qtype, q.qclass);
  const resp = Packet.parse(encodeResponse(q, r as never, udpLimit(q)));
  t.is(resp.header.rcode, 16, 'BADVERS (extended rcode 1 in the OPT, 0 in the header)');
  t.deepEqual(resp.answers, []);
  const two = query('web', TYPE.A, { edns: 1232 });
  const opt = two.subarray(two.length - 11);
  const doubled = Buffer.concat([two, opt]);
  doubled.writeUInt16BE(2, 10);
  t.like(parseQuery(doubled), { action: 'reply', rcode: RCODE.FORMERR });
});

test('a view updated in place after any run of edits equals the view built from scratch', (t) => {
  let seed = 20261202;
  const rnd = (n: number) => { seed = (seed * 1103515245 + 12345) >>> 0; return seed % n; };
  // Records of a name as a set: their order is the order they came in (answers rotate anyway).
  const rrs = (b: Buffer | undefined, size: number) => (b ? Array.from({ length: b.length / size }, (_, i) => b.subarray(i * size, (i + 1) * size).toString('hex')).sort() : []);
  const shape = (v: View) => ({
    names: [...v.names].map(([k, e]) => [k, rrs(e.a, 16), rrs(e.aaaa, 28)]).sort(),
    ptr: [...v.ptr].map(([k, b]) => [k, b.toString('hex')]).sort(),
    listen: v.listen.map((l) => `${l.address}|${l.port}`).sort(),
    subnets: v.subnets.map((c) => `${formatIP(c)}/${c.prefix}`).sort(),
    members: v.members.map((m) => m.ino).sort(),
    nameCount: v.nameCount,
  });
  let n = 0;
  const make = (): ContainerRecord => {
    const i = n++;
    const sub = rnd(2) ? '10.89' : '10.90';
    return {
      containerId: `c${i}`, ifName: 'eth0', addresses: [`${sub}.${i >> 8}.${i & 255}/16`, ...(rnd(3) ? [] : [`fd89::${(i + 2).toString(16)}/64`])],
      gateways: [`${sub}.0.1`], names: [`n${rnd(12)}`, ...(rnd(2) ? [`alias${rnd(5)}`] : [])], netns: { ino: 4026532000 + i, path: `/run/netns/c${i}` },
    };
  };
  const rec: NetworkRecords = { network: 'n', domain: 'dns.test', port: 53, upstreams: [], containers: [] };
  let view: View | undefined;
  for (let step = 0; step < 300; step++) {
    // Mostly a few edits (the in-place path, list-diff.ts), now and then many (the full pass).
    const list = [...rec.containers];
    for (let k = step % 25 === 24 ? 70 : rnd(3); k >= 0; k--) {
      if (list.length && rnd(5) < 2) list.splice(rnd(list.length), 1);
      else list.splice(rnd(list.length + 1), 0, make());
    }
    rec.containers = list;
    view = buildView('n', [rec], 1, view);
    t.deepEqual(shape(view), shape(buildView('n', [rec], 1)), `step ${step}`);
  }
});

/**
 * The cache of forwarded answers (no root): TTLs honoured and counted down, negative answers
 * kept for min(SOA TTL, MINIMUM) per RFC 2308 and not at all without a SOA, what must not be
 * cached (TC, SERVFAIL, TTL 0), the client's id and letter case in every hit, and the bounds in
 * entries and bytes (least recently used first). Responses are built and read with dns2.
 */
import test from 'ava';
import dns2 from 'dns2';
import { AnswerCache } from './cache.ts';
import { encodeQuery, nameKey } from './wire.ts';

const { Packet } = dns2;

function response(name: string, o: { ttl?: number; rcode?: number; soa?: { ttl: number; minimum: number }; tc?: boolean; answers?: number } = {}): Buffer {
  const p = new Packet();
  p.header.id = 0x4242;
  p.header.qr = 1;
  p.header.rd = 1;
  p.header.ra = 1;
  p.header.rcode = o.rcode ?? 0;
  if (o.tc) p.header.tc = 1;
  p.questions.push({ name, type: Packet.TYPE.A, class: Packet.CLASS.IN } as never);
  for (let i = 0; i < (o.answers ?? (o.rcode || o.soa ? 0 : 1)); i++) {
    p.answers.push({ name, type: Packet.TYPE.A, class: Packet.CLASS.IN, ttl: (o.ttl ?? 300) + i * 100, address: `203.0.113.${7 + i}` } as never);
  }
  if (o.soa) {
    p.authorities.push({ name: 'example.org', type: Packet.TYPE.SOA, class: Packet.CLASS.IN, ttl: o.soa.ttl, primary: 'ns.example.org', admin: 'hostmaster.example.org', serial: 1, refresh: 3600, retry: 600, expiration: 86400, minimum: o.soa.minimum } as never);
  }
  return p.toBuffer();
}

/** A cache on a clock the test moves. */
function cache(o: ConstructorParameters<typeof AnswerCache>[0] = {}) {
  let now = 1_000_000;
  const c = new AnswerCache({ ...o, now: () => now });
  return { c, tick: (s: number) => { now += s * 1000; } };
}

const SPACE = '192.0.2.53|53';
const SUB = 1;
const key = (name: string) => nameKey(name);
const ask = (name: string, id = 7) => encodeQuery(id, name, 1);
const read = (b: Buffer | undefined) => (b ? Packet.parse(b) : undefined);

test('an answer is kept for its smallest TTL, and a hit counts the TTLs down, with the client\'s id and letter case', (t) => {
  const { c, tick } = cache();
  c.put(SPACE, SUB, key('example.org'), response('example.org', { ttl: 60, answers: 2 }));
  tick(10);
  const hit = read(c.get(SPACE, SUB, key('example.org'), ask('ExAmple.ORG', 0x1234)))!;
  t.is(hit.header.id, 0x1234);
  t.is(hit.questions[0]!.name, 'ExAmple.ORG', 'the client\'s spelling (0x20)');
  t.deepEqual(hit.answers.map((a: any) => [a.address, a.ttl]), [['203.0.113.7', 50], ['203.0.113.8', 150]]);
  tick(49);
  t.is(read(c.get(SPACE, SUB, key('example.org'), ask('example.org')))!.answers[0]!.ttl, 1);
  tick(1);
  t.is(c.get(SPACE, SUB, key('example.org'), ask('example.org')), undefined, 'gone when the smallest TTL has run out');
  t.is(c.size, 0);
});

test('negative answers: NXDOMAIN and NODATA kept for min(SOA TTL, MINIMUM) (RFC 2308 §5), not at all without a SOA', (t) => {
  const { c, tick } = cache();
  c.put(SPACE, SUB, key('nx.example.org'), response('nx.example.org', { rcode: 3, soa: { ttl: 900, minimum: 30 } }));
  c.put(SPACE, SUB, key('nodata.example.org'), response('nodata.example.org', { soa: { ttl: 20, minimum: 600 } }));
  c.put(SPACE, SUB, key('bare.example.org'), response('bare.example.org', { rcode: 3 }));
  t.is(c.get(SPACE, SUB, key('bare.example.org'), ask('bare.example.org')), undefined, 'no SOA: not cached');
  tick(19);
  const nx = read(c.get(SPACE, SUB, key('nx.example.org'), ask('nx.example.org')))!;
  t.is(nx.header.rcode, 3);
  t.is(nx.authorities[0]!.ttl, 881, 'the SOA\'s TTL counts down too');
  t.is(read(c.get(SPACE, SUB, key('nodata.example.org'), ask('nodata.example.org')))!.answers.length, 0);
  tick(1);
  t.is(c.get(SPACE, SUB, key('nodata.example.org'), ask('nodata.example.org')), undefined, 'NODATA: the SOA TTL (20) was the smaller');
  tick(10);
  t.is(c.get(SPACE, SUB, key('nx.example.org'), ask('nx.example.org')), undefined, 'NXDOMAIN: MINIMUM (30) was the smaller');
});

test('not cached: truncated, SERVFAIL, REFUSED, TTL 0; TTLs are capped', (t) => {
  const { c, tick } = cache({ maxTtl: 100, maxNegativeTtl: 10 });
  c.put(SPACE, SUB, key('tc.example.org'), response('tc.example.org', { tc: true }));
  c.put(SPACE, SUB, key('sf.example.org'), response('sf.example.org', { rcode: 2 }));
  c.put(SPACE, SUB, key('rf.example.org'), response('rf.example.org', { rcode: 5 }));
  c.put(SPACE, SUB, key('zero.example.org'), response('zero.example.org', { ttl: 0 }));
  c.put(SPACE, SUB, key('junk.example.org'), Buffer.from('not dns at all'));
  t.is(c.size, 0);
  c.put(SPACE, SUB, key('long.example.org'), response('long.example.org', { ttl: 86400 }));
  c.put(SPACE, SUB, key('neg.example.org'), response('neg.example.org', { rcode: 3, soa: { ttl: 3600, minimum: 3600 } }));
  tick(10);
  t.is(c.get(SPACE, SUB, key('neg.example.org'), ask('neg.example.org')), undefined, 'negative capped at maxNegativeTtl');
  tick(89);
  t.truthy(c.get(SPACE, SUB, key('long.example.org'), ask('long.example.org')));
  tick(1);
  t.is(c.get(SPACE, SUB, key('long.example.org'), ask('long.example.org')), undefined, 'capped at maxTtl');
});

test('keys: another upstream list, type or flag set is another entry', (t) => {
  const { c } = cache();
  c.put(SPACE, SUB, key('example.org'), response('example.org'));
  t.truthy(c.get(SPACE, SUB, key('example.org'), ask('example.org')));
  t.is(c.get('198.51.100.1|53', SUB, key('example.org'), ask('example.org')), undefined);
  t.is(c.get(SPACE, SUB + 1, key('example.org'), ask('example.org')), undefined);
  t.like(c.stats, { hits: 1, misses: 2, stored: 1, entries: 1 });
});

test('bounded: beyond maxEntries or maxBytes the least recently used goes first', (t) => {
  const { c } = cache({ maxEntries: 3 });
  for (const n of ['a', 'b', 'c']) c.put(SPACE, SUB, key(`${n}.example.org`), response(`${n}.example.org`));
  t.truthy(c.get(SPACE, SUB, key('a.example.org'), ask('a.example.org')), 'a used: b is now the oldest');
  c.put(SPACE, SUB, key('d.example.org'), response('d.example.org'));
  t.is(c.size, 3);
  t.is(c.get(SPACE, SUB, key('b.example.org'), ask('b.example.org')), undefined, 'b evicted');
  for (const n of ['a', 'c', 'd']) t.truthy(c.get(SPACE, SUB, key(`${n}.example.org`), ask(`${n}.example.org`)), n);
  const one = response('x.example.org').length;
  const small = cache({ maxBytes: one * 16 * 2 });
  for (let i = 0; i < 100; i++) small.c.put(SPACE, SUB, key(`x${i}.example.org`), response(`x${i}.example.org`));
  t.true(small.c.size <= 32 && small.c.size >= 20, `bounded by bytes: ${small.c.size} entries`);
  t.truthy(small.c.get(SPACE, SUB, key('x99.example.org'), ask('x99.example.org')), 'the newest is kept');
  t.is(small.c.get(SPACE, SUB, key('x0.example.org'), ask('x0.example.org')), undefined, 'the oldest is not');
  c.put(SPACE, SUB, key('a.example.org'), response('a.example.org', { ttl: 5 }));
  t.is(c.size, 3, 'storing a name again replaces its entry');
});

/**
 * The header accessors and the query encoder of wire.ts, with dns2's general codec as the
 * oracle: what dns2 encodes, the accessors read back; what encodeQuery writes, dns2 decodes, and
 * the responder's own parser takes as a query.
 */
import test from 'ava';
import dns2 from 'dns2';
import {
  HEADER_SIZE, RCODE, TYPE, type Query, answerCount, encodeError, encodeQuery, encodeResponse, errorReply, idOf, isResponse,
  isTruncated, nameKey, opcodeOf, parseQuery, questionCount, rcodeOf, wantsRecursion,
} from './wire.ts';

const { Packet } = dns2;

test('the accessors read every header field dns2 writes', (t) => {
  for (const h of [
    { id: 0x1234, qr: 0, opcode: 0, tc: 0, rd: 1, rcode: 0 },
    { id: 0xffff, qr: 1, opcode: 2, tc: 1, rd: 0, rcode: 3 },
    { id: 0, qr: 1, opcode: 15, tc: 0, rd: 1, rcode: 15 },
  ]) {
    const p = new Packet();
    Object.assign(p.header, h);
    p.questions.push({ name: 'web.dns.cnikit', type: TYPE.A, class: Packet.CLASS.IN } as never);
    if (h.qr) p.answers.push({ name: 'web.dns.cnikit', type: TYPE.A, class: Packet.CLASS.IN, ttl: 0, address: '10.89.0.5' } as never);
    const m = p.toBuffer();
    t.is(idOf(m), h.id);
    t.is(isResponse(m), h.qr === 1);
    t.is(opcodeOf(m), h.opcode);
    t.is(isTruncated(m), h.tc === 1);
    t.is(wantsRecursion(m), h.rd === 1);
    t.is(rcodeOf(m), h.rcode);
    t.is(questionCount(m), 1);
    t.is(answerCount(m), h.qr);
  }
});

test('encodeQuery writes a standard query that dns2 decodes and our parser answers', (t) => {
  const m = encodeQuery(0xbeef, 'Web.dns.cnikit', TYPE.AAAA);
  const p = Packet.parse(m);
  t.is(p.header.id, 0xbeef);
  t.is(p.header.qr, 0);
  t.is(p.header.opcode, 0);
  t.is(p.header.rd, 1);
  t.deepEqual(p.questions.map((q: any) => [q.name, q.type, q.class]), [['Web.dns.cnikit', TYPE.AAAA, 1]]);
  t.deepEqual([p.answers.length, p.authorities.length, p.additionals.length], [0, 0, 0]);
  const q = parseQuery(m) as Query;
  t.like(q, { id: 0xbeef, opcode: 0, rd: true, key: nameKey('web.dns.cnikit'), qtype: TYPE.AAAA, qclass: 1, edns: undefined });
  const r = encodeResponse(q, { rcode: RCODE.NXDOMAIN, aa: true, answers: [], authority: [] }, 512);
  t.true(isResponse(r));
  t.is(idOf(r), 0xbeef);
  t.is(rcodeOf(r), RCODE.NXDOMAIN);
  t.false(isTruncated(r));
  t.true(wantsRecursion(r));
});

test('errorReply echoes id, opcode and RD; encodeError turns it into a header-only response', (t) => {
  const m = encodeQuery(0x0102, 'x', TYPE.A);
  m[2] = m[2]! | (4 << 3); // NOTIFY
  const f = errorReply(m, RCODE.NOTIMP);
  t.deepEqual(f, { action: 'reply', id: 0x0102, opcode: 4, rd: true, rcode: RCODE.NOTIMP });
  const e = encodeError(f);
  t.is(e.length, HEADER_SIZE);
  t.true(isResponse(e));
  t.is(opcodeOf(e), 4);
  t.is(rcodeOf(e), RCODE.NOTIMP);
  t.is(Packet.parse(e).header.rcode, RCODE.NOTIMP);
});

/**
 * The DNS wire format on the responder's hot path, written by hand (RFC 1035, RFC 6891).
 *
 * A query is parsed without building objects for its records: the header, the one question (its
 * name kept as a lowercase "wire key", the name's bytes as a latin1 string, which is what the
 * backend's maps are keyed by) and the OPT record if there is one. Answers are pre-encoded
 * resource records whose owner name is the pointer 0xC00C (the question name at offset 12), so a
 * response is the header, the question copied from the query, and those records concatenated.
 * This does in well under a microsecond what dns2's Packet.parse + toBuffer does in ~6 µs
 * (docs/toolchain.md §4). Queries the fast parser declines (a compressed question name) go through
 * dns2's general decoder (`parseQuerySlow` in slow-path.ts). The header's fields are read only
 * through the accessors below (`isResponse`, `rcodeOf`, ...), and `encodeQuery` is the one query
 * encoder (the plugin's CHECK probe sends it). No dns2 here: the plugin uses this module too.
 */
export const TYPE = { A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, MX: 15, TXT: 16, AAAA: 28, SRV: 33, OPT: 41, ANY: 255 } as const;
export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
export const CLASS_IN = 1;
/** The UDP payload size we advertise and accept at most (the DNS flag day 2020 value). */
export const OUR_UDP_SIZE = 1232;

/*
 * The header (RFC 1035 §4.1.1): 12 bytes, id, two bytes of flags, then the four section counts.
 *   byte 2: QR (0x80) | OPCODE (4 bits, 0x78) | AA (0x04) | TC (0x02) | RD (0x01)
 *   byte 3: RA (0x80) | Z, AD, CD (0x70) | RCODE (4 bits, 0x0f)
 * Every read of a header field goes through the accessors below; they need m.length >= 12.
 */
export const HEADER_SIZE = 12;
const QR = 0x80;
const AA = 0x04;
const TC = 0x02;
const RD = 0x01;
const RA = 0x80;
const CD = 0x10;
/** DNSSEC OK: the top bit of an OPT record's flags (RFC 3225). */
const DO = 0x80;

/** Returns the message id. */
export function idOf(m: Buffer): number {
  return (m[0]! << 8) | m[1]!;
}

/** Returns true for a response (QR set), false for a query. */
export function isResponse(m: Buffer): boolean {
  return (m[2]! & QR) !== 0;
}

/** Returns the opcode (0 = QUERY). */
export function opcodeOf(m: Buffer): number {
  return (m[2]! >> 3) & 0xf;
}

/** Returns true when the TC bit is set (the answer did not fit; ask again over TCP). */
export function isTruncated(m: Buffer): boolean {
  return (m[2]! & TC) !== 0;
}

/** Returns true when the RD bit (recursion desired) is set. */
export function wantsRecursion(m: Buffer): boolean {
  return (m[2]! & RD) !== 0;
}

/** Returns true when the CD bit (checking disabled, RFC 4035 §3.2.2) is set. */
export function checkingDisabled(m: Buffer): boolean {
  return (m[3]! & CD) !== 0;
}

/** Returns the header's 4-bit response code. */
export function rcodeOf(m: Buffer): number {
  return m[3]! & 0xf;
}

/** Returns the number of questions (QDCOUNT). */
export function questionCount(m: Buffer): number {
  return (m[4]! << 8) | m[5]!;
}

/** Returns the number of answer records (ANCOUNT). */
export function answerCount(m: Buffer): number {
  return (m[6]! << 8) | m[7]!;
}

/** The EDNS0 part of a query (from its OPT record). */
export interface Edns {
  udpSize: number;
  version: number;
  dnssecOk: boolean;
}

/** A parsed query. */
export interface Query {
  id: number;
  opcode: number;
  rd: boolean;
  /** Lowercase question name in wire form as a latin1 string (`\x03web\x03dns\x06cnikit\x00`). */
  key: string;
  qtype: number;
  qclass: number;
  /** The question section (name, type, class), as received; answers point at its name. */
  question: Buffer;
  edns: Edns | undefined;
}

/** What to do with a packet the parser could not turn into a Query. */
export type ParseFailure =
  | { action: 'drop' }
  | { action: 'slow' }
  | { action: 'reply'; id: number; opcode: number; rd: boolean; rcode: number };

const DROP: ParseFailure = { action: 'drop' };
const SLOW: ParseFailure = { action: 'slow' };

/** The header-only error reply to message `m` (its id, opcode and RD echoed), for encodeError. */
export function errorReply(m: Buffer, rcode: number): ParseFailure & { action: 'reply' } {
  return { action: 'reply', id: idOf(m), opcode: opcodeOf(m), rd: wantsRecursion(m), rcode };
}

/** Skips a (possibly compressed) name starting at p; returns the offset after it or -1. */
export function skipName(m: Buffer, p: number): number {
  for (let n = 0; n < 128; n++) {
    if (p >= m.length) return -1;
    const l = m[p]!;
    if (l === 0) return p + 1;
    if ((l & 0xc0) === 0xc0) return p + 2 <= m.length ? p + 2 : -1;
    if (l & 0xc0) return -1;
    p += 1 + l;
  }
  return -1;
}

/**
 * Parses a query on the fast path. Responses (QR set) and packets shorter than a header are
 * dropped; a malformed query gets FORMERR, an opcode other than QUERY gets NOTIMP.
 */
export function parseQuery(m: Buffer): Query | ParseFailure {
  const len = m.length;
  if (len < HEADER_SIZE || isResponse(m)) return DROP;
  const opcode = opcodeOf(m);
  if (opcode !== 0) return errorReply(m, RCODE.NOTIMP);
  if (questionCount(m) !== 1) return errorReply(m, RCODE.FORMERR);
  let p = HEADER_SIZE;
  for (;;) {
    if (p >= len) return errorReply(m, RCODE.FORMERR);
    const l = m[p]!;
    if (l === 0) { p++; break; }
    if (l & 0xc0) return (l & 0xc0) === 0xc0 ? SLOW : errorReply(m, RCODE.FORMERR);
    p += 1 + l;
    if (p - HEADER_SIZE > 255) return errorReply(m, RCODE.FORMERR);
  }
  if (p + 4 > len) return errorReply(m, RCODE.FORMERR);
  const key = m.toString('latin1', HEADER_SIZE, p).toLowerCase();
  const qtype = (m[p]! << 8) | m[p + 1]!;
  const qclass = (m[p + 2]! << 8) | m[p + 3]!;
  p += 4;
  const question = m.subarray(HEADER_SIZE, p);
  const edns = parseRest(m, p);
  if (edns === null) return errorReply(m, RCODE.FORMERR);
  return { id: idOf(m), opcode, rd: wantsRecursion(m), key, qtype, qclass, question, edns };
}

/** Walks answer/authority/additional records after the question; returns the OPT data, undefined, or null when malformed. */
function parseRest(m: Buffer, p: number): Edns | undefined | null {
  const an = m.readUInt16BE(6);
  const ns = m.readUInt16BE(8);
  const ar = m.readUInt16BE(10);
  if (an + ns + ar === 0) return undefined;
  let edns: Edns | undefined;
  for (let i = 0; i < an + ns + ar; i++) {
    const nameStart = p;
    p = skipName(m, p);
    if (p < 0 || p + 10 > m.length) return null;
    const type = m.readUInt16BE(p);
    const rdlen = m.readUInt16BE(p + 8);
    if (p + 10 + rdlen > m.length) return null;
    if (type === TYPE.OPT) {
      // RFC 6891 §6.1.1: one OPT at most, in the additional section, owned by the root.
      if (edns || i < an + ns || m[nameStart] !== 0) return null;
      edns = { udpSize: m.readUInt16BE(p + 2), version: m[p + 5]!, dnssecOk: (m[p + 6]! & DO) !== 0 };
    }
    p += 10 + rdlen;
  }
  return edns;
}

/** Encodes a dotted name (`web.dns.cnikit`) in wire form, uncompressed. */
export function encodeName(name: string): Buffer {
  const labels = name.replace(/\.$/, '').split('.').filter((l) => l !== '');
  const out = Buffer.alloc(labels.reduce((n, l) => n + 1 + Buffer.byteLength(l), 1));
  let p = 0;
  for (const l of labels) {
    p = out.writeUInt8(Buffer.byteLength(l), p);
    p += out.write(l, p, 'latin1');
  }
  out[p] = 0;
  return out;
}

/** The backend's map key of a dotted name: its lowercase wire form as a latin1 string. */
export function nameKey(name: string): string {
  const parts: string[] = [];
  for (const l of name.toLowerCase().split('.')) if (l !== '') parts.push(String.fromCharCode(l.length), l);
  parts.push('\x00');
  return parts.join(''); // a flat string: `+=` would keep a rope of small strings alive per key
}

/** Turns a wire key back into a dotted name (for logs and the slow path). */
export function keyToName(key: string): string {
  const labels: string[] = [];
  let p = 0;
  while (p < key.length) {
    const l = key.charCodeAt(p);
    if (l === 0) break;
    labels.push(key.slice(p + 1, p + 1 + l));
    p += 1 + l;
  }
  return labels.join('.');
}

/** The labels of a wire key, first to last. */
export function keyLabels(key: string): string[] {
  return keyToName(key).split('.').filter((l) => l !== '');
}

/** True when wire key `key` is `zone` or a name below it (label-aligned). */
export function keyInZone(key: string, zone: string): boolean {
  let p = 0;
  for (let n = 0; n < 128; n++) {
    const rest = key.length - p;
    if (rest === zone.length) return key.endsWith(zone);
    if (rest < zone.length) return false;
    p += key.charCodeAt(p) + 1;
  }
  return false;
}

/** A resource record with owner 0xC00C (the question name): `type class ttl rdlength rdata`. */
export function answerRecord(type: number, ttl: number, rdata: Buffer): Buffer {
  const out = Buffer.allocUnsafe(12 + rdata.length); // every byte is written below; pooled = small
  out.writeUInt16BE(0xc00c, 0);
  out.writeUInt16BE(type, 2);
  out.writeUInt16BE(CLASS_IN, 4);
  out.writeUInt32BE(ttl, 6);
  out.writeUInt16BE(rdata.length, 10);
  rdata.copy(out, 12);
  return out;
}

/** A resource record with an explicit owner name (authority SOA). */
export function namedRecord(owner: Buffer, type: number, ttl: number, rdata: Buffer): Buffer {
  const out = Buffer.alloc(owner.length + 10 + rdata.length);
  owner.copy(out, 0);
  let p = owner.length;
  p = out.writeUInt16BE(type, p);
  p = out.writeUInt16BE(CLASS_IN, p);
  p = out.writeUInt32BE(ttl, p);
  p = out.writeUInt16BE(rdata.length, p);
  rdata.copy(out, p);
  return out;
}

/** SOA rdata: mname, rname, serial, refresh, retry, expire, minimum (RFC 1035 §3.3.13). */
export function soaRdata(mname: string, rname: string, serial: number, minimum: number): Buffer {
  const m = encodeName(mname);
  const r = encodeName(rname);
  const out = Buffer.alloc(m.length + r.length + 20);
  m.copy(out, 0);
  r.copy(out, m.length);
  let p = m.length + r.length;
  p = out.writeUInt32BE(serial >>> 0, p);
  p = out.writeUInt32BE(3600, p);
  p = out.writeUInt32BE(600, p);
  p = out.writeUInt32BE(86400, p);
  out.writeUInt32BE(minimum, p);
  return out;
}

/** What goes into a response besides the echoed question. */
export interface Reply {
  rcode: number;
  /** Authoritative answer (names in our domains). */
  aa: boolean;
  /** Encoded answer records; a Buffer may hold several records back to back (see ancount). */
  answers: readonly Buffer[];
  /** Number of records in `answers` when a Buffer holds more than one (default: answers.length). */
  ancount?: number;
  authority: readonly Buffer[];
}

/** Writes the OPT record of a response (RFC 6891): our UDP size, extended rcode, version 0, DO echoed. */
function writeOpt(out: Buffer, p: number, extRcode: number, dnssecOk: boolean): number {
  out[p] = 0;
  out.writeUInt16BE(TYPE.OPT, p + 1);
  out.writeUInt16BE(OUR_UDP_SIZE, p + 3);
  out[p + 5] = extRcode;
  out[p + 6] = 0;
  out[p + 7] = dnssecOk ? DO : 0;
  out[p + 8] = 0;
  out.writeUInt16BE(0, p + 9);
  return p + 11;
}

/** The largest response a client accepts over UDP: 512, or its EDNS size (capped at ours). */
export function udpLimit(q: Query): number {
  if (!q.edns) return 512;
  return Math.max(512, Math.min(q.edns.udpSize, OUR_UDP_SIZE));
}

/**
 * Encodes the response to `q`. When it would exceed `maxSize` (the client's UDP limit; 65535
 * over TCP) the answer and authority records are left out and the TC bit is set, so the client
 * retries over TCP (RFC 1035 §4.2.1, RFC 6891 §7). With `into` (large enough), the response is
 * written there and a view of it returned: no buffer is allocated, and the caller must be done
 * with the view before it encodes into `into` again.
 */
export function encodeResponse(q: Query, r: Reply, maxSize: number, into?: Buffer): Buffer {
  const badVers = q.edns !== undefined && q.edns.version !== 0;
  const rcode = badVers ? 0 : r.rcode; // BADVERS = 16: low bits 0, high bits 1 in the OPT
  let size = HEADER_SIZE + q.question.length + (q.edns ? 11 : 0);
  let na = badVers ? 0 : r.answers.length;
  let ns = badVers ? 0 : r.authority.length;
  let an = badVers ? 0 : r.ancount ?? na;
  for (let i = 0; i < na; i++) size += r.answers[i]!.length;
  for (let i = 0; i < ns; i++) size += r.authority[i]!.length;
  let tc = false;
  if (size > maxSize) {
    tc = true;
    for (let i = 0; i < na; i++) size -= r.answers[i]!.length;
    for (let i = 0; i < ns; i++) size -= r.authority[i]!.length;
    na = 0;
    an = 0;
    ns = 0;
  }
  const out = into && into.length >= size ? into.subarray(0, size) : Buffer.allocUnsafe(size);
  out[0] = q.id >> 8;
  out[1] = q.id & 0xff;
  out[2] = QR | (q.opcode << 3) | (r.aa ? AA : 0) | (tc ? TC : 0) | (q.rd ? RD : 0);
  out[3] = RA | (rcode & 0xf);
  out[4] = 0;
  out[5] = 1;
  out.writeUInt16BE(an, 6);
  out.writeUInt16BE(ns, 8);
  out.writeUInt16BE(q.edns ? 1 : 0, 10);
  let p = HEADER_SIZE + q.question.copy(out, HEADER_SIZE);
  for (let i = 0; i < na; i++) p += r.answers[i]!.copy(out, p);
  for (let i = 0; i < ns; i++) p += r.authority[i]!.copy(out, p);
  if (q.edns) writeOpt(out, p, badVers ? 1 : 0, q.edns.dnssecOk);
  return out;
}

/** A header-only error response (no question) for a query that could not be parsed. */
export function encodeError(f: { id: number; opcode: number; rd: boolean; rcode: number }): Buffer {
  const out = Buffer.alloc(HEADER_SIZE);
  out.writeUInt16BE(f.id, 0);
  out[2] = QR | (f.opcode << 3) | (f.rd ? RD : 0);
  out[3] = RA | (f.rcode & 0xf);
  return out;
}

/**
 * Encodes a standard query for `name` (one question, class IN, RD set, no EDNS): what a client
 * sends, e.g. the plugin's CHECK probe.
 */
export function encodeQuery(id: number, name: string, qtype: number): Buffer {
  const qname = encodeName(name);
  const out = Buffer.alloc(HEADER_SIZE + qname.length + 4);
  out.writeUInt16BE(id, 0);
  out[2] = RD;
  out.writeUInt16BE(1, 4);
  let p = HEADER_SIZE + qname.copy(out, HEADER_SIZE);
  p = out.writeUInt16BE(qtype, p);
  out.writeUInt16BE(CLASS_IN, p);
  return out;
}

/** Sets `id` in a copy-free way on a message (forwarding rewrites IDs). */
export function setId(m: Buffer, id: number): void {
  m[0] = id >> 8;
  m[1] = id & 0xff;
}

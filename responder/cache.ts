/**
 * The cache of forwarded answers: a repeated external name is answered locally, as dnsmasq
 * does (aardvark-dns and Docker's embedded resolver ask upstream every time).
 *
 * An entry is the upstream's response as it came, kept until its TTL runs out: for an answer,
 * the smallest TTL of its answer and authority records; for a negative answer (NXDOMAIN, or
 * NOERROR with no answer: NODATA) the SOA's TTL capped by its MINIMUM field, as RFC 2308 §5
 * says, and nothing at all without a SOA (§5: "SHOULD NOT be cached"). Both are capped
 * (`maxTtl`, `maxNegativeTtl`), a TTL of 0 is not cached, and neither are truncated answers,
 * SERVFAIL, REFUSED or anything that does not parse. A hit is a copy of the stored response
 * with the client's id and question (its letter case: 0x20 randomization) and every record's
 * TTL lowered by the seconds the entry has been stored, so clients see TTLs count down.
 *
 * Size is bounded in entries and bytes; the least recently used entry goes first. Keys are
 * made by the caller and must hold whatever changes the answer: the upstream list, the
 * question, and the query's EDNS and DO/CD flags (server.ts `cacheKey`).
 */
import { HEADER_SIZE, TYPE, answerCount, isTruncated, questionCount, rcodeOf, setId } from './wire.ts';

export interface CacheOptions {
  /** Entries at most (default 10,000). */
  maxEntries?: number;
  /** Bytes of stored responses at most (default 8 MB). */
  maxBytes?: number;
  /** Longest time an answer is kept, in seconds (default one day). */
  maxTtl?: number;
  /** Longest time a negative answer is kept, in seconds (default three hours, RFC 2308 §5). */
  maxNegativeTtl?: number;
  /** Milliseconds on a monotonic clock (default performance.now). */
  now?: () => number;
}

interface Entry {
  msg: Buffer;
  /** Stored at (ms, the cache's clock). */
  at: number;
  expires: number;
  /** Offsets of each record's TTL, and the TTL there when stored. */
  ttlAt: Int32Array;
  ttls: Uint32Array;
  /** End of the question section (the client's question bytes go before it). */
  qEnd: number;
}

/** Counters, for the control socket. */
export interface CacheStats {
  entries: number;
  hits: number;
  misses: number;
  stored: number;
}

const NOERROR = 0;
const NXDOMAIN = 3;

/** Skips a possibly compressed name at p; returns the offset after it, or -1. */
function skipName(m: Buffer, p: number): number {
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

/** Where a response's records are, and how long it may be cached (seconds; 0 = not at all). */
function analyse(m: Buffer, maxTtl: number, maxNeg: number): { ttlAt: number[]; ttls: number[]; qEnd: number; ttl: number } | undefined {
  if (m.length < HEADER_SIZE || questionCount(m) !== 1 || isTruncated(m)) return undefined;
  const rcode = rcodeOf(m);
  if (rcode !== NOERROR && rcode !== NXDOMAIN) return undefined;
  let p = skipName(m, HEADER_SIZE);
  if (p < 0 || p + 4 > m.length) return undefined;
  p += 4;
  const qEnd = p;
  const an = answerCount(m);
  const total = an + m.readUInt16BE(8) + m.readUInt16BE(10);
  const ttlAt: number[] = [];
  const ttls: number[] = [];
  let minTtl = Infinity;
  let soaTtl: number | undefined;
  for (let i = 0; i < total; i++) {
    p = skipName(m, p);
    if (p < 0 || p + 10 > m.length) return undefined;
    const type = m.readUInt16BE(p);
    const ttl = m.readUInt32BE(p + 4);
    const rdlen = m.readUInt16BE(p + 8);
    const rdata = p + 10;
    if (rdata + rdlen > m.length) return undefined;
    if (type !== TYPE.OPT) {
      ttlAt.push(p + 4);
      ttls.push(ttl);
      const inAdditional = i >= total - m.readUInt16BE(10);
      if (!inAdditional) minTtl = Math.min(minTtl, ttl);
      if (type === TYPE.SOA && i >= an && !inAdditional && rdlen >= 20 && soaTtl === undefined) {
        soaTtl = Math.min(ttl, m.readUInt32BE(rdata + rdlen - 4)); // RFC 2308 §5: min(SOA TTL, SOA MINIMUM)
      }
    }
    p = rdata + rdlen;
  }
  let ttl: number;
  if (rcode === NOERROR && an > 0) ttl = Math.min(minTtl, maxTtl);
  else ttl = soaTtl === undefined ? 0 : Math.min(soaTtl, maxNeg);
  return { ttlAt, ttls, qEnd, ttl };
}

/** A bounded, TTL-honouring cache of upstream responses. */
export class AnswerCache {
  private readonly entries = new Map<string, Entry>();
  private bytes = 0;
  private readonly maxEntries: number;
  private readonly maxBytes: number;
  private readonly maxTtl: number;
  private readonly maxNeg: number;
  private readonly now: () => number;
  readonly stats: CacheStats = { entries: 0, hits: 0, misses: 0, stored: 0 };

  constructor(o: CacheOptions = {}) {
    this.maxEntries = o.maxEntries ?? 10_000;
    this.maxBytes = o.maxBytes ?? 8 << 20;
    this.maxTtl = o.maxTtl ?? 86_400;
    this.maxNeg = o.maxNegativeTtl ?? 10_800;
    this.now = o.now ?? (() => performance.now());
  }

  /** Number of entries held. */
  get size(): number {
    return this.entries.size;
  }

  /**
   * Returns the cached response to `query` (the client's message) under `key`: a fresh buffer
   * with the client's id and question and TTLs counted down; undefined on a miss.
   */
  get(key: string, query: Buffer): Buffer | undefined {
    const e = this.entries.get(key);
    if (!e) { this.stats.misses++; return undefined; }
    const now = this.now();
    if (now >= e.expires) {
      this.drop(key, e);
      this.stats.misses++;
      return undefined;
    }
    // Most recently used last: Map keeps insertion order.
    this.entries.delete(key);
    this.entries.set(key, e);
    const out = Buffer.allocUnsafe(e.msg.length);
    e.msg.copy(out);
    setId(out, (query[0]! << 8) | query[1]!);
    // The client's own spelling of the name (same length: same name, other letter case).
    if (query.length >= e.qEnd) query.copy(out, HEADER_SIZE, HEADER_SIZE, e.qEnd);
    const age = Math.floor((now - e.at) / 1000);
    if (age > 0) for (let i = 0; i < e.ttlAt.length; i++) out.writeUInt32BE(Math.max(0, e.ttls[i]! - age), e.ttlAt[i]!);
    this.stats.hits++;
    return out;
  }

  /** Stores upstream response `resp` under `key` when it may be cached. */
  put(key: string, resp: Buffer): void {
    const a = analyse(resp, this.maxTtl, this.maxNeg);
    if (!a || a.ttl <= 0 || resp.length > this.maxBytes / 16) return;
    const old = this.entries.get(key);
    if (old) this.drop(key, old);
    const now = this.now();
    const e: Entry = { msg: resp, at: now, expires: now + a.ttl * 1000, ttlAt: Int32Array.from(a.ttlAt), ttls: Uint32Array.from(a.ttls), qEnd: a.qEnd };
    this.entries.set(key, e);
    this.bytes += resp.length;
    this.stats.stored++;
    while (this.entries.size > this.maxEntries || this.bytes > this.maxBytes) {
      const [k, oldest] = this.entries.entries().next().value as [string, Entry];
      this.drop(k, oldest);
    }
    this.stats.entries = this.entries.size;
  }

  /** Forgets everything (a reload that changed the upstreams keeps it: keys carry them). */
  clear(): void {
    this.entries.clear();
    this.bytes = 0;
    this.stats.entries = 0;
  }

  private drop(key: string, e: Entry): void {
    this.entries.delete(key);
    this.bytes -= e.msg.length;
    this.stats.entries = this.entries.size;
  }
}

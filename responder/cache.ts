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
 * made by the caller and must hold whatever changes the answer: the upstream list and the
 * query's EDNS and DO/CD/RD flags (the `space`), its type and class, and the name.
 */
import { HEADER_SIZE, TYPE, answerCount, isTruncated, questionCount, rcodeOf, skipName } from './wire.ts';
import { monotonicMs } from '../pkg/clock.ts';

export interface CacheOptions {
  /** Entries at most (default 10,000). */
  maxEntries?: number;
  /** Bytes of stored responses at most (default 8 MB). */
  maxBytes?: number;
  /** Longest time an answer is kept, in seconds (default one day). */
  maxTtl?: number;
  /** Longest time a negative answer is kept, in seconds (default three hours, RFC 2308 §5). */
  maxNegativeTtl?: number;
  /** Milliseconds on a monotonic clock (default monotonicMs, pkg/clock.ts). */
  now?: () => number;
}

interface Entry {
  /** The response as stored, its TTLs lowered to `age` seconds (copied out on a hit). */
  msg: Buffer;
  /** Stored at (ms, the cache's clock). */
  at: number;
  expires: number;
  /** The age (seconds) the TTLs in msg are lowered by now. */
  age: number;
  /** Offsets of each record's TTL, and the TTL there when stored. */
  ttlAt: Int32Array;
  ttls: Uint32Array;
  /** End of the question section (the client's question bytes go before it). */
  qEnd: number;
  /** Where it is kept, to remove it on eviction. */
  map: Map<string, Entry>;
  name: string;
  /** The LRU list: least recently used at the head. */
  prev: Entry | undefined;
  next: Entry | undefined;
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

/**
 * A bounded, TTL-honouring cache of upstream responses. Entries are found by three keys: the
 * `space` (what upstreams, and the query's flags), the question's type and class (`sub`), and
 * the name's wire key, which the lookup before it has hashed already.
 */
export class AnswerCache {
  private readonly spaces = new Map<string, Map<number, Map<string, Entry>>>();
  private head: Entry | undefined;
  private tail: Entry | undefined;
  private count = 0;
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
    this.now = o.now ?? monotonicMs;
  }

  /** Number of entries held. */
  get size(): number {
    return this.count;
  }

  private mapOf(space: string, sub: number, create: boolean): Map<string, Entry> | undefined {
    let bySub = this.spaces.get(space);
    if (!bySub) {
      if (!create) return undefined;
      this.spaces.set(space, bySub = new Map());
    }
    let m = bySub.get(sub);
    if (!m && create) bySub.set(sub, m = new Map());
    return m;
  }

  /**
   * Returns the cached response to `query` (the client's message) for (`space`, `sub`, `name`):
   * with the client's id and question and TTLs counted down, in a fresh buffer or, with `into`
   * (large enough), in a view of it; undefined on a miss.
   */
  get(space: string, sub: number, name: string, query: Buffer, into?: Buffer): Buffer | undefined {
    const e = this.mapOf(space, sub, false)?.get(name);
    if (!e) { this.stats.misses++; return undefined; }
    const now = this.now();
    if (now >= e.expires) {
      this.drop(e);
      this.stats.misses++;
      return undefined;
    }
    if (e !== this.tail) { this.unlink(e); this.append(e); }
    const age = Math.floor((now - e.at) / 1000);
    if (age !== e.age) {
      e.age = age;
      for (let i = 0; i < e.ttlAt.length; i++) e.msg.writeUInt32BE(Math.max(0, e.ttls[i]! - age), e.ttlAt[i]!);
    }
    const out = into && into.length >= e.msg.length ? into.subarray(0, e.msg.length) : Buffer.allocUnsafe(e.msg.length);
    out.set(e.msg);
    out[0] = query[0]!;
    out[1] = query[1]!;
    // The client's own spelling of the name (same length: same name, other letter case).
    if (query.length >= e.qEnd) for (let i = HEADER_SIZE; i < e.qEnd; i++) out[i] = query[i]!;
    this.stats.hits++;
    return out;
  }

  /** Stores upstream response `resp` for (`space`, `sub`, `name`) when it may be cached. */
  put(space: string, sub: number, name: string, resp: Buffer): void {
    const a = analyse(resp, this.maxTtl, this.maxNeg);
    if (!a || a.ttl <= 0 || resp.length > this.maxBytes / 16) return;
    const map = this.mapOf(space, sub, true)!;
    const old = map.get(name);
    if (old) this.drop(old);
    const now = this.now();
    const e: Entry = {
      msg: Buffer.from(resp), at: now, expires: now + a.ttl * 1000, age: 0, ttlAt: Int32Array.from(a.ttlAt), ttls: Uint32Array.from(a.ttls),
      qEnd: a.qEnd, map, name, prev: undefined, next: undefined,
    };
    map.set(name, e);
    this.append(e);
    this.count++;
    this.bytes += resp.length;
    this.stats.stored++;
    while ((this.count > this.maxEntries || this.bytes > this.maxBytes) && this.head) this.drop(this.head);
    this.stats.entries = this.count;
  }

  /** Forgets everything. */
  clear(): void {
    this.spaces.clear();
    this.head = this.tail = undefined;
    this.count = 0;
    this.bytes = 0;
    this.stats.entries = 0;
  }

  private append(e: Entry): void {
    e.prev = this.tail;
    e.next = undefined;
    if (this.tail) this.tail.next = e;
    else this.head = e;
    this.tail = e;
  }

  private unlink(e: Entry): void {
    if (e.prev) e.prev.next = e.next;
    else this.head = e.next;
    if (e.next) e.next.prev = e.prev;
    else this.tail = e.prev;
    e.prev = e.next = undefined;
  }

  private drop(e: Entry): void {
    this.unlink(e);
    if (e.map.get(e.name) === e) e.map.delete(e.name);
    this.count--;
    this.bytes -= e.msg.length;
    this.stats.entries = this.count;
  }
}

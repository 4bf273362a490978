/**
 * host-local's allocation logic (docs/cni-notes.md §4.3), pure over a `Store`: which address an ADD gets,
 * which leases a DEL, CHECK or GC concerns, and whether a range set is exhausted (STATUS).
 *
 * Allocation follows the reference so that both implementations walk a pool the same way: for
 * range set N, start after the address in `last_reserved_ip.N` when it lies in the set (else at
 * the first range's rangeStart), walk upward, wrap from a range's rangeEnd to the next range's
 * rangeStart (cyclically), skip each range's gateway, and take the first address whose lease can
 * be created exclusively. Released addresses are reused only when the walk comes round again.
 *
 * Every function here expects the caller to hold the store's lock (`store.withLock`), so that a
 * whole ADD (all range sets) or DEL is one critical section. What this module does not do: parse
 * config (config.ts) or know the file layout (disk-store.ts).
 */
import { CniCode, CniError } from '../../pkg/cni/errors.ts';
import type { Attachment } from '../../pkg/cni/skel.ts';
import { type IP, formatIP } from '../../pkg/ip/cidr.ts';
import { type Range, type RangeSet, formatRangeSet, rangeFor } from './config.ts';
import type { Lease, Store } from './store.ts';

/** One address reserved by `allocate`, with the range (subnet, gateway) it came from. */
export interface Allocation {
  ip: IP;
  setIndex: number;
  range: Range;
}

const key = (ip: IP): string => `${ip.family}/${ip.value}`;

/** True when the lease belongs to the attachment; a legacy lease (no ifname) belongs to every ifname of its container. */
function ownedBy(l: Lease, containerId: string, ifName: string): boolean {
  return l.containerId === containerId.trim() && (l.ifName === undefined || l.ifName === ifName);
}

/**
 * Yields the candidate addresses of `set` in the reference's order, starting after `last` when
 * it lies in the set; ends after one full cycle. Gateways are skipped.
 */
export function* walkRangeSet(set: RangeSet, last: IP | undefined): Generator<{ ip: IP; range: Range }> {
  let idx = 0;
  let cur: bigint | undefined;
  let start: bigint | undefined;
  if (last) {
    const i = set.findIndex((r) => rangeFor([r], last) !== undefined);
    if (i >= 0) {
      idx = i;
      cur = last.value; // the first step moves past it: the walk starts at last + 1
    }
  }
  if (cur === undefined) start = set[0]!.rangeStart.value;
  const family = set[0]!.subnet.family;
  // The cycle visits each address once; the bound only guards against a broken invariant.
  let budget = set.reduce((n, r) => n + (r.rangeEnd.value - r.rangeStart.value + 1n), 0n) + BigInt(set.length) + 1n;
  let first = cur === undefined;
  while (budget-- > 0n) {
    let r = set[idx]!;
    if (first) {
      first = false;
      cur = r.rangeStart.value;
      start = cur;
    } else {
      if (cur === r.rangeEnd.value) {
        idx = (idx + 1) % set.length;
        r = set[idx]!;
        cur = r.rangeStart.value;
      } else {
        cur = cur! + 1n;
      }
      if (start === undefined) start = cur;
      else if (cur === start) return;
    }
    if (cur === r.gateway.value) continue;
    yield { ip: { family, value: cur! }, range: r };
  }
}

function reserveNext(store: Store, leases: Lease[], set: RangeSet, setIndex: number, containerId: string, ifName: string): Allocation {
  for (const l of leases) {
    // "duplicate allocation is not allowed" (SPEC): one address per set per attachment.
    if (ownedBy(l, containerId, ifName) && rangeFor(set, l.ip)) {
      throw new CniError(CniCode.Internal, `failed to allocate for range ${setIndex}: ${formatIP(l.ip)} has been allocated to ${containerId}, duplicate allocation is not allowed`);
    }
  }
  const taken = new Set(leases.map((l) => key(l.ip)));
  for (const { ip, range } of walkRangeSet(set, store.lastReserved(setIndex))) {
    // A lease we have already seen is skipped without a syscall; the exclusive create still
    // decides for everything else.
    if (taken.has(key(ip))) continue;
    if (store.reserve(ip, containerId, ifName, setIndex)) return { ip, setIndex, range };
  }
  throw new CniError(CniCode.Internal, `failed to allocate for range ${setIndex}: no IP addresses available in range set: ${formatRangeSet(set)}`);
}

function reserveRequested(store: Store, set: RangeSet, setIndex: number, ip: IP, containerId: string, ifName: string): Allocation {
  const range = rangeFor(set, ip);
  if (!range) throw new CniError(CniCode.Internal, `failed to allocate for range ${setIndex}: requested IP address ${formatIP(ip)} is not in range set ${formatRangeSet(set)}`);
  if (!store.reserve(ip, containerId, ifName, setIndex)) {
    throw new CniError(CniCode.Internal, `failed to allocate for range ${setIndex}: requested IP address ${formatIP(ip)} is not available in range set ${formatRangeSet(set)}`);
  }
  return { ip, setIndex, range };
}

/**
 * Reserves one address in each range set for the attachment: `requested[i]` in set i when given
 * (see config.placeRequested), else the next free one. On any failure releases exactly the
 * leases this call created, then throws (code 999, naming the range set, as the reference).
 * Caller holds the lock.
 */
export function allocate(store: Store, sets: RangeSet[], containerId: string, ifName: string, requested: (IP | undefined)[] = []): Allocation[] {
  const done: Allocation[] = [];
  try {
    // Which addresses are taken is always current (the names are listed); an owner remembered
    // from an earlier call only decides a duplicate after the disk confirms it.
    let leases = store.leases({ reuse: true });
    if (leases.some((l) => ownedBy(l, containerId, ifName))) leases = store.leases();
    for (let i = 0; i < sets.length; i++) {
      const want = requested[i];
      const a = want
        ? reserveRequested(store, sets[i]!, i, want, containerId, ifName)
        : reserveNext(store, leases, sets[i]!, i, containerId, ifName);
      done.push(a);
    }
    return done;
  } catch (err) {
    for (const a of done) {
      try {
        store.release(a.ip);
      } catch { /* the original error matters more; a leftover lease is found by DEL or GC */ }
    }
    throw err;
  }
}

/**
 * Returns the leases of an attachment the way the reference matches them: leases written as
 * `<cid>\r\n<ifname>`, or, only when there is none, legacy `<cid>` leases.
 */
export function findAttachment(store: Store, containerId: string, ifName: string): IP[] {
  const leases = store.leases();
  const cid = containerId.trim();
  const exact = leases.filter((l) => l.containerId === cid && l.ifName === ifName);
  const found = exact.length ? exact : leases.filter((l) => l.containerId === cid && l.ifName === undefined);
  return found.map((l) => l.ip);
}

/** Releases the attachment's leases (see findAttachment) and returns them; none is fine. Caller holds the lock. */
export function releaseAttachment(store: Store, containerId: string, ifName: string): IP[] {
  const ips = findAttachment(store, containerId, ifName);
  for (const ip of ips) store.release(ip);
  return ips;
}

/**
 * Releases every lease whose attachment is not in `valid` (a legacy lease stays while any
 * attachment of its container is valid). Keeps going past failures and throws them together at
 * the end. Returns the released addresses. Caller holds the lock.
 */
export function collectGarbage(store: Store, valid: Attachment[]): IP[] {
  const released: IP[] = [];
  const errors: string[] = [];
  for (const l of store.leases()) {
    const keep = valid.some((a) => ownedBy(l, a.containerID, a.ifname) || (l.ifName === undefined && a.containerID.trim() === l.containerId));
    if (keep) continue;
    try {
      store.release(l.ip);
      released.push(l.ip);
    } catch (err) {
      errors.push(`${formatIP(l.ip)}: ${(err as Error).message}`);
    }
  }
  if (errors.length) throw new CniError(CniCode.IoFailure, 'failed to release some leases', errors.join('; '));
  return released;
}

/** Counts the addresses an ADD could hand out in `set`: every address of its ranges but gateways. */
export function capacity(set: RangeSet): bigint {
  let n = 0n;
  for (const r of set) {
    n += r.rangeEnd.value - r.rangeStart.value + 1n;
    if (r.gateway.family === r.rangeStart.family && r.gateway.value >= r.rangeStart.value && r.gateway.value <= r.rangeEnd.value) n--;
  }
  return n;
}

/** Returns the indexes of the range sets in which no address is free (STATUS). Caller holds the lock. */
export function exhaustedSets(store: Store, sets: RangeSet[]): number[] {
  const leased = store.leases().map((l) => l.ip);
  const out: number[] = [];
  sets.forEach((set, i) => {
    const used = new Set<string>();
    for (const ip of leased) {
      const r = rangeFor(set, ip);
      if (r && r.gateway.value !== ip.value) used.add(key(ip));
    }
    if (BigInt(used.size) >= capacity(set)) out.push(i);
  });
  return out;
}

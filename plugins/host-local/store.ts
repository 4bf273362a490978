/**
 * The storage contract between host-local's pure allocator and wherever leases live: the disk
 * (disk-store.ts, the reference layout) or memory (memory-store.ts, for unit tests and fault
 * injection). A store only knows files-like facts (which IP is leased, to whom, the cursor of
 * each range set, a lock); every decision (which IP, who owns what, what is a duplicate) is made
 * by allocator.ts so that it can be tested without root or a filesystem.
 *
 * A lease records its owner the way the reference does: `<containerId>\r\n<ifName>`, or only
 * `<containerId>` in files written by host-local before CNI 0.4 (legacy leases own every ifname
 * of that container).
 */
import type { IP } from '../../pkg/ip/cidr.ts';

/** One leased address and its owner. `ifName` is undefined for a legacy (container-id only) lease. */
export interface Lease {
  ip: IP;
  containerId: string;
  ifName: string | undefined;
}

/** Where host-local keeps the leases of one network. */
export interface Store {
  /**
   * Runs fn while holding the network's exclusive lock (waiting for it without blocking the event
   * loop); every other method expects it held.
   */
  withLock<T>(fn: () => T): Promise<T>;
  /** Returns false when nothing has ever been stored for this network (no directory). */
  present(): boolean;
  /**
   * Lists every lease of the network (entries that are not leases are skipped). With `reuse`, a
   * store may answer a lease's owner from what it read before while the directory shows no sign
   * of change (the names are always current); without it, everything comes from the disk now.
   */
  leases(opts?: { reuse?: boolean }): Lease[];
  /**
   * Creates the lease for `ip` only if no lease exists for it, and on success records `ip` as
   * the last reserved address of range set `setIndex`. Returns false when `ip` was taken.
   */
  reserve(ip: IP, containerId: string, ifName: string, setIndex: number): boolean;
  /** Returns the last address reserved in range set `setIndex`, or undefined if none or unreadable. */
  lastReserved(setIndex: number): IP | undefined;
  /** Removes the lease of `ip`; a missing lease is fine. Leaves the cursors untouched. */
  release(ip: IP): void;
}

/** Returns the lease content the reference writes: `<containerId>\r\n<ifName>`, no trailing newline. */
export function leaseContent(containerId: string, ifName: string): string {
  return `${containerId.trim()}\r\n${ifName}`;
}

/** Reads a lease's owner from its content (whitespace around it ignored, as the reference trims). */
export function parseLeaseContent(content: string): { containerId: string; ifName: string | undefined } {
  const text = content.trim();
  const sep = text.indexOf('\r\n');
  if (sep < 0) return { containerId: text, ifName: undefined };
  return { containerId: text.slice(0, sep), ifName: text.slice(sep + 2) };
}

/**
 * An in-memory `Store` with the same semantics as the disk store (exclusive reserve, per-set
 * cursor, legacy leases), for unit tests of the allocator and for injecting failures: set
 * `failReserveAfter` to make a reserve throw, as a full disk would. Not used by the executables.
 */
import { type IP, formatIP, parseIP } from '../../pkg/ip/cidr.ts';
import { type Lease, type Store, leaseContent, parseLeaseContent } from './store.ts';

export class MemoryStore implements Store {
  /** Lease file name (the formatted IP) -> content, as on disk. */
  readonly files = new Map<string, string>();
  /** Set index -> last reserved address, as `last_reserved_ip.N`. */
  readonly cursors = new Map<number, string>();
  /** When a number, every reserve after that many successful ones throws. */
  failReserveAfter: number | undefined;
  locked = false;

  async withLock<T>(fn: () => T): Promise<T> {
    if (this.locked) throw new Error('MemoryStore: lock is not re-entrant');
    this.locked = true;
    try {
      return fn();
    } finally {
      this.locked = false;
    }
  }

  present(): boolean {
    return this.files.size > 0 || this.cursors.size > 0;
  }

  private assertLocked(): void {
    if (!this.locked) throw new Error('MemoryStore: called without the lock');
  }

  leases(): Lease[] {
    this.assertLocked();
    return [...this.files].map(([name, content]) => ({ ip: parseIP(name), ...parseLeaseContent(content) }));
  }

  reserve(ip: IP, containerId: string, ifName: string, setIndex: number): boolean {
    this.assertLocked();
    if (this.failReserveAfter !== undefined && this.failReserveAfter-- <= 0) throw new Error('ENOSPC: no space left on device');
    const name = formatIP(ip);
    if (this.files.has(name)) return false;
    this.files.set(name, leaseContent(containerId, ifName));
    this.cursors.set(setIndex, name);
    return true;
  }

  lastReserved(setIndex: number): IP | undefined {
    const s = this.cursors.get(setIndex);
    return s === undefined ? undefined : parseIP(s);
  }

  release(ip: IP): void {
    this.assertLocked();
    this.files.delete(formatIP(ip));
  }
}

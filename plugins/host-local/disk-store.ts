/**
 * host-local's leases on disk, in the reference plugin's layout (docs/cni-notes.md §4.4), so that the Go
 * host-local and cnikit can take turns on the same directory and leases survive switching.
 *
 * Layout of `<dataDir>/<network name>/` (directory mode 0755, created on first use):
 *
 * | file                 | content                                                       |
 * |----------------------|---------------------------------------------------------------|
 * | `<ip>`               | the lease: `<containerId>\r\n<ifName>` (CRLF, no trailing newline), mode 0600, created with O_EXCL. The name is the address in canonical form (`10.77.0.5`, `fd77::5`, RFC 5952 as Go prints it). Files written before CNI 0.4 hold only `<containerId>`; they are read as leases of every ifname of that container. |
 * | `last_reserved_ip.N` | the address last reserved in range set N, no newline, mode 0644; rewritten on each reservation, left alone by releases. |
 * | `lock`               | empty; an exclusive flock on it guards every read-modify-write (reserve, release, lookup). |
 *
 * Anything else in the directory (temporary files, a stray subdirectory) is ignored: only names
 * that parse as an IP address are leases. A lease's content is compared after trimming
 * whitespace, as the reference does. What this module does not do: decide which address to use
 * (allocator.ts).
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type IP, formatIP, tryParseIP } from '../../pkg/ip/cidr.ts';
import { LockedDir } from '../../pkg/store/locked-dir.ts';
import { type Lease, type Store, leaseContent, parseLeaseContent } from './store.ts';

/** The prefix of the per-range-set cursor files. */
export const LAST_RESERVED_PREFIX = 'last_reserved_ip.';

export class DiskStore implements Store {
  /** `<dataDir>/<network>`. */
  readonly dir: string;
  private readonly locked: LockedDir;

  constructor(dataDir: string, network: string) {
    this.dir = join(dataDir, network);
    this.locked = new LockedDir(this.dir, 0o755);
  }

  /** Runs fn holding an exclusive flock on `<dir>/lock`, creating the directory if needed. */
  withLock<T>(fn: () => T): Promise<T> {
    return this.locked.withLock(fn);
  }

  present(): boolean {
    return existsSync(this.dir);
  }

  leases(): Lease[] {
    const out: Lease[] = [];
    for (const name of this.locked.list()) {
      const ip = tryParseIP(name);
      if (!ip) continue;
      let content: string | undefined;
      try {
        content = this.locked.read(name);
      } catch {
        continue; // unreadable (a directory named like an IP, say): not a lease, as the reference skips it
      }
      if (content === undefined) continue; // released between list and read
      out.push({ ip, ...parseLeaseContent(content) });
    }
    return out;
  }

  reserve(ip: IP, containerId: string, ifName: string, setIndex: number): boolean {
    if (!this.locked.createExclusive(formatIP(ip), leaseContent(containerId, ifName), 0o600)) return false;
    try {
      // Plain write, like the reference: a torn cursor only costs round-robin order once.
      writeFileSync(join(this.dir, `${LAST_RESERVED_PREFIX}${setIndex}`), formatIP(ip), { mode: 0o644 });
    } catch (err) {
      this.locked.remove(formatIP(ip));
      throw err;
    }
    return true;
  }

  lastReserved(setIndex: number): IP | undefined {
    let text: string | undefined;
    try {
      text = this.locked.read(`${LAST_RESERVED_PREFIX}${setIndex}`);
    } catch {
      return undefined;
    }
    return text === undefined ? undefined : tryParseIP(text.trim());
  }

  release(ip: IP): void {
    this.locked.remove(formatIP(ip));
  }
}

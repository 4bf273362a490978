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
 *
 * A long-lived process (the engine) keeps the leases it has read, per directory: the names are
 * listed on every call, and a known name's content is reused while the directory's identity and
 * timestamps (a create or an unlink changes its mtime and ctime) are those last seen, since a
 * lease is a file created once (O_EXCL) and never rewritten. The stamp is taken again after each
 * change this process makes while it holds the lock, which every writer (this plugin, the
 * reference's host-local) takes for its changes; a change behind its back moves the stamp (or,
 * within one timestamp tick, at least adds or removes a name), and everything is read again. So
 * an ADD on a network of 400 containers does not read 400 files; a fresh process reads them all,
 * as before. Only ADD's choice of a free address reuses them (leases({ reuse: true })): DEL, CHECK
 * and GC decide on what the disk says now, so a change the stamp cannot see (a release and a
 * re-create of one name by another process within one timestamp tick) can never make them keep
 * or free the wrong lease.
 */
import { existsSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type IP, formatIP, tryParseIP } from '../../pkg/ip/cidr.ts';
import { LockedDir } from '../../pkg/store/locked-dir.ts';
import { type Lease, type Store, leaseContent, parseLeaseContent } from './store.ts';

/** The prefix of the per-range-set cursor files. */
export const LAST_RESERVED_PREFIX = 'last_reserved_ip.';

/** Per lease directory: its leases as this process last saw them, and the directory's stamp then. */
const seen = new Map<string, { stamp: string; leases: Map<string, Lease> }>();

/** The directory's identity and change times; undefined when it does not exist. */
function stampOf(dir: string): string | undefined {
  try {
    const s = statSync(dir, { bigint: true });
    return `${s.dev}:${s.ino}:${s.mtimeNs}:${s.ctimeNs}`;
  } catch {
    return undefined;
  }
}

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

  leases(opts: { reuse?: boolean } = {}): Lease[] {
    const stamp = stampOf(this.dir);
    const known = opts.reuse ? seen.get(this.dir) : undefined;
    // The names are listed every time (one getdents for hundreds of leases); only the contents
    // of names known under an unchanged stamp are taken from memory.
    const reuse = known && stamp && known.stamp === stamp ? known.leases : undefined;
    const found = new Map<string, Lease>();
    for (const name of this.locked.list()) {
      const have = reuse?.get(name);
      if (have) {
        found.set(name, have);
        continue;
      }
      const ip = tryParseIP(name);
      if (!ip) continue;
      let content: string | undefined;
      try {
        content = this.locked.read(name);
      } catch {
        continue; // unreadable (a directory named like an IP, say): not a lease, as the reference skips it
      }
      if (content === undefined) continue; // released between list and read
      found.set(name, { ip, ...parseLeaseContent(content) });
    }
    if (stamp) seen.set(this.dir, { stamp, leases: found });
    else seen.delete(this.dir);
    return [...found.values()];
  }

  /**
   * Runs `change` on the directory and keeps what this process knows of it current: when its
   * stamp was the one last seen before the change, `update` applies the change to the known
   * leases and the stamp after it is kept; otherwise, or when `update` says the known leases
   * were wrong (false), the next leases() reads everything again.
   */
  private changing<T>(change: () => T, update: (leases: Map<string, Lease>) => boolean): T {
    const known = seen.get(this.dir);
    const before = stampOf(this.dir);
    if (!known || known.stamp !== before) seen.delete(this.dir);
    try {
      return change();
    } finally {
      const now = seen.get(this.dir);
      const after = stampOf(this.dir);
      if (now && after && update(now.leases)) {
        now.stamp = after;
      } else {
        seen.delete(this.dir);
      }
    }
  }

  reserve(ip: IP, containerId: string, ifName: string, setIndex: number): boolean {
    const name = formatIP(ip);
    let created = false;
    let refused = false;
    return this.changing(() => {
      if (!this.locked.createExclusive(name, leaseContent(containerId, ifName), 0o600)) {
        refused = true;
        return false;
      }
      created = true;
      try {
        // Plain write, like the reference: a torn cursor only costs round-robin order once.
        writeFileSync(join(this.dir, `${LAST_RESERVED_PREFIX}${setIndex}`), formatIP(ip), { mode: 0o644 });
      } catch (err) {
        this.locked.remove(name);
        created = false;
        throw err;
      }
      return true;
    }, (leases) => {
      // Refused: a lease this process did not know of was there, so what it knew is out of date.
      if (refused && !leases.has(name)) return false;
      if (created) leases.set(name, { ip, ...parseLeaseContent(leaseContent(containerId, ifName)) });
      return true;
    });
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
    const name = formatIP(ip);
    this.changing(() => this.locked.remove(name), (leases) => leases.delete(name) || true);
  }
}

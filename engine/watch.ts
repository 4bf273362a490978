/**
 * The reasons an engine stops on its own, checked every couple of seconds: its network
 * namespace is pinned by nothing but itself (a sandbox deleted with `ip netns del` while the
 * engine runs: staying would keep the namespace, its links and its firewall alive), or its build
 * changed (the bundle or the addon was rewritten: the next call starts the new code).
 *
 * "Pinned" means a bind mount of the namespace (ip netns add, a runtime's pinned netns) in our
 * mount namespace, or another process inside it. An fd held open on the namespace by another
 * process is not seen (finding one means reading every fd of every process).
 */
import { readFileSync, readdirSync, readlinkSync, statSync } from 'node:fs';

/** Returns this process's network namespace, `net:[4026531840]`. */
export function ownNetns(): string {
  return readlinkSync('/proc/self/ns/net');
}

/** True when something besides this process keeps the namespace `ns` (`net:[N]`) alive. */
export function netnsPinned(ns: string): boolean {
  try {
    // mountinfo: "ID PARENT MAJ:MIN ROOT MOUNTPOINT ..."; an nsfs bind mount's ROOT is `net:[N]`.
    for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
      if (line.split(' ', 4)[3] === ns) return true;
    }
  } catch { /* no /proc/self/mountinfo: fall through to processes */ }
  const me = String(process.pid);
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return true; // cannot tell: never exit for this reason
  }
  for (const pid of entries) {
    if (pid === me || !/^\d+$/.test(pid)) continue;
    try {
      if (readlinkSync(`/proc/${pid}/ns/net`) === ns) return true;
    } catch { /* exited, or a kernel thread */ }
  }
  return false;
}

/** A file's identity: a rewrite or replace changes it. */
export function fileStamp(path: string): string {
  try {
    const s = statSync(path);
    return `${s.ino}:${s.size}:${s.mtimeMs}`;
  } catch {
    return 'missing';
  }
}

/** Watches files for a change of identity (a new build). */
export class BuildWatch {
  private readonly files: string[];
  private readonly stamps: string[];
  constructor(files: string[]) {
    this.files = files;
    this.stamps = files.map(fileStamp);
  }

  /** Returns the first file that changed since the watch began, or undefined. */
  changed(): string | undefined {
    return this.files.find((f, i) => fileStamp(f) !== this.stamps[i]);
  }
}

/**
 * A state directory guarded by an flock'd lock file (`lock` unless named otherwise), with
 * exclusive creates and atomic replaces: the storage under host-local leases and the DNS record
 * files, and the responder's one-per-directory lock.
 *
 * Taking the lock never blocks the event loop, so one process may run many calls at once:
 * - In-process first: callers of one lock file queue up in this process, in order. Two fds of
 *   one process on one file conflict under flock like two processes do, so without the queue two
 *   concurrent calls would wait on each other's flock (and a blocking wait would stall the loop).
 * - Then the flock, against other processes: taken at once when free, else waited for on a
 *   thread of the addon's own (native flockWait).
 * The file operations themselves are synchronous: each is a few microseconds on a local
 * directory, and the lock is held only for a handful of them.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { native } from '../native.ts';

/** Per lock file (absolute path): settles when the last holder or waiter in this process is done. */
const queues = new Map<string, Promise<void>>();

/** A lock held by tryLock(); release() lets the next holder in (it may be called more than once). */
export interface HeldLock {
  release(): void;
}

export class LockedDir {
  readonly dir: string;
  private readonly mode: number;
  private readonly lockFile: string;
  /** `lockName` is the lock file's name inside `dir`. */
  constructor(dir: string, mode = 0o755, lockName = 'lock') {
    this.dir = dir;
    this.mode = mode;
    this.lockFile = resolve(dir, lockName);
  }

  private openLock(): number {
    mkdirSync(this.dir, { recursive: true, mode: this.mode });
    return openSync(this.lockFile, 'a', 0o600);
  }

  /**
   * Runs fn while holding the directory's exclusive lock (creating dir and lock as needed),
   * waiting for it without blocking the event loop; releases it when fn settles.
   */
  async withLock<T>(fn: () => T | Promise<T>): Promise<T> {
    const prev = queues.get(this.lockFile);
    let done!: () => void;
    const mine = new Promise<void>((r) => { done = r; });
    const tail = prev ? prev.then(() => mine) : mine;
    queues.set(this.lockFile, tail);
    try {
      if (prev) await prev;
      const fd = this.openLock();
      try {
        await native().flockWait(fd, true);
        return await fn();
      } finally {
        closeSync(fd); // closing the fd releases the flock
      }
    } finally {
      done();
      if (queues.get(this.lockFile) === tail) queues.delete(this.lockFile);
    }
  }

  /**
   * Takes the exclusive lock if nobody holds it or waits for it, in this process or another;
   * returns undefined at once otherwise. The lock is held until release() (or the process ends).
   */
  tryLock(): HeldLock | undefined {
    if (queues.has(this.lockFile)) return undefined;
    const fd = this.openLock();
    let got = false;
    try {
      got = native().flock(fd, true);
    } finally {
      if (!got) closeSync(fd);
    }
    if (!got) return undefined;
    let done!: () => void;
    const held = new Promise<void>((r) => { done = r; });
    queues.set(this.lockFile, held);
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        closeSync(fd);
        done();
        if (queues.get(this.lockFile) === held) queues.delete(this.lockFile);
      },
    };
  }

  /** Creates `name` only if absent (O_EXCL); returns false when it exists. */
  createExclusive(name: string, data: string, mode = 0o600): boolean {
    let fd: number;
    try {
      fd = openSync(join(this.dir, name), 'wx', mode);
    } catch (err) {
      if ((err as { code?: string }).code === 'EEXIST') return false;
      throw err;
    }
    try {
      writeSync(fd, data);
    } catch (err) {
      // Never leave a half-written file behind that would read as taken.
      closeSync(fd);
      this.remove(name);
      throw err;
    }
    closeSync(fd);
    return true;
  }

  /** Replaces `name` atomically: write a temp file, fsync, rename over. */
  writeAtomic(name: string, data: string, mode = 0o600): void {
    const tmp = join(this.dir, `.${name}.tmp${process.pid}`);
    const fd = openSync(tmp, 'w', mode);
    try {
      writeSync(fd, data);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, join(this.dir, name));
  }

  /** Returns the file's text, or undefined when it does not exist. */
  read(name: string): string | undefined {
    try {
      return readFileSync(join(this.dir, name), 'utf8');
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  /** Removes `name`; a missing file is fine. */
  remove(name: string): void {
    try {
      unlinkSync(join(this.dir, name));
    } catch (err) {
      if ((err as { code?: string }).code !== 'ENOENT') throw err;
    }
  }

  /** Lists the directory's entries (empty when it does not exist). */
  list(): string[] {
    try {
      return readdirSync(this.dir);
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT') return [];
      throw err;
    }
  }
}

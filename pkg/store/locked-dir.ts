/**
 * A state directory guarded by an flock'd `lock` file, with exclusive creates and atomic
 * replaces: the storage under host-local leases and the DNS record files. Synchronous on
 * purpose: a plugin is a short-lived process that holds the lock for a few file operations.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { native } from '../native.ts';

export class LockedDir {
  readonly dir: string;
  private readonly mode: number;
  constructor(dir: string, mode = 0o755) {
    this.dir = dir;
    this.mode = mode;
  }

  /** Runs fn while holding the directory's exclusive lock (creating dir and lock as needed). */
  withLock<T>(fn: () => T): T {
    mkdirSync(this.dir, { recursive: true, mode: this.mode });
    const fd = openSync(join(this.dir, 'lock'), 'a', 0o600);
    try {
      native().flock(fd, true, true);
      return fn();
    } finally {
      closeSync(fd); // closing the fd releases the flock
    }
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

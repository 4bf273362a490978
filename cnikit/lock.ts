/**
 * Short exclusive locks between cnikit processes: `network create` against another create in the
 * same NETCONFPATH (both could pick the same subnet), and `connect`/`disconnect` against the
 * teardown of the `cnikit run` they change. A lock is an flock on an open file or directory, so
 * it goes away with the process that held it (a SIGKILLed cnikit never leaves one behind).
 *
 * Waiting polls a non-blocking flock instead of blocking the thread, so signals are still handled
 * while a lock is awaited, and the wait is bounded.
 */
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CniCode, CniError } from '../pkg/cni/errors.ts';
import { native } from '../pkg/native.ts';

/**
 * Runs `fn` holding an exclusive flock on `path` (a directory, or a file created if missing);
 * throws CniError 11 when the lock is still held after `timeoutMs`.
 */
export async function withLock<T>(path: string, fn: () => Promise<T> | T, o: { directory?: boolean; timeoutMs?: number } = {}): Promise<T> {
  mkdirSync(o.directory ? path : dirname(path), { recursive: true, mode: 0o755 });
  const fd = openSync(path, o.directory ? 'r' : 'a', 0o600);
  try {
    const deadline = Date.now() + (o.timeoutMs ?? 30_000);
    while (!native().flock(fd, true)) {
      if (Date.now() > deadline) throw new CniError(CniCode.TryAgainLater, `${path} is locked by another cnikit command`, 'try again when it has finished');
      await sleep(20);
    }
    return await fn();
  } finally {
    closeSync(fd); // closing the fd releases the flock
  }
}

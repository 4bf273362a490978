/**
 * LockedDir's lock as a daemon running many calls would use it, against a temp directory (no
 * root: flock is unprivileged): calls in one process take turns instead of deadlocking on their
 * own flock, a lock held by another process is waited for while the event loop keeps running,
 * and tryLock never waits.
 */
import test from 'ava';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LockedDir } from './locked-dir.ts';

function tmp(t: { teardown(fn: () => void): void }): string {
  const d = mkdtempSync(join(tmpdir(), 'cnikit-lock-'));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

/** Starts `flock FILE sleep` in another process and resolves once it holds the lock. */
async function holdElsewhere(t: { teardown(fn: () => void): void }, file: string): Promise<ChildProcess> {
  const child = spawn('flock', ['--exclusive', file, 'sh', '-c', 'echo held; read _'], { stdio: ['pipe', 'pipe', 'inherit'] });
  t.teardown(() => { if (child.exitCode === null) child.kill(); });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('error', reject);
    child.once('exit', (c) => reject(new Error(`flock exited with ${c}`)));
  });
  return child;
}

test('calls in one process take turns on one directory, in order, and none deadlocks', async (t) => {
  const d = new LockedDir(join(tmp(t), 'net'));
  const events: string[] = [];
  let inside = 0;
  const call = (n: number) => d.withLock(async () => {
    inside++;
    t.is(inside, 1, 'never two holders at once');
    events.push(`in ${n}`);
    await new Promise((r) => setTimeout(r, 5));
    events.push(`out ${n}`);
    inside--;
    return n;
  });
  t.deepEqual(await Promise.all([call(1), call(2), call(3), call(4)]), [1, 2, 3, 4]);
  t.deepEqual(events, ['in 1', 'out 1', 'in 2', 'out 2', 'in 3', 'out 3', 'in 4', 'out 4']);
  t.true(existsSync(join(d.dir, 'lock')));
});

test('a failing holder releases the lock for the next one', async (t) => {
  const d = new LockedDir(join(tmp(t), 'net'));
  const first = d.withLock(() => { throw new Error('boom'); });
  const second = d.withLock(() => 'next');
  await t.throwsAsync(first, { message: 'boom' });
  t.is(await second, 'next');
});

test('a lock held by another process is waited for without blocking the event loop', async (t) => {
  const d = new LockedDir(join(tmp(t), 'net'));
  await d.withLock(() => undefined); // creates the directory and the lock file
  const holder = await holdElsewhere(t, join(d.dir, 'lock'));
  let ticks = 0;
  const ticker = setInterval(() => { ticks++; }, 5);
  t.teardown(() => clearInterval(ticker));
  let got = false;
  const waiting = d.withLock(() => { got = true; return ticks; });
  await new Promise((r) => setTimeout(r, 100));
  t.false(got, 'not taken while the other process holds it');
  t.true(ticks > 0, 'timers ran meanwhile');
  t.is(d.tryLock(), undefined, 'tryLock does not jump the queue');
  holder.stdin!.end(); // the holder exits, which releases its lock
  const ticksAtGrant = await waiting;
  t.true(got);
  t.true(ticksAtGrant > 0);
});

test('tryLock: held locks (here or elsewhere) answer at once; release lets the next one in', async (t) => {
  const dir = join(tmp(t), 'run');
  const d = new LockedDir(dir, 0o700, 'responder.lock');
  const held = d.tryLock();
  t.truthy(held);
  t.true(existsSync(join(dir, 'responder.lock')));
  t.is(d.tryLock(), undefined, 'held in this process');
  let got = false;
  const waiting = d.withLock(() => { got = true; });
  await new Promise((r) => setTimeout(r, 20));
  t.false(got);
  held!.release();
  held!.release(); // a second release is harmless
  await waiting;
  t.true(got);

  const holder = await holdElsewhere(t, join(dir, 'responder.lock'));
  t.is(d.tryLock(), undefined, 'held by another process');
  holder.stdin!.end();
  await new Promise<void>((r) => holder.once('exit', () => r()));
  const again = d.tryLock();
  t.truthy(again);
  again!.release();
});

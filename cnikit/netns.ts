/**
 * Network namespaces that the cnikit command itself makes (`run`, `demo`): create one pinned at
 * a path, bring its loopback up, find and stop the processes left in it, and delete it. Creating
 * goes through the native addon (a bind mount of a fresh namespace, like `ip netns add`), and
 * loopback is set up over netlink; nothing here enters a namespace or execs `ip`.
 *
 * The processes in a namespace are found the way `ip netns pids` finds them: every /proc/PID whose
 * ns/net is the same inode as the pinned file.
 */
import { closeSync, mkdirSync, openSync, readdirSync, statSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { native } from '../pkg/native.ts';
import { RouteHandle } from '../pkg/netlink/route.ts';

/**
 * Creates a namespace pinned at `path` with `lo` up. Throws EEXIST when the path exists; on any
 * failure nothing is left behind.
 */
export async function createNetns(path: string): Promise<void> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  closeSync(openSync(path, 'wx', 0o444));
  try {
    native().netnsCreate(path);
    const rt = RouteHandle.open(path);
    try {
      const lo = await rt.linkGet('lo');
      if (lo) await rt.linkSetUp(lo.index);
    } finally {
      rt.close();
    }
  } catch (err) {
    try { native().netnsDelete(path); } catch { /* already gone */ }
    try { unlinkSync(path); } catch { /* already gone */ }
    throw err;
  }
}

/** Unpins and removes a namespace made by createNetns (the kernel frees it once no process is in it). */
export function deleteNetns(path: string): void {
  native().netnsDelete(path);
}

/** Returns the PIDs of the processes (other than this one) whose network namespace is the one at `path`. */
export function pidsInNetns(path: string): number[] {
  let target;
  try {
    target = statSync(path);
  } catch {
    return [];
  }
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (pid === process.pid) continue;
    try {
      const st = statSync(`/proc/${name}/ns/net`);
      if (st.ino === target.ino && st.dev === target.dev) out.push(pid);
    } catch { /* exited, or a kernel thread */ }
  }
  return out;
}

/**
 * Stops every process in the namespace: SIGTERM, then SIGKILL for those still there after
 * `graceMs`. Bounded: at most graceMs plus one short wait.
 */
export async function stopNetnsProcesses(path: string, graceMs = 2000): Promise<void> {
  let pids = pidsInNetns(path);
  if (!pids.length) return;
  for (const pid of pids) {
    try { process.kill(pid, 'SIGTERM'); } catch { /* gone */ }
  }
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    await sleep(50);
    pids = pidsInNetns(path);
    if (!pids.length) return;
  }
  for (const pid of pids) {
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  }
  await sleep(50);
}

/**
 * Pruning the records directory: what liveness.ts judged gone is removed from disk, under the
 * directory's lock (the same `lock` file the dnsname plugin flocks), so the next reader, the
 * next responder and the next ADD all see the same state. Networks whose bridge is gone lose
 * their file; dead containers lose their line (and a bound network left with none, its file);
 * temp files a crash left behind are removed (under the lock nobody is writing one).
 *
 * The responder never waits for the lock: the plugin holds it while it waits for the
 * responder's reload (in another process, or in the same one when a daemon hosts both), so
 * waiting could deadlock. `tryPruneRecordsDir` returns undefined when the lock is held or
 * waited for, and the caller tries again later. Files it cannot
 * parse, or of another version, are left as they are (they are reported, not ours to delete),
 * and so are networks of another host netns.
 */
import { join } from 'node:path';
import { LockedDir } from '../pkg/store/locked-dir.ts';
import { type HostProbe, judgeNetwork } from './liveness.ts';
import { TEMP_RE, formatRecords, listRecordFiles, readRecordsFile } from './records.ts';

/** The lock file of a records directory (what LockedDir and the plugin flock). */
export const RECORDS_LOCK = 'lock';

/** What one prune pass did. */
export interface PruneResult {
  /** Record files removed, with why. */
  removed: { file: string; why: string }[];
  /** Container lines dropped because their netns is gone: file -> `id/ifname` list. */
  dropped: { file: string; containers: string[] }[];
  /** Temp files a crash left behind, removed. */
  temps: string[];
}

/**
 * Prunes `dir` if its lock is free right now; resolves undefined when another process holds
 * it. Never throws for a single bad file (it is left alone).
 */
export async function tryPruneRecordsDir(dir: string, probe: HostProbe): Promise<PruneResult | undefined> {
  const d = new LockedDir(dir, 0o755, RECORDS_LOCK);
  let held;
  try {
    held = d.tryLock();
  } catch {
    return { removed: [], dropped: [], temps: [] }; // no directory to prune, and none can be made
  }
  if (!held) return undefined;
  try {
    return await pruneLocked(d, probe);
  } finally {
    held.release();
  }
}

async function pruneLocked(d: LockedDir, probe: HostProbe): Promise<PruneResult> {
  const out: PruneResult = { removed: [], dropped: [], temps: [] };
  for (const name of d.list()) {
    if (!TEMP_RE.test(name)) continue;
    try { d.remove(name); out.temps.push(join(d.dir, name)); } catch { /* leave it */ }
  }
  for (const name of listRecordFiles(d.dir).names) {
    const f = readRecordsFile(d.dir, name);
    if ('unchanged' in f || !f.records) continue;
    const r = f.records;
    const j = await judgeNetwork(r, probe);
    if (j.network.state === 'foreign') continue;
    if (j.network.state === 'gone') {
      d.remove(name);
      out.removed.push({ file: f.file, why: j.network.why });
      continue;
    }
    if (!j.dead.length) continue;
    const dead = new Set(j.dead);
    const kept = r.containers.filter((c) => !dead.has(c));
    out.dropped.push({ file: f.file, containers: j.dead.map((c) => `${c.containerId}/${c.ifName}`) });
    if (kept.length === 0) {
      d.remove(name);
      out.removed.push({ file: f.file, why: 'no container of the network is left' });
    } else {
      d.writeAtomic(name, formatRecords({ ...r, containers: kept }), 0o644);
    }
  }
  return out;
}

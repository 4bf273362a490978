/**
 * The networks in a NETCONFPATH directory as `cnikit network` sees them: every conflist and
 * single-plugin config, read leniently (a file that does not parse is reported and skipped, so
 * one broken file written by someone else does not stop `ls` or `create`), in libcni's order
 * (`*.conflist` sorted by name, then `*.conf`/`*.json`; the first file of a name is the network).
 *
 * Writing: `writeConflistExclusive` creates NAME.conflist atomically and only if it is absent (a
 * temp file hard-linked into place: link(2) fails on an existing name, and readers never see a
 * partial file). Callers hold `withNetconfLock` while they check and write, so two creates
 * cannot pick the same name, bridge or subnet.
 */
import { linkSync, readFileSync, readdirSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import { CniCode, CniError } from '../../pkg/cni/errors.ts';
import { withLock } from '../lock.ts';
import { type NetworkSummary, summarize } from './conflist.ts';

/** One config file of the directory, parsed or not. */
export interface NetworkFile {
  file: string;
  /** The parsed object; undefined when the file is not a JSON object. */
  raw: Record<string, unknown> | undefined;
  /** Why it could not be read, when it could not. */
  problem?: string;
}

function filesIn(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') return [];
    throw new CniError(CniCode.IoFailure, `cannot read network config directory ${dir}`, (err as Error).message, { cause: err, reason: 'config-not-found' });
  }
  const pick = (exts: string[]) => names.filter((n) => exts.includes(extname(n)) && !n.startsWith('.')).sort().map((n) => join(dir, n))
    .filter((p) => { try { return statSync(p).isFile(); } catch { return false; } });
  return [...pick(['.conflist']), ...pick(['.conf', '.json'])];
}

/** Reads every config file of `dir`, in libcni's order. */
export function readNetworkFiles(dir: string): NetworkFile[] {
  return filesIn(dir).map((file) => {
    try {
      const raw: unknown = JSON.parse(readFileSync(file, 'utf8'));
      if (!raw || typeof raw !== 'object' || Array.isArray(raw)) return { file, raw: undefined, problem: 'not a JSON object' };
      return { file, raw: raw as Record<string, unknown> };
    } catch (err) {
      return { file, raw: undefined, problem: (err as Error).message };
    }
  });
}

/** Summaries of the networks in `dir`, the first file of each name; unreadable files go to `onProblem`. */
export function networkSummaries(dir: string, onProblem?: (f: NetworkFile) => void): NetworkSummary[] {
  const out: NetworkSummary[] = [];
  const seen = new Set<string>();
  for (const f of readNetworkFiles(dir)) {
    if (!f.raw) { onProblem?.(f); continue; }
    const s = summarize(f.raw, f.file);
    if (!s.name || seen.has(s.name)) continue;
    seen.add(s.name);
    out.push(s);
  }
  return out;
}

/** Finds network `name` in `dir`; throws exit-3 style "not found" naming what exists. */
export function findNetwork(dir: string, name: string): NetworkSummary {
  const all = networkSummaries(dir);
  const hit = all.find((s) => s.name === name);
  if (hit) return hit;
  throw new CniError(CniCode.InvalidConfig, `no network "${name}" in ${dir}`,
    all.length ? `networks there: ${all.map((s) => s.name).join(', ')}` : 'there are none; make one with `cnikit network create NAME`', { reason: 'config-not-found' });
}

/** Runs `fn` holding the lock of the NETCONFPATH directory (created if missing). */
export function withNetconfLock<T>(dir: string, fn: () => Promise<T> | T): Promise<T> {
  return withLock(dir, fn, { directory: true });
}

/** Writes `<dir>/<name>.conflist` only if absent, atomically; returns its path. */
export function writeConflistExclusive(dir: string, name: string, conflist: Record<string, unknown>): string {
  const file = join(dir, `${name}.conflist`);
  const tmp = join(dir, `.${name}.conflist.tmp${process.pid}`);
  writeFileSync(tmp, JSON.stringify(conflist, null, 2) + '\n', { mode: 0o644 });
  try {
    linkSync(tmp, file);
  } catch (err) {
    if ((err as { code?: string }).code === 'EEXIST') {
      throw new CniError(CniCode.InvalidConfig, `${file} exists`, 'pick another network name, or remove that file', { cause: err, reason: 'conflict' });
    }
    throw err;
  } finally {
    unlinkSync(tmp);
  }
  return file;
}

/** Removes a network's config file; a missing file is fine. */
export function removeConflist(file: string): void {
  try {
    unlinkSync(file);
  } catch (err) {
    if ((err as { code?: string }).code !== 'ENOENT') throw err;
  }
}

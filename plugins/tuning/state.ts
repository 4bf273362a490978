/**
 * The restore file: what a tuning ADD changed, as it was before, so that DEL can put it back.
 *
 * `<dataDir>/<containerId>_<ifName>.json` (dataDir default /run/cni/tuning; directory 0700,
 * file 0600), replaced atomically (temp file, fsync, rename), indented by one space as the
 * reference writes it:
 *
 * ```
 * {
 *  "mac": "d2:3d:5d:63:32:b1",
 *  "promisc": false,
 *  "mtu": 1500,
 *  "allmulti": false,
 *  "txQLen": 1000,
 *  "sysctl": { "net/ipv4/conf/eth0/arp_ignore": "0" },
 *  "network": "podman",
 *  "netns": 4026532555,
 *  "ifindex": 2
 * }
 * ```
 *
 * - `mac`, `promisc`, `mtu`, `allmulti`, `txQLen`: the reference's keys (docs/cni-notes.md §10.3),
 *   each present only when ADD changed that attribute. So the reference's DEL restores from our
 *   file (it ignores the keys it does not know) and ours from its file.
 * - `sysctl` (ours): the previous value of each sysctl ADD changed, by its path under /proc/sys.
 *   The reference never restores sysctls.
 * - `network`, `netns`, `ifindex` (ours): whose state this is: the network (for GC), the
 *   namespace's inode and the link's index when ADD ran. A file whose namespace or link is no
 *   longer the one there is left over from an earlier incarnation of the container (same id,
 *   new namespace) and is dropped rather than applied.
 *
 * A repeated ADD keeps what the file holds and adds only attributes it did not hold yet: the
 * originals are those before the first ADD (the reference rewrites the file each time and so
 * loses them). Not here: reading or changing the link (plugin.ts).
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import * as z from 'zod/mini';

export interface SavedState {
  mac?: string;
  promisc?: boolean;
  mtu?: number;
  allmulti?: boolean;
  txQLen?: number;
  sysctl?: Record<string, string>;
  network?: string;
  netns?: number;
  ifindex?: number;
}

const ATTRS = ['mac', 'promisc', 'mtu', 'allmulti', 'txQLen'] as const;

const stateSchema = z.object({
  mac: z.optional(z.string()),
  promisc: z.optional(z.boolean()),
  mtu: z.optional(z.number()),
  allmulti: z.optional(z.boolean()),
  txQLen: z.optional(z.number()),
  sysctl: z.optional(z.record(z.string(), z.string())),
  network: z.optional(z.string()),
  netns: z.optional(z.number()),
  ifindex: z.optional(z.number()),
});

/** Returns the path of one attachment's restore file. */
export function stateFile(dataDir: string, containerId: string, ifName: string): string {
  return join(dataDir, `${containerId}_${ifName}.json`);
}

/** Writes `s` in the file's format (the reference's one-space indent, Go's field order). */
export function encodeState(s: SavedState): string {
  const o: Record<string, unknown> = {};
  for (const k of ATTRS) if (s[k] !== undefined && s[k] !== '' && !(k === 'mtu' && s.mtu === 0)) o[k] = s[k];
  if (s.sysctl && Object.keys(s.sysctl).length) o.sysctl = s.sysctl;
  for (const k of ['network', 'netns', 'ifindex'] as const) if (s[k] !== undefined) o[k] = s[k];
  return JSON.stringify(o, null, 1);
}

/**
 * Reads a restore file's text; undefined when it is not one (a damaged file, which DEL drops).
 * The reference's `"mtu": 0` and `"mac": ""` mean "not saved", as in its Go struct.
 */
export function decodeState(text: string): SavedState | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return undefined;
  }
  const r = stateSchema.safeParse(raw);
  if (!r.success) return undefined;
  const s: SavedState = {};
  for (const [k, v] of Object.entries(r.data)) if (v !== undefined) (s as Record<string, unknown>)[k] = v;
  if (s.mtu === 0) delete s.mtu;
  if (s.mac === '') delete s.mac;
  return s;
}

/** Tells whether the state holds nothing to restore. */
export function isEmpty(s: SavedState): boolean {
  return ATTRS.every((k) => s[k] === undefined) && !Object.keys(s.sysctl ?? {}).length;
}

/**
 * Merges the originals an ADD is about to change into what an earlier ADD saved: what was saved
 * stays (it is older), what is new is added; the identity is this ADD's.
 */
export function mergeOriginals(saved: SavedState | undefined, now: SavedState): SavedState {
  const out: SavedState = { ...now, ...pickAttrs(saved) };
  const sysctl = { ...now.sysctl, ...saved?.sysctl };
  if (Object.keys(sysctl).length) out.sysctl = sysctl;
  return out;
}

function pickAttrs(s: SavedState | undefined): SavedState {
  const o: Record<string, unknown> = {};
  for (const k of ATTRS) if (s?.[k] !== undefined) o[k] = s[k];
  return o as SavedState;
}

/**
 * Tells whether a saved state is of the namespace and link in `now` (each compared only where
 * both say): a file of an earlier namespace or link is left over from an earlier incarnation of
 * the container, not about this one.
 */
export function sameAttachment(saved: SavedState, now: Pick<SavedState, 'netns' | 'ifindex'>): boolean {
  const same = (x: number | undefined, y: number | undefined) => x === undefined || y === undefined || x === y;
  return same(saved.netns, now.netns) && same(saved.ifindex, now.ifindex);
}

/** Returns the file's text, or undefined when there is none. */
export function readStateText(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Replaces the file with `text` atomically, making the directory (0700) as needed. */
export function writeStateText(file: string, text: string): void {
  const dir = join(file, '..');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmp = join(dir, `.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`);
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    unlinkSync(tmp);
    throw err;
  }
  closeSync(fd);
  renameSync(tmp, file);
}

/** Removes the file; a missing one is fine. */
export function removeState(file: string): void {
  try {
    unlinkSync(file);
  } catch (err) {
    if ((err as { code?: string }).code !== 'ENOENT') throw err;
  }
}

/** Lists the restore files in `dir` (names ending in .json), none when it does not exist. */
export function listStateFiles(dir: string): string[] {
  try {
    return readdirSync(dir).filter((n) => n.endsWith('.json') && !n.startsWith('.')).map((n) => join(dir, n));
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') return [];
    throw err;
  }
}

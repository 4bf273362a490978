/**
 * The state of running `cnikit run` containers (CONTRACTS.md): one JSON file per container,
 * `<state-dir>/<id>.json` (default /run/cnikit/containers, `--state-dir`, CNIKIT_STATE_DIR),
 * written atomically (temp file + rename), removed when the run ends. Beside it: `<id>/` holds the
 * files bind-mounted into the command (resolv.conf, hosts) and `<id>.lock` serialises `run`'s
 * teardown with `connect`/`disconnect` from other processes.
 *
 * A record is live while the cnikit process that owns it runs (same pid, same start time, so a
 * reused pid is not mistaken for it) and, unless it uses the host's namespace, its netns is still
 * pinned. Anything else is stale: a run killed with SIGKILL. `listLive()` prunes those records
 * (their attachments stay in the results cache, for `cnikit gc` or `network rm -f` to DEL) and
 * unpins their namespace when nothing runs in it any more.
 *
 * Format (version 1):
 *   { "version": 1, "id": "cnikit-1a2b3c4d5e6f", "name": "web", "aliases": [], "pid": 4242,
 *     "pidStart": "1234567", "commandPid": 4250, "command": ["sleep", "60"], "mode": "bridge",
 *     "netns": "/run/netns/cnikit-1a2b3c4d5e6f", "created": "2026-12-01T10:00:00.000Z",
 *     "cacheDir": "/var/lib/cni", "files": {"resolvConf": ".../resolv.conf", "hosts": ".../hosts"},
 *     "dns": {"nameservers": [...], "search": [...], "options": [...]} (only with --dns/--dns-search),
 *     "addHosts": [["db", "10.0.0.5"]], "stopping": false,
 *     "attachments": [{ "network": "a", "ifName": "eth0", "addresses": ["10.89.0.2/24"],
 *       "gateways": ["10.89.0.1"], "mac": "..", "ports": [{hostPort, containerPort, protocol}],
 *       "names": ["web"], "dns": {"nameservers": ["10.89.0.1"], "search": ["dns.cnikit"], "options": []} }] }
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as z from 'zod/mini';
import type { PortMapping } from '../../pkg/cni/capabilities.ts';
import { CniCode, CniError } from '../../pkg/cni/errors.ts';
import { withLock } from '../lock.ts';
import { deleteNetns, pidsInNetns } from '../netns.ts';

const dnsSchema = z.object({ nameservers: z.array(z.string()), search: z.array(z.string()), options: z.array(z.string()) });
const portSchema = z.object({ hostPort: z.number(), containerPort: z.number(), protocol: z.enum(['tcp', 'udp', 'sctp']), hostIP: z.optional(z.string()) });

const attachmentSchema = z.object({
  network: z.string(),
  ifName: z.string(),
  addresses: z.array(z.string()),
  gateways: z.array(z.string()),
  mac: z.optional(z.string()),
  ports: z.array(portSchema),
  names: z.array(z.string()),
  dns: z.optional(dnsSchema),
});

const stateSchema = z.object({
  version: z.literal(1),
  id: z.string(),
  name: z.optional(z.string()),
  aliases: z.array(z.string()),
  pid: z.number(),
  pidStart: z.string(),
  commandPid: z.optional(z.number()),
  command: z.array(z.string()),
  mode: z.enum(['bridge', 'host', 'none']),
  netns: z.string(),
  created: z.string(),
  cacheDir: z.string(),
  files: z.object({ resolvConf: z.optional(z.string()), hosts: z.optional(z.string()) }),
  dns: z.optional(z.object({ nameservers: z.optional(z.array(z.string())), search: z.optional(z.array(z.string())), options: z.optional(z.array(z.string())) })),
  addHosts: z.array(z.tuple([z.string(), z.string()])),
  stopping: z.optional(z.boolean()),
  attachments: z.array(attachmentSchema),
});

export type ContainerState = z.infer<typeof stateSchema>;
export type AttachmentState = z.infer<typeof attachmentSchema>;
export type DnsConfig = z.infer<typeof dnsSchema>;
export type { PortMapping };

/** A process's start time (clock ticks since boot, /proc/PID/stat field 22); undefined when it is gone. */
export function processStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** True while the record's owner runs and its namespace (if it has its own) is pinned. */
export function isLive(s: ContainerState): boolean {
  if (processStart(s.pid) !== s.pidStart) return false;
  return s.mode === 'host' || existsSync(s.netns);
}

/** The records directory. */
export class StateDir {
  readonly dir: string;
  constructor(dir: string) {
    this.dir = dir;
  }

  file(id: string): string {
    return join(this.dir, `${id}.json`);
  }

  /** The directory of the container's bind-mounted files. */
  filesDir(id: string): string {
    return join(this.dir, id);
  }

  /** Writes (or replaces) a record atomically. */
  write(s: ContainerState): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o755 });
    const tmp = join(this.dir, `.${s.id}.json.tmp${process.pid}`);
    writeFileSync(tmp, JSON.stringify(s, null, 2) + '\n', { mode: 0o644 });
    renameSync(tmp, this.file(s.id));
  }

  /** Reads a record; undefined when there is none or it cannot be used. */
  read(id: string): ContainerState | undefined {
    let text: string;
    try { text = readFileSync(this.file(id), 'utf8'); } catch { return undefined; }
    try {
      const r = stateSchema.safeParse(JSON.parse(text));
      return r.success ? r.data : undefined;
    } catch {
      return undefined;
    }
  }

  /** Removes a record with its files and lock; missing ones are fine. */
  remove(id: string): void {
    rmSync(this.file(id), { force: true });
    rmSync(this.filesDir(id), { recursive: true, force: true });
    rmSync(join(this.dir, `${id}.lock`), { force: true });
  }

  /** Every record that reads, live or not. */
  list(): ContainerState[] {
    let names: string[];
    try { names = readdirSync(this.dir); } catch { return []; }
    return names.filter((n) => n.endsWith('.json') && !n.startsWith('.')).sort()
      .map((n) => this.read(n.slice(0, -'.json'.length))).filter((s): s is ContainerState => s !== undefined);
  }

  /**
   * The live records; stale ones are removed, and their namespace unpinned when nothing runs in
   * it (their cached attachments are left for `cnikit gc` / `network rm -f`). Returns the pruned too.
   */
  listLive(): { live: ContainerState[]; pruned: ContainerState[] } {
    const live: ContainerState[] = [];
    const pruned: ContainerState[] = [];
    for (const s of this.list()) {
      if (isLive(s)) { live.push(s); continue; }
      pruned.push(s);
      if (s.mode !== 'host' && existsSync(s.netns) && pidsInNetns(s.netns).length === 0) {
        try { deleteNetns(s.netns); } catch { /* another prune got there first */ }
      }
      this.remove(s.id);
    }
    return { live, pruned };
  }

  /** Finds a live container by name, id or unique id prefix; throws reason `not-found`. */
  find(ref: string): ContainerState {
    const { live } = this.listLive();
    const hit = live.find((s) => s.name === ref) ?? live.find((s) => s.id === ref);
    if (hit) return hit;
    const byPrefix = live.filter((s) => s.id.startsWith(ref));
    if (byPrefix.length === 1) return byPrefix[0]!;
    throw new CniError(CniCode.UnknownContainer, byPrefix.length ? `"${ref}" matches ${byPrefix.length} containers` : `no running container "${ref}"`,
      byPrefix.length ? `give more of the id: ${byPrefix.map((s) => s.id).join(', ')}` : `\`cnikit ps\` lists them (state in ${this.dir})`, { reason: 'not-found' });
  }

  /** Runs `fn` holding the container's lock (teardown against connect/disconnect). */
  withContainerLock<T>(id: string, fn: () => Promise<T> | T): Promise<T> {
    return withLock(join(this.dir, `${id}.lock`), fn);
  }
}

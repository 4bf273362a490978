/**
 * The results cache, in libcni's layout and format, so that cnitool (or any libcni runtime) and
 * cnikit can each DEL, CHECK and GC what the other added.
 *
 * On disk: `<cacheDir>/results/<network>-<containerID>-<ifname>` (dir 0700, file 0600), one JSON
 * object per attachment, written after the whole ADD chain succeeded and removed after a
 * successful DEL chain:
 *
 *   { "kind": "cniCacheV1", "containerId": "cnitool-0a1b…", "config": "<base64 of the conflist>",
 *     "ifName": "eth0", "networkName": "appnet", "netns": "/run/netns/ctr1",
 *     "cniArgs": [["IgnoreUnknown","1"]], "capabilityArgs": {"portMappings": [...]},
 *     "result": { "cniVersion": "1.0.0", "interfaces": [...], "ips": [...] } }
 *
 * `netns`, `cniArgs`, `capabilityArgs` and `result` are left out when empty (Go's omitempty).
 * A file whose `kind` is not cniCacheV1 is a legacy cache holding a bare Result. Writes are
 * atomic (temp file + rename) where libcni writes in place; readers cannot tell the difference.
 * The cache is not locked: libcni does not lock it either, and an attachment is only ever
 * handled by one caller at a time (docs/cni-notes.md §1.1).
 */
import { mkdirSync, readFileSync, readdirSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CniCode, CniError } from '../pkg/cni/errors.ts';

/** The `kind` of a current-format cache file; anything else is a legacy bare Result. */
export const CACHE_KIND = 'cniCacheV1';

/** One cache file as libcni writes it. */
export interface CacheFile {
  kind: string;
  containerId: string;
  /** base64 of the network config list's bytes (a Go []byte). */
  config: string;
  ifName: string;
  networkName: string;
  netns?: string;
  cniArgs?: [string, string][];
  capabilityArgs?: Record<string, unknown>;
  result?: Record<string, unknown>;
}

/** A cached attachment as the runtime uses it. */
export interface CachedAttachment {
  file: string;
  containerId: string;
  ifName: string;
  networkName: string;
  netns: string;
  cniArgs: [string, string][];
  capabilityArgs: Record<string, unknown>;
  /** The conflist bytes that were used for ADD (empty for a legacy file). */
  config: Buffer;
  /** The final ADD result as it was written (any version), if any. */
  result: Record<string, unknown> | undefined;
  /** True when the file was a bare legacy Result. */
  legacy: boolean;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return !!v && typeof v === 'object' && !Array.isArray(v);
}

function pairsOf(v: unknown): [string, string][] {
  if (!Array.isArray(v)) return [];
  return v.filter((p): p is [string, string] => Array.isArray(p) && p.length === 2 && typeof p[0] === 'string' && typeof p[1] === 'string');
}

/** The `results/` directory of a libcni cache dir. */
export class ResultsCache {
  readonly dir: string;
  constructor(cacheDir: string) {
    this.dir = join(cacheDir, 'results');
  }

  /** Returns the file for an attachment, as libcni's getCacheFilePath. */
  path(network: string, containerId: string, ifName: string): string {
    if (!network || !containerId || !ifName) {
      throw new CniError(CniCode.InvalidEnv, 'cache file path requires network name, container ID and interface name',
        `got network "${network}", container "${containerId}", ifname "${ifName}"`);
    }
    return join(this.dir, `${network}-${containerId}-${ifName}`);
  }

  /** Writes (or replaces) an attachment's entry. */
  write(e: Omit<CacheFile, 'kind'>): string {
    const file = this.path(e.networkName, e.containerId, e.ifName);
    const out: CacheFile = { kind: CACHE_KIND, containerId: e.containerId, config: e.config, ifName: e.ifName, networkName: e.networkName };
    if (e.netns) out.netns = e.netns;
    if (e.cniArgs?.length) out.cniArgs = e.cniArgs;
    if (e.capabilityArgs && Object.keys(e.capabilityArgs).length) out.capabilityArgs = e.capabilityArgs;
    if (e.result) out.result = e.result;
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const tmp = join(this.dir, `.${e.networkName}-${e.containerId}-${e.ifName}.tmp${process.pid}`);
    writeFileSync(tmp, JSON.stringify(out), { mode: 0o600 });
    renameSync(tmp, file);
    return file;
  }

  /**
   * Reads an attachment's entry. Returns undefined when there is none; throws CniError 6 when
   * the file exists but cannot be read as either format (callers on DEL discard it, as libcni ≥1.2).
   */
  read(network: string, containerId: string, ifName: string): CachedAttachment | undefined {
    const file = this.path(network, containerId, ifName);
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT') return undefined;
      throw new CniError(CniCode.IoFailure, `cannot read cached result ${file}`, (err as Error).message, { cause: err });
    }
    const e = decode(file, text);
    if (!e) throw new CniError(CniCode.DecodingFailure, `cannot parse cached result ${file}`, 'it is neither a cniCacheV1 entry nor a CNI result');
    if (e.legacy) {
      e.containerId = containerId;
      e.ifName = ifName;
      e.networkName = network;
    }
    return e;
  }

  /** Removes an attachment's entry; a missing file is fine. */
  remove(network: string, containerId: string, ifName: string): void {
    try {
      unlinkSync(this.path(network, containerId, ifName));
    } catch (err) {
      if ((err as { code?: string }).code !== 'ENOENT') throw err;
    }
  }

  /**
   * Lists the cniCacheV1 entries (libcni GetCachedAttachments), optionally of one network,
   * sorted by file name. Files that do not parse or are legacy are skipped, as libcni does.
   */
  list(network?: string): CachedAttachment[] {
    let names: string[];
    try {
      names = readdirSync(this.dir).sort();
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT') return [];
      throw new CniError(CniCode.IoFailure, `cannot list ${this.dir}`, (err as Error).message, { cause: err });
    }
    const out: CachedAttachment[] = [];
    for (const name of names) {
      if (name.startsWith('.')) continue;
      if (network && !name.startsWith(`${network}-`)) continue;
      let text: string;
      try { text = readFileSync(join(this.dir, name), 'utf8'); } catch { continue; }
      const e = decode(join(this.dir, name), text);
      if (!e || e.legacy || !e.ifName || !e.networkName) continue;
      if (network && e.networkName !== network) continue;
      out.push(e);
    }
    return out;
  }
}

/** Decodes a cache file's text; undefined when it is not JSON or has no usable shape. */
export function decode(file: string, text: string): CachedAttachment | undefined {
  let raw: unknown;
  try { raw = JSON.parse(text); } catch { return undefined; }
  if (!isRecord(raw)) return undefined;
  if (raw.kind !== CACHE_KIND) {
    return { file, containerId: '', ifName: '', networkName: '', netns: '', cniArgs: [], capabilityArgs: {}, config: Buffer.alloc(0), result: raw, legacy: true };
  }
  return {
    file,
    containerId: typeof raw.containerId === 'string' ? raw.containerId : '',
    ifName: typeof raw.ifName === 'string' ? raw.ifName : '',
    networkName: typeof raw.networkName === 'string' ? raw.networkName : '',
    netns: typeof raw.netns === 'string' ? raw.netns : '',
    cniArgs: pairsOf(raw.cniArgs),
    capabilityArgs: isRecord(raw.capabilityArgs) ? raw.capabilityArgs : {},
    config: typeof raw.config === 'string' ? Buffer.from(raw.config, 'base64') : Buffer.alloc(0),
    result: isRecord(raw.result) ? raw.result : undefined,
    legacy: false,
  };
}

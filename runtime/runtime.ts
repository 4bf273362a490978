/**
 * CniRuntime: what libcni's api.go is for Go runtimes. It runs a network config list against one
 * attachment (container id + ifname + netns): ADD in order passing each result on as the next
 * plugin's prevResult, DEL in reverse with the cached final result, CHECK in order with the
 * cached result, STATUS, and GC with the still-valid attachments. It builds each plugin's stdin
 * (list name and negotiated version injected, capabilities turned into runtimeConfig), runs the
 * plugin through an `Exec` (exec.ts: child processes by default, FakeExec in unit tests) and
 * keeps the libcni-compatible results cache (cache.ts).
 *
 * It is a library: it reads neither the environment nor argv (the base environment for plugins
 * is passed in) and prints nothing (progress goes to `onEvent`). The cnikit command is one
 * caller; a daemon can be another.
 *
 * Where it differs from libcni, on purpose:
 * - A failed ADD runs DEL, in reverse, for every plugin it reached (the failing one included,
 *   since DEL is idempotent), so a half-made attachment leaves nothing behind. libcni leaves
 *   that to its caller.
 * - Version negotiation: when a list declares several versions (`cniVersions`), each plugin is
 *   asked with VERSION (in parallel) and the highest version all of them support is used. With
 *   a single version, no VERSION call is made and a plugin that cannot speak it says so itself.
 *   DEL and CHECK reuse the version of the cached result when it is a candidate.
 * - DEL and CHECK fall back to the CNI_ARGS and capability args cached at ADD when the caller
 *   gives none, so `cnikit del` removes port mappings without repeating CAP_ARGS.
 */
import { join } from 'node:path';
import { CniCode, CniError, describe, errorText } from '../pkg/cni/errors.ts';
import { type Result, formatResult, parseResult } from '../pkg/cni/result.ts';
import type { Attachment } from '../pkg/cni/skel.ts';
import { atLeast } from '../pkg/cni/version.ts';
import { validateContainerId, validateIfName, validateNetworkName } from '../pkg/cni/validate.ts';
import { hasCode } from '../pkg/native.ts';
import { type CachedAttachment, ResultsCache } from './cache.ts';
import type { NetworkConfigList, PluginConf } from './conf.ts';
import { type Exec, type PluginCommand, ProcessExec } from './exec.ts';
import { VersionStore } from './version-store.ts';

/** Who and where: libcni's RuntimeConf. */
export interface RuntimeConf {
  containerId: string;
  /** Netns path; may be empty on DEL. */
  netns: string;
  ifName: string;
  /** CNI_ARGS as pairs (cnitool splits the env string). */
  args: [string, string][];
  /** Capability arguments; each reaches a plugin as runtimeConfig only if the plugin declares the capability. */
  capabilityArgs: Record<string, unknown>;
}

/** Progress events, for a CLI to show what a long chain is doing. */
export interface ChainEvent {
  op: 'ADD' | 'DEL' | 'CHECK' | 'STATUS' | 'GC' | 'VERSION' | 'ROLLBACK';
  network: string;
  /** Plugin type, when the event concerns one plugin. */
  type?: string;
  index?: number;
  total?: number;
  note?: string;
}

export interface RuntimeOptions {
  /** CNI_PATH, already split. */
  path: string[];
  /** Cache directory (libcni's cacheDir; `results/` lives under it). */
  cacheDir: string;
  /** Base environment for plugins (the six CNI_* are set on top): a CLI passes its own. */
  env: NodeJS.ProcessEnv;
  /** How plugins are found and run; default: as child processes (ProcessExec). */
  exec?: Exec;
  onEvent?: (e: ChainEvent) => void;
}

function joinArgs(args: [string, string][]): string {
  return args.map(([k, v]) => `${k}=${v}`).join(';');
}

/** Runs network config lists for attachments, with a libcni-compatible results cache. */
export class CniRuntime {
  readonly path: string[];
  readonly cache: ResultsCache;
  private readonly env: NodeJS.ProcessEnv;
  private readonly exec: Exec;
  private readonly onEvent: (e: ChainEvent) => void;
  private readonly versionInfo = new Map<string, Promise<string[]>>();
  private readonly versionStore: VersionStore;

  constructor(o: RuntimeOptions) {
    this.path = o.path;
    this.cache = new ResultsCache(o.cacheDir);
    this.env = o.env;
    this.exec = o.exec ?? new ProcessExec();
    this.onEvent = o.onEvent ?? (() => {});
    this.versionStore = new VersionStore(join(o.cacheDir, 'cnikit', 'plugin-versions.json'));
  }

  /** Returns the plugin executable for `type`, or throws naming CNI_PATH (reason `plugin-not-found`). */
  find(type: string): string {
    if (this.path.length === 0) {
      throw new CniError(CniCode.InvalidEnv, `cannot find plugin "${type}": CNI_PATH is empty`, 'set CNI_PATH or --cni-path to the directories holding the plugins, e.g. /opt/cni/bin', { reason: 'plugin-not-found' });
    }
    try {
      return this.exec.find(type, this.path);
    } catch (err) {
      if (!(err instanceof CniError)) throw err;
      throw new CniError(err.code, err.message, err.details, { cause: err, reason: 'plugin-not-found' });
    }
  }

  /**
   * Asks a plugin which spec versions it supports (VERSION). Answers are memoised per type for
   * the life of this object and on disk in `<cacheDir>/cnikit/plugin-versions.json`, keyed by
   * the plugin's real path, size and mtime (a rebuilt or reinstalled plugin is asked again), so
   * negotiation costs no exec once a plugin has answered.
   */
  pluginVersions(type: string, asked: string): Promise<string[]> {
    let p = this.versionInfo.get(type);
    if (!p) {
      const file = this.find(type);
      const known = this.versionStore.get(file);
      p = known ? Promise.resolve(known) : this.exec.version(file, this.env, asked).then((v) => {
        this.versionStore.set(file, v);
        return v;
      });
      this.versionInfo.set(type, p);
    }
    return p;
  }

  /**
   * Picks the version to run `list` at: the highest candidate every plugin supports. With one
   * candidate no plugin is asked (libcni behaviour). Throws CniError 1 when there is none.
   */
  async negotiate(list: NetworkConfigList, preferred?: string): Promise<string> {
    const cand = list.candidateVersions;
    if (preferred && cand.includes(preferred)) return preferred;
    if (cand.length === 1) return cand[0]!;
    const types = [...new Set(list.plugins.map((p) => p.type))];
    const unknown = types.filter((t) => !this.versionInfo.has(t) && !this.versionStore.get(this.find(t)));
    if (unknown.length) this.onEvent({ op: 'VERSION', network: list.name, total: unknown.length });
    const supported = await Promise.all(types.map((t) => this.pluginVersions(t, cand[0]!)));
    for (const v of cand) if (supported.every((s) => s.includes(v))) return v;
    const detail = types.map((t, i) => `${t}: [${supported[i]!.join(' ')}]`).join('; ');
    throw new CniError(CniCode.IncompatibleVersion, `no CNI version of network "${list.name}" is supported by all its plugins`,
      `the list allows [${cand.join(' ')}]; ${detail}`);
  }

  private pluginEnv(command: string, rt: RuntimeConf | undefined): NodeJS.ProcessEnv {
    // libcni always exports all six variables, empty when they do not apply.
    return {
      ...this.env,
      CNI_COMMAND: command,
      CNI_CONTAINERID: rt?.containerId ?? '',
      CNI_NETNS: rt?.netns ?? '',
      CNI_IFNAME: rt?.ifName ?? '',
      CNI_ARGS: rt ? joinArgs(rt.args) : '',
      CNI_PATH: this.path.join(':'),
    };
  }

  /** Builds one plugin's stdin, as libcni's buildOneConfig + injectRuntimeConfig. */
  buildConfig(list: NetworkConfigList, plugin: PluginConf, version: string, prev: Result | undefined, rt: RuntimeConf | undefined, extra?: Record<string, unknown>): Buffer {
    const obj: Record<string, unknown> = { ...plugin, cniVersion: version, name: list.name };
    if (rt) {
      const rc: Record<string, unknown> = {};
      for (const [cap, on] of Object.entries(plugin.capabilities ?? {})) {
        if (on && rt.capabilityArgs[cap] !== undefined) rc[cap] = rt.capabilityArgs[cap];
      }
      if (Object.keys(rc).length) obj.runtimeConfig = rc;
    }
    if (prev) obj.prevResult = formatResult(prev, version);
    Object.assign(obj, extra);
    return Buffer.from(JSON.stringify(obj));
  }

  private async runPlugin(list: NetworkConfigList, i: number, command: PluginCommand, version: string, prev: Result | undefined, rt: RuntimeConf | undefined, extra?: Record<string, unknown>): Promise<Result | undefined> {
    const plugin = list.plugins[i]!;
    this.onEvent({ op: command, network: list.name, type: plugin.type, index: i, total: list.plugins.length });
    try {
      const file = this.find(plugin.type);
      const stdin = this.buildConfig(list, plugin, version, prev, command === 'STATUS' || command === 'GC' ? undefined : rt, extra);
      const env = this.pluginEnv(command, command === 'STATUS' || command === 'GC' ? undefined : rt);
      return await this.exec.exec(file, command, env, stdin, version);
    } catch (err) {
      const e = err instanceof CniError ? err : new CniError(CniCode.Internal, describe(err));
      throw new CniError(e.code, `plugin type="${plugin.type}" name="${list.name}" failed (${command.toLowerCase()}): ${e.message}`, e.details,
        { cause: err, reason: e.reason ?? (lacksPermission(err) ? 'permission' : undefined) });
    }
  }

  private checkIdentity(list: NetworkConfigList, rt: RuntimeConf): void {
    validateContainerId(rt.containerId);
    validateNetworkName(list.name);
    validateIfName(rt.ifName);
  }

  /**
   * ADD: runs the chain in order, caches and returns the final result. On failure it DELs, in
   * reverse, every plugin it reached, then throws the ADD error (rollback failures go in its
   * details). Throws when the attachment already has a cached result (DEL it first).
   */
  async add(list: NetworkConfigList, rt: RuntimeConf): Promise<Result> {
    this.checkIdentity(list, rt);
    if (!rt.netns) throw new CniError(CniCode.InvalidEnv, 'ADD needs a network namespace path', 'give the netns path, e.g. /run/netns/ctr1');
    const existing = this.cache.path(list.name, rt.containerId, rt.ifName);
    const cached = this.safeRead(list.name, rt);
    if (cached) {
      throw new CniError(CniCode.InvalidEnv, `container "${rt.containerId}" is already attached to network "${list.name}" as ${rt.ifName}`,
        `a cached result exists (${existing}); run DEL first, or pick another --ifname`);
    }
    const version = await this.negotiate(list);
    let result: Result | undefined;
    let reached = -1;
    try {
      for (let i = 0; i < list.plugins.length; i++) {
        reached = i;
        result = await this.runPlugin(list, i, 'ADD', version, result, rt);
      }
    } catch (err) {
      const undoErrors = await this.rollback(list, version, reached, result, rt);
      if (undoErrors.length && err instanceof CniError) {
        throw new CniError(err.code, err.message, [err.details, `rollback: ${undoErrors.join('; ')}`].filter(Boolean).join('; '), { cause: err, reason: err.reason });
      }
      throw err;
    }
    if (!result) throw new CniError(CniCode.Internal, `network "${list.name}" produced no result`);
    this.cache.write({
      containerId: rt.containerId, config: list.bytes.toString('base64'), ifName: rt.ifName, networkName: list.name,
      netns: rt.netns, cniArgs: rt.args, capabilityArgs: rt.capabilityArgs, result: formatResult(result, version),
    });
    return result;
  }

  /** DELs plugins reached..0 after a failed ADD; returns the failures (never throws). */
  private async rollback(list: NetworkConfigList, version: string, reached: number, prev: Result | undefined, rt: RuntimeConf): Promise<string[]> {
    const errors: string[] = [];
    for (let i = reached; i >= 0; i--) {
      this.onEvent({ op: 'ROLLBACK', network: list.name, type: list.plugins[i]!.type, index: i, total: list.plugins.length });
      try {
        await this.runPlugin(list, i, 'DEL', version, atLeast(version, '0.4.0') ? prev : undefined, rt);
      } catch (err) {
        errors.push(errorText(err));
      }
    }
    return errors;
  }

  private safeRead(network: string, rt: RuntimeConf): CachedAttachment | undefined {
    try {
      return this.cache.read(network, rt.containerId, rt.ifName);
    } catch {
      return undefined;
    }
  }

  /** Fills args and capability args from the cache when the caller gave none (see header). */
  private withCached(rt: RuntimeConf, cached: CachedAttachment | undefined): RuntimeConf {
    if (!cached) return rt;
    return {
      ...rt,
      netns: rt.netns || cached.netns,
      args: rt.args.length ? rt.args : cached.cniArgs,
      capabilityArgs: Object.keys(rt.capabilityArgs).length ? rt.capabilityArgs : cached.capabilityArgs,
    };
  }

  private cachedResult(list: NetworkConfigList, cached: CachedAttachment | undefined, version: string): Result | undefined {
    if (!cached?.result) return undefined;
    return parseResult(cached.result, version, `cached result ${cached.file}`);
  }

  /**
   * DEL: runs the chain in reverse, each plugin given the cached final ADD result (≥0.4.0), then
   * removes the cache entry. An unreadable cache entry is discarded (libcni ≥1.2). The first
   * failing plugin stops the chain and the entry is kept, so DEL can be retried.
   */
  async del(list: NetworkConfigList, rt: RuntimeConf): Promise<void> {
    this.checkIdentity(list, rt);
    let cached: CachedAttachment | undefined;
    try {
      cached = this.cache.read(list.name, rt.containerId, rt.ifName);
    } catch {
      this.cache.remove(list.name, rt.containerId, rt.ifName);
    }
    const cachedVersion = typeof cached?.result?.cniVersion === 'string' ? cached.result.cniVersion : undefined;
    const version = await this.negotiate(list, cachedVersion);
    let prev: Result | undefined;
    if (atLeast(version, '0.4.0')) {
      try {
        prev = this.cachedResult(list, cached, version);
      } catch {
        prev = undefined; // an unusable cached result is dropped, as libcni ≥1.2 does
      }
    }
    const r = this.withCached(rt, cached);
    for (let i = list.plugins.length - 1; i >= 0; i--) await this.runPlugin(list, i, 'DEL', version, prev, r);
    this.cache.remove(list.name, rt.containerId, rt.ifName);
  }

  /** CHECK: in order with the cached result; a no-op when `disableCheck`. Needs ≥0.4.0 and a cached ADD. */
  async check(list: NetworkConfigList, rt: RuntimeConf): Promise<void> {
    this.checkIdentity(list, rt);
    const cached = this.cache.read(list.name, rt.containerId, rt.ifName);
    const cachedVersion = typeof cached?.result?.cniVersion === 'string' ? cached.result.cniVersion : undefined;
    const version = await this.negotiate(list, cachedVersion);
    if (!atLeast(version, '0.4.0')) {
      throw new CniError(CniCode.IncompatibleVersion, `configuration version "${version}" does not support the CHECK command`, 'CHECK needs cniVersion 0.4.0 or later');
    }
    if (list.disableCheck) return;
    if (!cached?.result) {
      throw new CniError(CniCode.UnknownContainer, `no cached result for container "${rt.containerId}" on network "${list.name}" (${rt.ifName})`,
        `nothing was added with this container id and ifname, or the cache is elsewhere (looked in ${this.cache.dir})`, { reason: 'not-cached' });
    }
    const prev = this.cachedResult(list, cached, version);
    const r = this.withCached(rt, cached);
    for (let i = 0; i < list.plugins.length; i++) await this.runPlugin(list, i, 'CHECK', version, prev, r);
  }

  /**
   * STATUS: asks every plugin whether an ADD could succeed; stops at the first that says no
   * (its error carries code 50 or 51). Versions before 1.1.0 have no STATUS: returns false then.
   */
  async status(list: NetworkConfigList): Promise<boolean> {
    const version = await this.negotiate(list);
    if (!atLeast(version, '1.1.0')) return false;
    for (let i = 0; i < list.plugins.length; i++) await this.runPlugin(list, i, 'STATUS', version, undefined, undefined);
    return true;
  }

  /**
   * GC (libcni ≥1.2): unless `disableGC`, DELs every cached attachment of this network that is
   * not in `valid` (with its cached netns, args and capability args), then sends GC with the
   * valid list to every plugin (≥1.1.0). Continues past errors and throws them all at the end.
   * Returns the attachments it removed.
   */
  async gc(list: NetworkConfigList, valid: Attachment[]): Promise<CachedAttachment[]> {
    if (list.disableGC) return [];
    const keep = new Set(valid.map((a) => `${a.containerID}\0${a.ifname}`));
    const errors: string[] = [];
    const removed: CachedAttachment[] = [];
    for (const c of this.cache.list(list.name)) {
      if (keep.has(`${c.containerId}\0${c.ifName}`)) continue;
      try {
        await this.del(list, { containerId: c.containerId, ifName: c.ifName, netns: c.netns, args: c.cniArgs, capabilityArgs: c.capabilityArgs });
        removed.push(c);
      } catch (err) {
        errors.push(errorText(err));
      }
    }
    const version = await this.negotiate(list);
    if (atLeast(version, '1.1.0')) {
      const attachments = valid.map((a) => ({ containerID: a.containerID, ifname: a.ifname }));
      // libcni sends both keys: spec 1.1.0's text named it cni.dev/attachments.
      const extra = { 'cni.dev/valid-attachments': attachments, 'cni.dev/attachments': attachments };
      for (let i = 0; i < list.plugins.length; i++) {
        try {
          await this.runPlugin(list, i, 'GC', version, undefined, undefined, extra);
        } catch (err) {
          errors.push(errorText(err));
        }
      }
    }
    if (errors.length) throw new CniError(CniCode.Internal, `GC of network "${list.name}" had ${errors.length} error(s)`, errors.join('; '));
    return removed;
  }
}

/**
 * True when a plugin failed for lack of privileges. A plugin is another process: the errno it hit
 * reaches the runtime only as the text of its error object, so this reads that text (a foreign
 * process's output, never a message of our own), besides any errno in the cause chain.
 */
function lacksPermission(err: unknown): boolean {
  if (hasCode(err, 'EPERM', 'EACCES')) return true;
  return err instanceof CniError && /\b(EPERM|EACCES)\b|operation not permitted|permission denied/i.test(errorText(err));
}

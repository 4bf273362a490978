/**
 * How the runtime reaches plugins: the `Exec` seam (libcni's pkg/invoke `Exec`) and its real
 * implementation, `ProcessExec`, which runs each plugin as a child process. CniRuntime talks only
 * to an Exec, so its sequencing (chain order, prevResult, rollback, versions, the cache) is
 * unit-tested with FakeExec (fake-exec.ts) and no process at all.
 *
 * ProcessExec finds plugins as libcni's FindInPath does, execs them through pkg/cni/invoke.ts
 * (the same code a plugin uses to exec its IPAM delegate) and asks VERSION itself. Both are
 * retried while the exec fails with ETXTBSY ("text file busy": the file is being written, by an
 * install or a build), as libcni does. It never runs a plugin in-process: a runtime must see
 * exactly what cnitool would.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { CniCode, CniError, describe } from '../pkg/cni/errors.ts';
import { decodePluginError, execPlugin, findInPath } from '../pkg/cni/invoke.ts';
import type { Result } from '../pkg/cni/result.ts';
import { hasCode } from '../pkg/native.ts';

/** The verbs the runtime sends to a plugin's chain (VERSION goes through `Exec.version`). */
export type PluginCommand = 'ADD' | 'DEL' | 'CHECK' | 'STATUS' | 'GC';

/** What the runtime needs to run plugins. */
export interface Exec {
  /** Returns the executable of plugin `type`: the first regular file of that name in `paths`. Throws when there is none. */
  find(type: string, paths: string[]): string;
  /**
   * Runs `file` for `command` with exactly `env` (CNI_COMMAND included) and `stdin`. Returns the
   * result, decoded at `version`, for ADD and nothing for the other verbs; throws the CniError
   * the plugin reported.
   */
  exec(file: string, command: PluginCommand, env: NodeJS.ProcessEnv, stdin: Buffer, version: string): Promise<Result | undefined>;
  /** Asks `file` which spec versions it supports (VERSION, `cniVersion` on stdin) with `env` as the base environment. */
  version(file: string, env: NodeJS.ProcessEnv, cniVersion: string): Promise<string[]>;
}

export interface BusyRetry {
  /** Further attempts after the first (libcni: 5). */
  retries?: number;
  /** Wait between attempts (libcni: 1 s). */
  delayMs?: number;
}

/**
 * Runs fn again while it fails with ETXTBSY anywhere in its error's cause chain, at most
 * `retries` more times, `delayMs` apart.
 */
export async function retryBusy<T>(fn: () => T | Promise<T>, o: BusyRetry = {}): Promise<T> {
  const retries = o.retries ?? 5;
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (!hasCode(err, 'ETXTBSY') || attempt >= retries) throw err;
      await sleep(o.delayMs ?? 1000);
    }
  }
}

/** The Exec that runs plugins as child processes. */
export class ProcessExec implements Exec {
  private readonly busy: BusyRetry;
  constructor(busy: BusyRetry = {}) {
    this.busy = busy;
  }

  find(type: string, paths: string[]): string {
    return findInPath(type, paths);
  }

  exec(file: string, command: PluginCommand, env: NodeJS.ProcessEnv, stdin: Buffer, version: string): Promise<Result | undefined> {
    return retryBusy(() => execPlugin(file, command, env, stdin, version), this.busy);
  }

  version(file: string, env: NodeJS.ProcessEnv, cniVersion: string): Promise<string[]> {
    return retryBusy(() => versionOf(file, env, cniVersion), this.busy);
  }
}

/** Runs `file` with VERSION and returns its supportedVersions. */
function versionOf(file: string, env: NodeJS.ProcessEnv, cniVersion: string): Promise<string[]> {
  // Loaded here, as in invoke.ts: node:child_process costs start-up that most commands skip.
  const { spawn } = process.getBuiltinModule('node:child_process');
  return new Promise((resolve, reject) => {
    // libcni sets the other variables to "dummy" for VERSION. spawn throws ETXTBSY synchronously,
    // which rejects this promise (and retryBusy tries again).
    const child = spawn(file, [], {
      env: { ...env, CNI_COMMAND: 'VERSION', CNI_CONTAINERID: 'dummy', CNI_NETNS: 'dummy', CNI_IFNAME: 'dummy', CNI_PATH: 'dummy' },
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString('utf8'); });
    child.on('error', (err) => reject(new CniError(CniCode.Internal, `failed to run plugin ${file}`, describe(err), { cause: err })));
    child.on('close', (code) => {
      try { resolve(parseVersionOutput(file, code, out)); } catch (err) { reject(err); }
    });
    // Some plugins answer VERSION without reading stdin (the reference ones do) and may be gone
    // before it is written: EPIPE here is harmless, the answer is on stdout.
    child.stdin.on('error', () => {});
    child.stdin.end(JSON.stringify({ cniVersion }));
  });
}

/**
 * Reads a VERSION answer: the supportedVersions of a plugin that exited with `code` after
 * printing `out`; throws the CniError it reported, or one saying the answer cannot be read.
 */
export function parseVersionOutput(file: string, code: number | null, out: string): string[] {
  if (code !== 0) {
    const e = decodePluginError(out);
    throw e ? new CniError(e.code, `${file} VERSION: ${e.message}`, e.details) : new CniError(CniCode.Internal, `${file} VERSION exited with ${code}`, out.trim() || undefined);
  }
  let parsed: { supportedVersions?: unknown; cniVersion?: unknown } | undefined;
  try { parsed = JSON.parse(out) as typeof parsed; } catch { /* handled below */ }
  if (parsed && Array.isArray(parsed.supportedVersions)) return parsed.supportedVersions.filter((v): v is string => typeof v === 'string');
  if (parsed && parsed.cniVersion === '0.2.0') return ['0.1.0', '0.2.0']; // the one version allowed to omit supportedVersions
  throw new CniError(CniCode.DecodingFailure, `cannot read the VERSION output of ${file}`, out.trim().slice(0, 200));
}

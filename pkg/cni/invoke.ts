/**
 * Delegation to another plugin (IPAM), like the reference's pkg/invoke: find `type` in CNI_PATH,
 * run it with the same environment (only CNI_COMMAND may change) and the same config on stdin,
 * pass its stderr through, and read its result or error.
 *
 * When the plugin found in CNI_PATH is our own executable of that type (same directory as the
 * executable the call came through, `CmdArgs.self`, after symlinks) and the caller passes its
 * handlers in `inProcess`, it runs in-process: the same code, on-disk state and kernel handles as
 * exec'ing it, without a second ~25 ms Node start. The caller's table is explicit (bridge gets it
 * through its factory); there is no registry.
 */
import { realpathSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { CniCode, CniError, describe } from './errors.ts';
import { type Result, parseResult } from './result.ts';
import { type CmdArgs, type Command, type Plugin, validAttachments } from './skel.ts';

/** Handlers that may run in-process, by CNI type. */
export type InProcessPlugins = Readonly<Record<string, Plugin>>;

/** Returns the first regular file named `type` in `paths`, as libcni's FindInPath. */
export function findInPath(type: string, paths: string[]): string {
  if (type.includes('/')) throw new CniError(CniCode.InvalidConfig, `invalid plugin type "${type}"`, 'a plugin type must not contain "/"');
  for (const dir of paths) {
    const p = join(dir, type);
    try {
      if (statSync(p).isFile()) return p;
    } catch { /* not in this directory */ }
  }
  throw new CniError(CniCode.Internal, `failed to find plugin "${type}" in path [${paths.join(' ')}]`);
}

function isOwnExecutable(found: string, type: string, self: string): boolean {
  if (!self) return false;
  try {
    return realpathSync(found) === realpathSync(join(dirname(realpathSync(self)), type));
  } catch {
    return false;
  }
}

/**
 * Runs `type` for `command` with the caller's env and stdin, returning its result (ADD) or
 * nothing: in-process with `inProcess[type]` when CNI_PATH resolves `type` to our own executable,
 * else by exec'ing what CNI_PATH found.
 */
export async function delegate(type: string, command: Exclude<Command, 'VERSION'>, a: CmdArgs, inProcess: InProcessPlugins = {}): Promise<Result | undefined> {
  const found = findInPath(type, a.path);
  const local = Object.hasOwn(inProcess, type) ? inProcess[type] : undefined;
  if (local && isOwnExecutable(found, type, a.self)) {
    const sub: CmdArgs = { ...a, command };
    switch (command) {
      case 'ADD': return local.add(sub);
      case 'DEL': await local.del(sub); return undefined;
      case 'CHECK': await local.check(sub); return undefined;
      case 'STATUS': await local.status?.(sub); return undefined;
      case 'GC': await local.gc?.(sub, validAttachments(sub.conf)); return undefined;
    }
  }
  return execPlugin(found, command, a.env, a.stdinData, a.conf.cniVersion);
}

/** Execs a plugin binary and decodes its output; used for delegates and by the runtime. */
export function execPlugin(file: string, command: string, env: NodeJS.ProcessEnv, stdin: Buffer, version: string): Result | undefined {
  // Loaded here, not at the top: node:child_process costs ~4 ms of start-up, and the common
  // delegate (our own host-local) runs in-process without it.
  const { spawnSync } = process.getBuiltinModule('node:child_process');
  const child = spawnSync(file, [], {
    env: { ...env, CNI_COMMAND: command }, input: stdin, stdio: ['pipe', 'pipe', 'inherit'], maxBuffer: 64 << 20,
  });
  // EPIPE only means the plugin exited without reading all of stdin (the Go skel checks its env
  // before it reads stdin): its exit status and error object are still there to report.
  const epipe = (child.error as NodeJS.ErrnoException | undefined)?.code === 'EPIPE' && (child.status !== null || child.signal !== null);
  if (child.error && !epipe) throw new CniError(CniCode.Internal, `failed to run plugin ${file}`, describe(child.error), { cause: child.error });
  const out = child.stdout.toString('utf8').trim();
  if (child.status !== 0) {
    throw decodePluginError(out) ?? new CniError(CniCode.Internal, `netplugin failed: ${file} exited with ${child.status ?? child.signal}`, out || undefined);
  }
  if (command !== 'ADD') return undefined;
  let raw: unknown;
  try { raw = JSON.parse(out); } catch {
    throw new CniError(CniCode.DecodingFailure, `failed to parse result of ${file}`, out.slice(0, 200));
  }
  return parseResult(raw, version, `result of ${file}`);
}

/**
 * Decodes the error object a failed plugin printed (`{code, msg, details}`) into the CniError it
 * reports; undefined when its stdout holds no such object.
 */
export function decodePluginError(stdout: string): CniError | undefined {
  let parsed: { code?: unknown; msg?: unknown; details?: unknown } | undefined;
  try { parsed = JSON.parse(stdout) as typeof parsed; } catch { return undefined; }
  if (!parsed || typeof parsed.code !== 'number' || typeof parsed.msg !== 'string') return undefined;
  return new CniError(parsed.code as CniCode, parsed.msg, typeof parsed.details === 'string' ? parsed.details : undefined);
}

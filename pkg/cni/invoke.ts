/**
 * Delegation to another plugin (IPAM), like the reference's pkg/invoke: find `type` in CNI_PATH,
 * run it with the same environment (only CNI_COMMAND may change) and the same config on stdin,
 * pass its stderr through to the call's caller, and read its result or error.
 *
 * When the plugin found in CNI_PATH is our own executable of that type (same directory as the
 * executable the call came through, `CmdArgs.self`, after symlinks) and the caller passes its
 * handlers in `inProcess`, it runs in-process: the same code, on-disk state and kernel handles as
 * exec'ing it, without a second ~25 ms Node start. The caller's table is explicit (bridge gets it
 * through its factory); there is no registry.
 *
 * A delegate that is exec'd runs as a child process waited for asynchronously (execPluginAsync):
 * in a long-lived engine the other calls go on meanwhile, and the child's stderr goes to this
 * call's stderr (CmdArgs.stderr: the engine's frames to the caller), not to the process's own.
 * execPlugin, blocking with stderr inherited, is the runtime's (runtime/exec.ts ProcessExec).
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
  return execPluginAsync(found, command, a.env, a.stdinData, a.conf.cniVersion, a.stderr ?? writeStderr);
}

function writeStderr(s: string): void {
  process.stderr.write(s);
}

/** What a plugin's run gave back. */
export interface PluginOutcome {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  /** A failure to start it (ENOENT, EACCES, ETXTBSY); EPIPE on its stdin is not one. */
  error?: Error;
}

/**
 * Decodes what a plugin's run gave back as libcni does: the result (ADD) or nothing, else the
 * CniError it reported. Shared by both execs and by in-process runs (cnikit/own-exec.ts).
 */
export function decodePluginOutcome(file: string, command: string, version: string, o: PluginOutcome): Result | undefined {
  if (o.error) throw new CniError(CniCode.Internal, `failed to run plugin ${file}`, describe(o.error), { cause: o.error });
  const out = o.stdout.trim();
  if (o.status !== 0) {
    throw decodePluginError(out) ?? new CniError(CniCode.Internal, `netplugin failed: ${file} exited with ${o.status ?? o.signal}`, out || undefined);
  }
  if (command !== 'ADD') return undefined;
  let raw: unknown;
  try { raw = JSON.parse(out); } catch {
    throw new CniError(CniCode.DecodingFailure, `failed to parse result of ${file}`, out.slice(0, 200));
  }
  return parseResult(raw, version, `result of ${file}`);
}

/** The most a plugin may print on stdout (a result is a few KiB). */
const MAX_STDOUT = 64 << 20;

/**
 * Execs a plugin binary without blocking the event loop and decodes its output; its stderr goes
 * to `stderr` as it comes (decoded as UTF-8 across chunks). Used for exec'd delegates.
 */
export function execPluginAsync(file: string, command: string, env: NodeJS.ProcessEnv, stdin: Buffer, version: string, stderr: (s: string) => void): Promise<Result | undefined> {
  // Loaded here, not at the top: node:child_process costs ~4 ms of start-up, and the common
  // delegate (our own host-local) runs in-process without it.
  const { spawn } = process.getBuiltinModule('node:child_process');
  return new Promise((resolve, reject) => {
    const settle = (o: PluginOutcome) => {
      try { resolve(decodePluginOutcome(file, command, version, o)); } catch (err) { reject(err); }
    };
    let child: import('node:child_process').ChildProcessWithoutNullStreams;
    try {
      child = spawn(file, [], { env: { ...env, CNI_COMMAND: command }, stdio: ['pipe', 'pipe', 'pipe'] });
    } catch (err) {
      return settle({ status: null, signal: null, stdout: '', error: err as Error }); // ETXTBSY is thrown, not emitted
    }
    const out: Buffer[] = [];
    let size = 0;
    let error: Error | undefined;
    child.stdout.on('data', (d: Buffer) => {
      size += d.length;
      if (size <= MAX_STDOUT) out.push(d);
      else if (!error) { error = new Error(`more than ${MAX_STDOUT} bytes on stdout`); child.kill('SIGKILL'); }
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (s: string) => stderr(s));
    child.on('error', (err) => { error ??= err; });
    // 'error' is a failure to start it (ENOENT, EACCES) or the stdout limit: it never ran as a plugin.
    child.on('close', (status, signal) => settle({ status, signal, stdout: Buffer.concat(out).toString('utf8'), ...(error ? { error } : {}) }));
    // EPIPE only means the plugin exited without reading all of stdin (the Go skel checks its env
    // before it reads stdin): its exit status and error object are still there to report.
    child.stdin.on('error', () => {});
    child.stdin.end(stdin);
  });
}

/** Execs a plugin binary, blocking until it ends, with stderr inherited; decodes its output. The runtime's. */
export function execPlugin(file: string, command: string, env: NodeJS.ProcessEnv, stdin: Buffer, version: string): Result | undefined {
  const { spawnSync } = process.getBuiltinModule('node:child_process');
  const child = spawnSync(file, [], {
    env: { ...env, CNI_COMMAND: command }, input: stdin, stdio: ['pipe', 'pipe', 'inherit'], maxBuffer: MAX_STDOUT,
  });
  // EPIPE only means the plugin exited without reading all of stdin: see execPluginAsync.
  const epipe = (child.error as NodeJS.ErrnoException | undefined)?.code === 'EPIPE' && (child.status !== null || child.signal !== null);
  return decodePluginOutcome(file, command, version, { status: child.status, signal: child.signal, stdout: child.stdout?.toString('utf8') ?? '', ...(child.error && !epipe ? { error: child.error } : {}) });
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

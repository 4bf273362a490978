/**
 * The plugin's side of the responder's life: make sure one runs for a records directory, start
 * it when it does not (re-executing the dnsname bundle with `--responder`, detached, so it
 * outlives the plugin call), and replace one that hangs.
 *
 * The plugin calls `ensureResponder` while holding the records directory lock, so twenty ADDs
 * at once start exactly one responder: the first finds none and starts it, the others find it
 * answering. This module stays light (no dns2; node:child_process is loaded on first use): it
 * runs in every plugin exec that starts or reloads the responder.
 *
 * A responder may also run inside the warm engine (responder/in-process.ts): its pid file then
 * holds the engine's pid. "Hung" means the same for both: the process that holds the run
 * directory's lock does not answer its control socket within 3 s. An engine is killed for that
 * only when it has that very lock file open (/proc/PID/fd), so a stale pid file naming an engine
 * (after a SIGKILL, the pid reused) never gets a healthy engine killed; an engine silent for 3 s
 * serves no call either, and it keeps nothing that is not on disk.
 */
import { closeSync, mkdirSync, openSync, readFileSync, readdirSync, readlinkSync, realpathSync, renameSync, statSync, unlinkSync } from 'node:fs';
import { basename, join } from 'node:path';
import { CniCode, CniError } from '../pkg/cni/errors.ts';
import { type ControlCommand, type ControlReply, RUN_FILES, controlRequest } from './control.ts';

/**
 * Node flags for the responder process: a small young generation keeps a 10,000-name responder
 * near 100 MB resident instead of ~170 MB (the default 16 MB semi-spaces stay committed after
 * the reload's garbage is gone), at no measurable cost in queries per second.
 */
export const RESPONDER_NODE_FLAGS = ['--max-semi-space-size=2'];

function readPid(runDir: string): number | undefined {
  try {
    const pid = Number(readFileSync(join(runDir, RUN_FILES.pid), 'utf8').trim());
    return Number.isInteger(pid) && pid > 1 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** True when process `pid` has `file` open (an fd of it names that very file). */
function holdsOpen(pid: number, file: string): boolean {
  let want: string;
  try {
    want = realpathSync(file);
  } catch {
    return false;
  }
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return false;
  }
  for (const fd of fds) {
    try { if (readlinkSync(`/proc/${pid}/fd/${fd}`) === want) return true; } catch { /* closed meanwhile */ }
  }
  return false;
}

/** True when `pid` is the responder of `runDir`: a responder process for it, or an engine holding its lock. */
function isOurResponder(pid: number, runDir: string): boolean {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    if (argv.includes('--responder') && argv.includes(runDir)) return true;
    const at = argv.findIndex((a) => basename(a) === 'launch.cjs');
    return at >= 0 && argv[at + 1] === 'engine' && holdsOpen(pid, join(runDir, RUN_FILES.lock));
  } catch {
    return false;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A responder's log is rotated (one old copy kept) when a new responder starts and it is larger. */
const LOG_ROTATE_BYTES = 4 << 20;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function tail(file: string, lines = 5): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

export interface EnsureOptions {
  recordsDir: string;
  runDir: string;
  /** argv that starts this executable (`[node, bundle]`); `--responder ...` is appended. */
  command: string[];
  /** The caller's environment; the responder gets it minus CNI_*. */
  env: NodeJS.ProcessEnv;
  /** The command that asks for the reload (default `reload`; `reload netns=<ino>` also reports on that netns). */
  reload?: ControlCommand;
}

/**
 * Makes sure a responder serves `recordsDir` and has read its current files. Must be called
 * with the records lock held. A hung responder (pid alive, control socket silent) is killed and
 * replaced. Returns the responder's reply to `reload`.
 */
export async function ensureResponder(o: EnsureOptions): Promise<ControlReply> {
  const running = await controlRequest(o.runDir, o.reload ?? 'reload', 3000);
  if (running?.ok) return running;
  await clearHung(o.runDir, running);
  return startResponder(o);
}

/**
 * After the control socket of `runDir` gave no usable answer (`running`): kills the responder
 * named by the pid file if it is alive and ours (hung), never this process, and waits (2 s at
 * most) until it is gone.
 */
export async function clearHung(runDir: string, running: ControlReply | undefined): Promise<void> {
  // Not answering: either not running, exiting, or hung.
  const old = readPid(runDir);
  if (old === process.pid) return;
  if (old && old !== running?.pid && alive(old) && isOurResponder(old, runDir)) {
    try { process.kill(old, 'SIGKILL'); } catch { /* gone meanwhile */ }
  }
  if (old) for (let i = 0; i < 100 && alive(old) && isOurResponder(old, runDir); i++) await sleep(20);
}

/** Rotates the responder log of `runDir` when it has grown large (one old copy kept); returns its path. */
export function rotateLog(runDir: string): string {
  const logFile = join(runDir, RUN_FILES.log);
  try {
    if (statSync(logFile).size > LOG_ROTATE_BYTES) renameSync(logFile, `${logFile}.1`); // keep one old log
  } catch { /* no log yet */ }
  return logFile;
}

/** Starts a responder (detached, outliving this process) and waits until it answers. */
export async function startResponder(o: EnsureOptions): Promise<ControlReply> {
  mkdirSync(o.runDir, { recursive: true, mode: 0o700 });
  try { unlinkSync(join(o.runDir, RUN_FILES.sock)); } catch { /* none */ }
  const logFile = rotateLog(o.runDir);
  const logFd = openSync(logFile, 'a', 0o600);
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(o.env)) if (!k.startsWith('CNI_')) env[k] = v;
  const [cmd, ...args] = o.command;
  const { spawn } = await import('node:child_process');
  let exited: string | undefined;
  try {
    const child = spawn(cmd!, [...args, '--responder', '--records', o.recordsDir, '--run-dir', o.runDir], {
      detached: true, stdio: ['ignore', logFd, logFd], env, cwd: '/',
    });
    child.on('exit', (code, signal) => { exited = signal ? `killed by ${signal}` : `exited with code ${code}`; });
    child.on('error', (err) => { exited = err.message; });
    child.unref();
  } finally {
    closeSync(logFd);
  }
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const r = await controlRequest(o.runDir, 'ping', 1000);
    // A fresh responder has read everything; a netns question still needs asking.
    if (r?.ok) return o.reload && o.reload !== 'reload' ? (await controlRequest(o.runDir, o.reload, 3000)) ?? r : r;
    if (exited) break;
    await sleep(15);
  }
  throw new CniError(CniCode.Internal, 'failed to start the DNS responder',
    `${exited ?? 'no answer on its control socket within 10 s'}; last log lines of ${logFile}:\n${tail(logFile)}`);
}

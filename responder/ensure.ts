/**
 * The plugin's side of the responder's life: make sure one runs for a records directory, start
 * it when it does not (re-executing the dnsname bundle with `--responder`, detached, so it
 * outlives the plugin call), and replace one that hangs.
 *
 * The plugin calls `ensureResponder` while holding the records directory lock, so twenty ADDs
 * at once start exactly one responder: the first finds none and starts it, the others find it
 * answering. This module stays light (no dns2; node:child_process is loaded on first use): it
 * runs in every plugin exec that starts or reloads the responder.
 */
import { closeSync, mkdirSync, openSync, readFileSync, renameSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
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

function isOurResponder(pid: number, runDir: string): boolean {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return argv.includes('--responder') && argv.includes(runDir);
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
  // Not answering: either not running, exiting, or hung.
  const old = readPid(o.runDir);
  if (old && old !== running?.pid && alive(old) && isOurResponder(old, o.runDir)) {
    try { process.kill(old, 'SIGKILL'); } catch { /* gone meanwhile */ }
  }
  if (old) for (let i = 0; i < 100 && alive(old) && isOurResponder(old, o.runDir); i++) await sleep(20);
  return startResponder(o);
}

/** Starts a responder (detached, outliving this process) and waits until it answers. */
export async function startResponder(o: EnsureOptions): Promise<ControlReply> {
  mkdirSync(o.runDir, { recursive: true, mode: 0o700 });
  try { unlinkSync(join(o.runDir, RUN_FILES.sock)); } catch { /* none */ }
  const logFile = join(o.runDir, RUN_FILES.log);
  try {
    if (statSync(logFile).size > LOG_ROTATE_BYTES) renameSync(logFile, `${logFile}.1`); // keep one old log
  } catch { /* no log yet */ }
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

/**
 * The responder's control protocol, both ends: the run directory's files, the one reply type,
 * the client the plugin uses (`controlRequest`) and the server the responder runs
 * (`serveControl`).
 *
 * - `<runDir>/responder.lock`  flock'd by the running responder for its whole life (one per dir)
 * - `<runDir>/responder.pid`   its pid (for `kill -HUP`, and to kill a hung one)
 * - `<runDir>/responder.sock`  control socket: one line in (`ping` | `reload` |
 *                              `reload netns=<inode> [pid=<pid>]` | `yield`), one JSON line out (a
 *                              ControlReply), then the server closes the connection
 * - `<runDir>/responder.log`   its stderr (structured JSON lines)
 *
 * `ping` answers ok while the responder serves; `reload` re-reads the records first and answers
 * ok once it has (also when that reload left no network and the responder is on its way out);
 * with `netns=<inode>` the reply also says whether 127.0.0.11 listens in that container's netns
 * (what ADD waits for in that mode), and `pid=<pid>` names the caller, through whose mount
 * namespace (`/proc/<pid>/root`) the netns path can be opened while it waits. `yield` asks a
 * responder process to give the run directory up (the warm engine takes it over): it answers ok,
 * then closes its sockets, removes its run files, releases the lock and exits; a responder hosted
 * in an engine refuses (ok false), so two engines never take it from each other.
 * Liveness is "the control socket answers", not "the pid exists" (pids are reused). This module
 * stays light (node:net is loaded on first use, it costs ~10 ms of start-up): the plugin loads
 * it in every exec.
 */
import { unlinkSync } from 'node:fs';
import type { Server } from 'node:net';
import { join } from 'node:path';
import type { Logger } from '../pkg/log.ts';
import type { HostProbe } from './liveness.ts';
import type { ServerStats } from './server.ts';

export const RUN_FILES = {
  lock: 'responder.lock',
  pid: 'responder.pid',
  sock: 'responder.sock',
  log: 'responder.log',
} as const;

/** A command the control socket takes. */
export type ControlCommand = 'ping' | 'reload' | 'yield' | `reload netns=${number}` | `reload netns=${number} pid=${number}`;

/** What the responder answers on its control socket. */
export interface ControlReply {
  ok: boolean;
  /** The pid of the process serving the socket. */
  pid: number;
  /** Networks served (0 once the responder is stopping). */
  networks: number;
  /** Addresses bound, as `listenKey` gives them (`10.89.0.1|53`). */
  listening: string[];
  /** The query counters. */
  stats?: ServerStats;
  /** Asked with `reload netns=<inode>`: whether that container's 127.0.0.11 listens. */
  netns?: { ino: number; listening: boolean; error?: string };
  /** Why the command failed (ok false). */
  error?: string;
}

/** Sends one command; resolves undefined when nothing (or nothing sensible) answers in time. */
export async function controlRequest(runDir: string, cmd: ControlCommand, timeoutMs: number): Promise<ControlReply | undefined> {
  const net = await import('node:net');
  return new Promise((resolve) => {
    const s = net.connect({ path: join(runDir, RUN_FILES.sock) });
    let data = '';
    let settled = false;
    const finish = (r: ControlReply | undefined) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      s.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => finish(undefined), timeoutMs);
    s.on('error', () => finish(undefined));
    s.on('connect', () => s.write(`${cmd}\n`));
    s.on('data', (d) => {
      data += d;
      if (data.length > 65536) finish(undefined);
    });
    s.on('end', () => {
      try {
        const r = JSON.parse(data) as ControlReply;
        finish(typeof r === 'object' && r && typeof r.pid === 'number' ? r : undefined);
      } catch {
        finish(undefined);
      }
    });
  });
}

/** What the control socket reports on and acts upon: the running responder. */
export interface ControlTarget {
  /** Re-reads the records (judging bindings with `probe` when given); rejects when that failed. */
  reload(reason: string, probe?: HostProbe): Promise<unknown>;
  /** True once the responder is stopping (closed, or no network left). */
  readonly stopping: boolean;
  readonly networks: number;
  /** Addresses bound (`listenKey` form). */
  readonly bound: string[];
  readonly stats: ServerStats;
  /** Whether 127.0.0.11 listens in the netns of inode `ino` (undefined: not wanted there). */
  netnsState?(ino: number): { listening: boolean; error?: string } | undefined;
  /** Tells the target that process `pid` (the caller, alive while it waits) sees the netns of inode `ino` at its recorded path. */
  reachThrough?(ino: number, pid: number): void;
  /**
   * Gives the run directory up once the reply is out (`yield`): closes everything and stops.
   * Absent: the target does not yield (a responder hosted in an engine).
   */
  yieldUp?(): void;
}

const MAX_COMMAND_BYTES = 256;
const CONNECTION_TIMEOUT_MS = 5000;

/** The reply to a command, from the target's state now. */
function replyOf(t: ControlTarget, ok: boolean, error?: string): ControlReply {
  const r: ControlReply = { ok, pid: process.pid, networks: t.stopping ? 0 : t.networks, listening: t.bound, stats: t.stats };
  if (error !== undefined) r.error = error;
  return r;
}

/**
 * Answers one control command for `t` as the control socket does (a process that hosts the
 * responder asks it so, without a socket).
 */
export async function answerCommand(cmd: string, t: ControlTarget, probe?: HostProbe): Promise<ControlReply> {
  const netns = /^reload netns=([1-9]\d{0,15})(?: pid=([1-9]\d{0,9}))?$/.exec(cmd);
  if (netns) {
    const ino = Number(netns[1]);
    if (netns[2]) t.reachThrough?.(ino, Number(netns[2]));
    await t.reload('control', probe);
    const r = replyOf(t, true);
    r.netns = { ino, ...(t.netnsState?.(ino) ?? { listening: false, error: 'no network in 127.0.0.11 mode has a live container in that netns' }) };
    return r;
  }
  switch (cmd) {
    case 'ping': return replyOf(t, !t.stopping);
    case 'reload': await t.reload('control', probe); return replyOf(t, true);
    case 'yield':
      if (!t.yieldUp || t.stopping) return replyOf(t, false, t.stopping ? 'stopping already' : 'this responder does not yield its run directory');
      t.yieldUp();
      return replyOf(t, true);
    default: return replyOf(t, false, `unknown command "${cmd}"`);
  }
}

/**
 * Serves the control socket of `runDir` for `target` (replacing a stale socket file); resolves
 * once it listens. Errors after that are logged.
 */
export async function serveControl(runDir: string, target: ControlTarget, log: Logger): Promise<Server> {
  const net = await import('node:net');
  const sockPath = join(runDir, RUN_FILES.sock);
  try { unlinkSync(sockPath); } catch { /* none */ }
  const server = net.createServer((c) => {
    let line: string | undefined = '';
    c.setTimeout(CONNECTION_TIMEOUT_MS, () => c.destroy());
    c.on('error', () => c.destroy());
    c.on('data', (d) => {
      if (line === undefined) return; // one command per connection
      line += d;
      if (line.length > MAX_COMMAND_BYTES) { c.destroy(); return; }
      const nl = line.indexOf('\n');
      if (nl < 0) return;
      const cmd = line.slice(0, nl).trim();
      line = undefined;
      answerCommand(cmd, target).then(
        (r) => c.end(JSON.stringify(r) + '\n'),
        (err: Error) => c.end(JSON.stringify(replyOf(target, false, err.message)) + '\n'));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(sockPath, () => { server.off('error', reject); resolve(); });
  });
  server.on('error', (err) => log.error('control socket error', { error: err.message }));
  return server;
}

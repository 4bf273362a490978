/**
 * The engine proper: one long-lived process per network namespace (and build) that runs CNI
 * calls handed over by launchers, through exactly the code path of a fresh plugin process:
 * `runPlugin(plugin, io)` with an Io made of the request (env, self, stdin) whose stdout and
 * stderr go back to the launcher as frames (engine/protocol.ts).
 *
 * It holds nothing that is not on disk: every call reads and writes the same files, kernel
 * objects and locks a fresh process would, so killing it at any moment loses only the calls in
 * flight, which their launchers report as CNI errors. It answers only root (SO_PEERCRED), reads
 * at most MAX_REQUEST_BYTES per request, and answers a bad request with a CNI error.
 *
 * It stops on its own (engine/watch.ts): after `idleSeconds` without a call, when its netns is
 * kept by nothing else, or when its build changes; it then stops accepting (new calls find no
 * engine and run fresh, starting the next one), finishes the calls it took on, and resolves
 * `stopped`. Calls run concurrently, each with its own Io: netlink replies arrive on the event
 * loop (AsyncNetlinkSocket), locks are waited for without blocking it (LockedDir), and the
 * kernel handles come from one SharedKernel (pkg/kernel.ts), which keeps the host's rtnetlink and
 * nf_tables sockets open across calls (closing a NETLINK_NETFILTER socket after a change waits
 * 10-13 ms for an RCU grace period) and gives each call its own sockets in other namespaces.
 * What it does not do: exit the process (engine/main.ts does).
 *
 * DNS: every call gets `responders` (an InProcessResponders, responder/in-process.ts), through
 * which dnsname hosts the responder of a run directory in this process when no responder answers
 * there (a responder process that does keeps serving it). The records stay on disk, so killing
 * the engine still loses nothing but the calls in flight. While it serves DNS it never idle-exits;
 * stopping for a new build, on request, on SIGTERM or an internal error, it hands each hosted
 * responder over to a responder process before `stopped` resolves, so DNS goes on; stopping
 * because its netns is left by everyone else, it just closes them.
 *
 * A caller in another mount namespace may see other files at the same path: a netns bind-mounted
 * only in its own mount namespace (`cnikit run` under `ip netns exec`) is an empty file here.
 * Such a call is declined (closed before the ack, so its launcher runs it fresh) unless its
 * CNI_NETNS is the same file in both views. A relative CNI_NETNS is always declined (it names a
 * file in the caller's working directory). Other paths in a config are taken as the engine sees
 * them, as are the umask and the limits of the process that started the engine.
 */
import { appendFileSync, readlinkSync, statSync, writeSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import type { Server, Socket } from 'node:net';
import { CniCode } from '../pkg/cni/errors.ts';
import { type Io, type Plugin, runPlugin } from '../pkg/cni/skel.ts';
import { LATEST_VERSION } from '../pkg/cni/version.ts';
import { SharedKernel } from '../pkg/open-kernel.ts';
import { AsyncNetlinkSocket } from '../pkg/netlink/async-socket.ts';
import { isoTime } from '../pkg/log.ts';
import { native } from '../pkg/native.ts';
import { CONFIRM, type CallRequest, type EngineStatus, MAX_REQUEST_BYTES, type Request, RequestError, frame, parseRequest, requestLength } from './protocol.ts';
import { Stats } from './stats.ts';
import { InProcessResponders } from '../responder/in-process.ts';
import { hostProbe } from '../responder/liveness.ts';
import { BuildWatch, netnsPinned, ownNetns } from './watch.ts';
import { monotonicMs } from '../pkg/clock.ts';

/** The V8 heap's used and committed bytes: what of the RSS is JavaScript's. */
function heapOf(): { used: number; total: number; external: number } {
  const m = process.memoryUsage();
  return { used: m.heapUsed, total: m.heapTotal, external: m.external };
}

export interface EngineOptions {
  /** The abstract socket name (engine/protocol.ts engineSocketName). */
  name: string;
  /** The bundle directory served (for status). */
  lib: string;
  plugins: Map<string, Plugin>;
  /** Exit after this long without a call; 0 = never. */
  idleSeconds: number;
  /** Files whose change means a new build (the engine bundle, the addon). */
  buildFiles: string[];
  /** Where the engine's own events go (JSON lines): a file, '-' for stderr, undefined = nowhere. */
  logFile?: string;
  /** How often the stop conditions are checked. */
  checkEveryMs?: number;
  /** The largest request read. */
  maxRequestBytes?: number;
  /** How long a connection may take to send its request. */
  requestTimeoutMs?: number;
}

/** A CNI error line for a request the engine cannot run. */
function errorLine(code: number, msg: string, details?: string, cniVersion = LATEST_VERSION): string {
  return JSON.stringify({ cniVersion, code, msg, ...(details ? { details } : {}) }) + '\n';
}

/** The cniVersion errors of this call carry: the config's, as skel would use. */
function versionOf(stdin: Buffer): string {
  try {
    const v = (JSON.parse(stdin.toString('utf8')) as { cniVersion?: unknown }).cniVersion;
    return typeof v === 'string' && v ? v : v === undefined || v === '' ? '0.1.0' : LATEST_VERSION;
  } catch {
    return LATEST_VERSION;
  }
}

/** A path's identity as seen from here: device and inode, or the error. */
function identity(path: string): string {
  try {
    const s = statSync(path);
    return `${s.dev}:${s.ino}`;
  } catch (err) {
    return `error ${(err as { code?: string }).code}`;
  }
}

function mountNs(pid: number | 'self'): string {
  try {
    return readlinkSync(`/proc/${pid}/ns/mnt`);
  } catch {
    return 'unknown';
  }
}

/** True when the call's CNI_NETNS is the same file for caller `pid` as for the engine. */
export function sameView(pid: number, netns: string | undefined, ownMountNs = mountNs('self')): boolean {
  if (netns && !isAbsolute(netns)) return false;
  if (mountNs(pid) === ownMountNs) return true;
  return !netns || identity(netns) === identity(`/proc/${pid}/root${netns}`);
}

const NETNS_LEFT = 'network namespace left by everyone else';

function fdOf(sock: Socket): number | undefined {
  const fd = (sock as unknown as { _handle?: { fd?: number } })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

export class Engine {
  private readonly o: Required<Omit<EngineOptions, 'logFile'>> & { logFile?: string };
  private readonly stats = new Stats();
  private readonly started = Date.now();
  private readonly netns = ownNetns();
  private readonly mountNs = mountNs('self');
  private declined = 0;
  private dropped = 0;
  private readonly build: BuildWatch;
  private server: Server | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly kernel = new SharedKernel({ openSocket: (protocol, netns) => AsyncNetlinkSocket.open(protocol, netns) });
  private inFlight = 0;
  private lastActivity = Date.now();
  private finishing = false;
  /** The DNS responders hosted in this process for the calls (responder/in-process.ts). */
  readonly responders = new InProcessResponders({
    log: (msg, fields) => this.log(msg, fields),
    onChange: () => { this.lastActivity = Date.now(); },
    fullGcAfterReload: true,
    // Why the kept socket: opening an rtnetlink socket per reload cost more than the reload's checks.
    probe: () => hostProbe(() => this.kernel.hostRoute()),
  });
  private stopping: string | undefined;
  private resolveStopped: ((reason: string) => void) | undefined;
  /** Resolves with the reason once the engine has stopped accepting and every call it took on ended. */
  readonly stopped: Promise<string>;

  constructor(o: EngineOptions) {
    this.o = { checkEveryMs: 2000, maxRequestBytes: MAX_REQUEST_BYTES, requestTimeoutMs: 10_000, ...o };
    this.build = new BuildWatch(o.buildFiles);
    this.stopped = new Promise((resolve) => { this.resolveStopped = resolve; });
  }

  /** Writes one event to the engine's log, if it has one. */
  log(msg: string, fields: Record<string, unknown> = {}): void {
    if (!this.o.logFile) return;
    const line = JSON.stringify({ time: isoTime(), pid: process.pid, msg, ...fields }) + '\n';
    try {
      if (this.o.logFile === '-') writeSync(2, line);
      else appendFileSync(this.o.logFile, line);
    } catch { /* logging never stops the engine */ }
  }

  /** Listens on the abstract name; rejects (EADDRINUSE) when another engine has it. */
  async listen(): Promise<void> {
    const net = await import('node:net');
    const server = net.createServer({ allowHalfOpen: true }, (sock) => this.accept(sock));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ path: this.o.name, backlog: 512 }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.log('server error', { error: String(err) }));
    this.server = server;
    this.timer = setInterval(() => this.check(), this.o.checkEveryMs);
    this.log('listening', { lib: this.o.lib, netns: this.netns, idle: this.o.idleSeconds });
  }

  /** Stops accepting, lets the calls in flight finish, then resolves `stopped`. */
  stop(reason: string): void {
    if (this.stopping) return;
    this.stopping = reason;
    this.log('stopping', { reason, inFlight: this.inFlight });
    clearInterval(this.timer);
    this.server?.close();
    this.settle();
  }

  /** Returns the status reply. */
  status(): EngineStatus {
    return {
      pid: process.pid, uptime: Math.round((Date.now() - this.started) / 10) / 100, calls: this.stats.calls,
      inFlight: this.inFlight, declined: this.declined, dropped: this.dropped, perCall: this.stats.summary(), rss: process.memoryUsage.rss(), heap: heapOf(), idle: this.o.idleSeconds,
      lib: this.o.lib, netns: this.netns, dns: this.responders.status(),
    };
  }

  /** Once stopping and no call is in flight: hands DNS over (or closes it), then resolves `stopped`. */
  private settle(): void {
    if (!this.stopping || this.inFlight !== 0 || this.finishing) return;
    this.finishing = true;
    const reason = this.stopping;
    void (async () => {
      try {
        if (reason === NETNS_LEFT) await this.responders.closeAll();
        else await this.responders.handOver();
      } catch (err) {
        this.log('DNS hand-over failed', { error: String(err) });
      }
      this.kernel.close();
      this.resolveStopped?.(reason);
    })();
  }

  private check(): void {
    const idleMs = Date.now() - this.lastActivity;
    // Serving a live network's DNS is activity: the responder stops by itself once none is left.
    const idle = this.inFlight === 0 && this.responders.serving === 0;
    if (this.o.idleSeconds > 0 && idle && idleMs >= this.o.idleSeconds * 1000) return this.stop('idle');
    const changed = this.build.changed();
    if (changed) return this.stop(`new build (${changed} changed)`);
    if (!netnsPinned(this.netns)) this.stop(NETNS_LEFT);
  }

  private accept(sock: Socket): void {
    const reply = (line: string, code: number) => {
      sock.end(Buffer.concat([frame('o', line), frame('x', Buffer.from([code]))]));
    };
    sock.on('error', () => { /* the launcher went away; nothing to tell it */ });
    const fd = fdOf(sock);
    let uid: number | undefined;
    let pid = 0;
    try {
      if (fd !== undefined) ({ uid, pid } = native().peerCred(fd));
    } catch { /* unknown: refused below */ }
    if (uid !== 0) {
      this.log('refused a caller', { uid });
      return reply(errorLine(CniCode.Internal, 'permission denied', 'only root may call the cnikit engine'), 1);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let need = 6;
    // request: reading it; confirm: acknowledged, waiting for the launcher's 'g'; done: taken on or answered.
    let phase: 'request' | 'confirm' | 'done' = 'request';
    let call: CallRequest | undefined;
    const timer = setTimeout(() => {
      if (phase === 'confirm') return drop('no confirmation within the time limit');
      fail(new RequestError('no complete request within the time limit'));
    }, this.o.requestTimeoutMs);
    const done = () => {
      phase = 'done';
      clearTimeout(timer);
      sock.removeAllListeners('data');
    };
    const fail = (err: RequestError) => {
      if (phase !== 'request') return;
      done();
      this.log('bad request', { error: err.message });
      reply(err.oversized ? errorLine(CniCode.IoFailure, 'request too large for the cnikit engine', err.message)
        : errorLine(CniCode.DecodingFailure, 'malformed cnikit engine request', err.message), 1);
    };
    // The launcher gave up waiting for the ack and runs the call itself: it must not run here too.
    const drop = (why: string) => {
      if (phase !== 'confirm') return;
      done();
      this.dropped++;
      this.log('call dropped before it started', { why, type: call?.type, command: call?.env.CNI_COMMAND });
      sock.destroy();
    };
    const handle = (req: Request) => {
      if (req.kind !== 'C') {
        done();
        reply(JSON.stringify(this.status()), 0);
        if (req.kind === 'Q') this.stop('stop requested');
        return;
      }
      // Closing before the ack lets the launcher run the call itself: when stopping, and when
      // the caller's files are not ours.
      if (this.stopping || !sameView(pid, req.env.CNI_NETNS, this.mountNs)) {
        if (!this.stopping) this.declined++;
        done();
        return void sock.destroy();
      }
      sock.write(frame('a', errorLine(CniCode.Internal, 'the cnikit engine ended during the call', 'the call may have been partly done; DEL cleans up', versionOf(req.stdin))));
      call = req;
      if (req.version === 1) {
        done();
        return this.start(req, sock);
      }
      phase = 'confirm';
    };
    // The request is read as far as its lengths say (parsed once, when it is all there).
    sock.on('data', (d: Buffer) => {
      if (phase === 'confirm') {
        if (d[0] !== CONFIRM || d.length !== 1) return drop('not a confirmation');
        done();
        return this.start(call!, sock);
      }
      chunks.push(d);
      size += d.length;
      if (size > this.o.maxRequestBytes) return fail(new RequestError(`request larger than ${this.o.maxRequestBytes} bytes`, true));
      if (size < need) return;
      const buf = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
      chunks.splice(0, chunks.length, buf);
      let req: Request | undefined;
      try {
        const len = requestLength(buf, this.o.maxRequestBytes);
        if ('need' in len) return void (need = len.need);
        if (size < len.total) return void (need = len.total);
        req = parseRequest(buf, this.o.maxRequestBytes);
      } catch (err) {
        return fail(err as RequestError);
      }
      if (req) handle(req);
    });
    sock.on('end', () => {
      if (phase === 'request') fail(new RequestError('incomplete request'));
      else drop('the launcher closed before confirming');
    });
    sock.on('close', () => drop('the launcher closed before confirming'));
  }

  private start(req: CallRequest, sock: Socket): void {
    this.inFlight++;
    this.lastActivity = Date.now();
    void this.run(req, sock).catch((err: unknown) => this.log('call failed inside the engine', { error: String(err) })).finally(() => {
      this.inFlight--;
      this.lastActivity = Date.now();
      this.settle();
    });
  }

  private async run(req: CallRequest, sock: Socket): Promise<void> {
    const send = (type: 'a' | 'o' | 'e' | 'x', data: string | Buffer) => {
      if (!sock.destroyed) sock.write(frame(type, data));
    };
    const command = req.env.CNI_COMMAND ?? '';
    const version = versionOf(req.stdin);
    const plugin = this.o.plugins.get(req.type);
    let code = 1;
    const t0 = monotonicMs();
    // Why corked: what the call prints and its exit code then reach the launcher in one write
    // (each write wakes it; end() below flushes them together).
    sock.cork();
    if (!plugin) {
      send('o', errorLine(CniCode.Internal, `the cnikit engine does not serve plugin type "${req.type}"`, undefined, version));
    } else {
      // A plugin that execs another executable (a delegate not run in-process) blocks this
      // process until it ends: that call must not come back here. Nothing else reads the flag.
      req.env.CNIKIT_ENGINE = 'off';
      const io: Io = {
        env: req.env, self: req.self, readStdin: () => req.stdin,
        stdout: (s) => send('o', s), stderr: (s) => send('e', s), kernel: this.kernel.forCall(), responders: this.responders,
      };
      code = await runPlugin(plugin, io);
    }
    // Keys stay few: an unknown command (answered with an error) is counted as one.
    const known = ['ADD', 'DEL', 'CHECK', 'STATUS', 'GC', 'VERSION'].includes(command) && plugin;
    this.stats.record(`${known ? req.type : 'other'} ${known ? command : 'other'}`, monotonicMs() - t0);
    if (!sock.destroyed) sock.end(frame('x', Buffer.from([code & 0xff])));
    else sock.uncork();
  }
}

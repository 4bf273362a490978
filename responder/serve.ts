/**
 * Running the responder over a records directory, in two forms: the per-host daemon the dnsname
 * plugin starts (a run directory with its lock, control socket and pid file; it stops when no
 * live network is left), and the standalone resolver on explicit addresses (`cnikit dns serve`;
 * it follows the records directory by itself). `serveDns` starts either, in this process, and
 * returns the handle that reloads and stops it. Signals, argv and process-wide settings (the
 * V8 flag behind `fullGcAfterReload`) are main.ts's business: serveDns itself keeps no process
 * globals, so it can run inside a longer-lived process too.
 *
 * Reloads, liveness checks and prunes are queued, one at a time, so a burst of `reload`
 * commands or directory events never runs two reads of the directory at once. Every
 * `checkIntervalMs` a bounded share of the containers' namespaces is checked (and every fifth
 * time the networks' bridges), so records of a container or network that went away without DEL
 * stop answering, and 127.0.0.11 sockets in a deleted namespace are closed, within seconds. The
 * daemon then prunes them from disk when the records lock is free.
 */
import { type FSWatcher, mkdirSync, readFileSync, renameSync, unlinkSync, watch, writeFileSync } from 'node:fs';
import type { Server } from 'node:net';
import { join } from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { formatIP, parseHostPort } from '../pkg/ip/cidr.ts';
import { type Logger, stderrLogger } from '../pkg/log.ts';
import { native } from '../pkg/native.ts';
import { type HeldLock, LockedDir } from '../pkg/store/locked-dir.ts';
import type { ListenAddr } from './backend.ts';
import type { CacheOptions } from './cache.ts';
import { type ControlCommand, type ControlReply, RUN_FILES, answerCommand, serveControl } from './control.ts';
import { type HostProbe, openHostProbe } from './liveness.ts';
import { tryPruneRecordsDir } from './prune.ts';
import { RECORDS_SUFFIX } from './records.ts';
import { DnsServer } from './server.ts';

export interface ServeOptions {
  /** Directory of `<network>.records` files. */
  recordsDir: string;
  /** Listen here (standalone); absent = on each network's gateway addresses. */
  listen?: ListenAddr[];
  /** Control socket, pid file and lock live here (the plugin-started responder). */
  runDir?: string;
  /** Stop when the records hold no network (the plugin-started responder). */
  exitWhenEmpty?: boolean;
  /**
   * Give the run directory up when asked (control `yield`): the responder process, so that a
   * warm engine can take DNS into its own process. A host (the engine) leaves it off.
   */
  yields?: boolean;
  /** Follow changes to the records directory without a signal (standalone). */
  watch?: boolean;
  forwardTimeoutMs?: number;
  resolvConf?: string;
  /**
   * Where the responder logs (JSON lines). The entry that starts it makes it from its own
   * environment; absent, it is this process's stderr with CNIKIT_DEBUG from process.env.
   */
  log?: Logger;
  /** How often liveness is checked, in ms (default 1000; 0 = never: reloads only). */
  checkIntervalMs?: number;
  /** Container namespaces checked per interval at most (default 2000). */
  checkBudget?: number;
  /** The cache of forwarded answers (false = none). */
  cache?: CacheOptions | false;
  /** Opens a probe of the host for the liveness checks (tests inject one). */
  probe?: () => HostProbe;
  /**
   * Run a full V8 garbage collection a while after reloads, to give back what building left
   * (sets the process-wide --expose-gc flag: for the daemon's own process only).
   */
  fullGcAfterReload?: boolean;
}

/** A running resolver. */
export interface DnsService {
  server: DnsServer;
  /** Re-reads the records (what SIGHUP does); resolves the number of networks served. */
  reload(reason?: string, probe?: HostProbe): Promise<number>;
  /** Closes sockets and run files; resolves when everything is closed. */
  close(): Promise<void>;
  /** Resolves when the service has stopped (closed, or no network left with exitWhenEmpty). */
  done: Promise<void>;
  /** True once it is stopping (closed, or no network left with exitWhenEmpty). */
  readonly stopping: boolean;
  /** Networks served. */
  readonly networks: number;
  /** Names answered, over all networks. */
  readonly names: number;
  /** Answers a control command as its control socket would (for a process hosting it; `probe`: the caller's, see ResponderNeed). */
  command(cmd: ControlCommand, probe?: HostProbe): Promise<ControlReply>;
}

/** Parses `ADDR:PORT`, `[V6]:PORT` or a bare address (port 53) to listen on; throws on anything else. */
export function parseListen(s: string): ListenAddr {
  const hp = parseHostPort(s, 53);
  if (!hp) throw new Error(`invalid listen address "${s}" (want ADDR:PORT)`);
  if (hp.ip.value === 0n) throw new Error(`refusing to listen on the wildcard address "${s}": give the address the clients use`);
  return { address: formatIP(hp.ip), port: hp.port };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A full V8 garbage collection of the kind V8 does under memory pressure ("last resort": it
 * compacts the old generation, shrinks the young one and gives pooled pages back): building
 * the backend for 10,000 names leaves tens of MB of garbage in the old generation, which V8
 * would otherwise keep mapped for a long time in an idle daemon, and a plain full GC frees the
 * objects but keeps most of their pages (measured in the engine at 1000 names: RSS of V8's
 * pages 23 MiB after a plain one). `--expose-gc` set at run time is the documented way to get `gc`.
 */
type Gc = (o?: { type: 'major'; execution: 'sync'; flavor: 'last-resort' }) => void;
let fullGc: Gc | undefined;
/** V8's used old generation right after the last full GC of ours (undefined: none yet). */
let usedAfterGc: number | undefined;
/** Bytes used in V8's old generation (every space but the young one, which scavenges empty). */
function oldGenerationUsed(): number {
  let n = 0;
  for (const s of v8.getHeapSpaceStatistics()) if (!s.space_name.startsWith('new_')) n += s.space_used_size;
  return n;
}
function v8FullGc(): void {
  if (!fullGc) {
    v8.setFlagsFromString('--expose-gc');
    fullGc = vm.runInNewContext('gc') as Gc;
  }
  fullGc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
  usedAfterGc = oldGenerationUsed();
  // What the GC's own threads (and building) freed stays in their malloc arenas otherwise.
  try { native().mallocTrim(); } catch { /* no addon: nothing to trim with */ }
}

/**
 * When the full GC runs after a reload: GC_DELAY_MS later if the old generation grew by
 * GC_GROWTH_BYTES since the last one (a bulk load, many ADDs, a prune), else once the responder
 * has been left alone for GC_IDLE_MS (any reload starts the wait again). Why not always after
 * GC_DELAY_MS: a full GC also throws away optimized code that embeds objects it freed (V8's
 * "embedded weak objects cleared" deopts: the launcher connection's stream functions, Buffer
 * reads, ours), so the next call runs unoptimized; on a host whose ADDs come seconds apart,
 * every ADD was such a call (bench/dns-engine.ts --gap 2600: 1.28-1.69x the reference before,
 * 0.90x after). V8's own memory reducer does the same kind of GC after ~8 s of quiet.
 */
function grownSinceGc(): boolean {
  return usedAfterGc === undefined || oldGenerationUsed() - usedAfterGc >= GC_GROWTH_BYTES;
}

const GC_DELAY_MS = 2000;
const GC_GROWTH_BYTES = 4 * 1024 * 1024;
const GC_IDLE_MS = 10_000;
/** Every this many checks, the bridges are checked too. */
const LINK_CHECK_EVERY = 5;

/** Takes the run directory's lock, waiting up to `waitMs` for an exiting predecessor. */
async function takeLock(runDir: string, waitMs: number): Promise<HeldLock | undefined> {
  const dir = new LockedDir(runDir, 0o700, RUN_FILES.lock);
  const deadline = Date.now() + waitMs;
  for (;;) {
    const held = dir.tryLock();
    if (held) return held;
    if (Date.now() >= deadline) return undefined;
    await sleep(20);
  }
}

/**
 * Starts a resolver over `o.recordsDir` in this process: takes the run directory's lock, loads
 * the records and listens where they say, opens the control socket and writes the pid file,
 * and follows the directory when asked to. Stop it with `close()`.
 */
export async function serveDns(o: ServeOptions): Promise<DnsService> {
  const log = o.log ?? stderrLogger(process.env);
  let lock: HeldLock | undefined;
  if (o.runDir) {
    lock = await takeLock(o.runDir, 5000);
    if (lock === undefined) throw new Error(`another responder holds ${join(o.runDir, RUN_FILES.lock)}`);
  }
  const svc = new Responder(o, log, lock);
  try {
    await svc.reload('start');
    if (svc.stopping) return svc; // no network to serve, and told to stop then
    if (o.runDir) await svc.openRunDir(o.runDir);
    if (o.watch) svc.watchRecords();
    svc.startChecks();
  } catch (err) {
    await svc.close();
    throw err;
  }
  log.info('responder started', { pid: process.pid, records: o.recordsDir, listen: o.listen?.map((l) => `${l.address}:${l.port}`), networks: svc.networks });
  return svc;
}

/** The state of one running resolver: its server, run files, watcher, checks and queue. */
class Responder implements DnsService {
  readonly server: DnsServer;
  readonly done: Promise<void>;
  private readonly o: ServeOptions;
  private readonly log: Logger;
  private readonly lock: HeldLock | undefined;
  private resolveDone!: () => void;
  private control: Server | undefined;
  private watcher: FSWatcher | undefined;
  private checkTimer: NodeJS.Timeout | undefined;
  private gcTimer: NodeJS.Timeout | undefined;
  private checks = 0;
  private closing: Promise<void> | undefined;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(o: ServeOptions, log: Logger, lock: HeldLock | undefined) {
    this.o = o;
    this.log = log;
    this.lock = lock;
    this.server = new DnsServer({
      recordsDir: o.recordsDir, listen: o.listen, forwardTimeoutMs: o.forwardTimeoutMs, resolvConf: o.resolvConf,
      cache: o.cache, probe: o.probe, log,
    });
    this.done = new Promise<void>((r) => { this.resolveDone = r; });
  }

  /** True once closing has begun. */
  get stopping(): boolean {
    return this.closing !== undefined;
  }

  get networks(): number {
    return this.server.networks;
  }

  get names(): number {
    return this.server.names;
  }

  get bound(): string[] {
    return this.server.bound;
  }

  command(cmd: ControlCommand, probe?: HostProbe): Promise<ControlReply> {
    return answerCommand(cmd, this, probe);
  }

  get stats() {
    return this.server.stats;
  }

  netnsState(ino: number): { listening: boolean; error?: string } | undefined {
    return this.server.netnsState(ino);
  }

  reachThrough(ino: number, pid: number): void {
    this.server.reachThrough(ino, pid);
  }

  get yieldUp(): (() => void) | undefined {
    if (!this.o.yields || !this.o.runDir) return undefined;
    return () => {
      this.log.info('giving the run directory up to a warm engine', { pid: process.pid });
      // After the reply is out (control.ts writes it right after this returns).
      setTimeout(() => { void this.close(); }, 10);
    };
  }

  /** Runs `job` after everything queued before it; a closed responder runs nothing. */
  private enqueue<T>(job: () => Promise<T>, ifClosed: T): Promise<T> {
    const p = this.queue.then(() => (this.closing ? ifClosed : job()));
    this.queue = p.catch(() => undefined);
    return p;
  }

  reload(reason = 'request', probe?: HostProbe): Promise<number> {
    return this.enqueue(async () => {
      const r = await this.server.reload(reason, probe);
      this.afterChange();
      await this.pruneIfNeeded();
      await this.stopIfEmpty();
      return r.networks;
    }, 0);
  }

  /** Starts the periodic liveness checks. */
  startChecks(): void {
    const every = this.o.checkIntervalMs ?? 1000;
    if (every <= 0 || this.closing) return;
    this.checkTimer = setInterval(() => { void this.check(); }, every);
    this.checkTimer.unref();
  }

  /** One liveness check: a share of the containers, and every fifth time the bridges. */
  private check(): Promise<void> {
    return this.enqueue(async () => {
      const links = this.checks++ % LINK_CHECK_EVERY === LINK_CHECK_EVERY - 1;
      try {
        if (await this.server.check(this.o.checkBudget ?? 2000, links)) this.afterChange();
        await this.pruneIfNeeded();
        await this.stopIfEmpty();
      } catch (err) {
        this.log.warn('liveness check failed', { error: (err as Error).message });
      }
    }, undefined);
  }

  /** The daemon prunes what was judged dead from disk, when nobody holds the records lock. */
  private async pruneIfNeeded(): Promise<void> {
    if (!this.o.runDir || this.closing || !this.server.needsPrune) return;
    const probe = (this.o.probe ?? openHostProbe)();
    let r;
    try {
      r = await tryPruneRecordsDir(this.o.recordsDir, probe);
    } finally {
      probe.close();
    }
    if (!r) return; // the lock is busy (a plugin call): the next check tries again
    if (!r.removed.length && !r.dropped.length && !r.temps.length) return;
    this.log.info('pruned records', { removed: r.removed, dropped: r.dropped, temps: r.temps });
    await this.server.reload('pruned');
  }

  private async stopIfEmpty(): Promise<void> {
    if (this.server.networks !== 0 || !this.o.exitWhenEmpty || this.closing) return;
    this.log.info('no network left; exiting', { pid: process.pid });
    await this.close();
  }

  private afterChange(): void {
    this.logMemory();
    if (!this.o.fullGcAfterReload) return;
    clearTimeout(this.gcTimer);
    const collect = () => { this.gcTimer = undefined; v8FullGc(); };
    this.gcTimer = setTimeout(() => {
      if (grownSinceGc()) collect();
      else this.gcTimer = setTimeout(collect, GC_IDLE_MS - GC_DELAY_MS).unref();
    }, GC_DELAY_MS).unref();
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      clearInterval(this.checkTimer);
      clearTimeout(this.gcTimer);
      this.watcher?.close();
      if (this.o.runDir) this.removeRunFiles(this.o.runDir);
      this.control?.close();
      await this.server.close();
      this.lock?.release();
      this.log.info('responder stopped', { pid: process.pid });
      this.resolveDone();
    })();
    return this.closing;
  }

  /** Opens the control socket, then publishes the pid (a plugin that sees the pid can talk to us). */
  async openRunDir(runDir: string): Promise<void> {
    this.control = await serveControl(runDir, this, this.log);
    const pidFile = join(runDir, RUN_FILES.pid);
    writeFileSync(`${pidFile}.tmp`, `${process.pid}\n`, { mode: 0o644 });
    renameSync(`${pidFile}.tmp`, pidFile);
  }

  /** Removes the pid file (if still ours) and the socket first, so a plugin that comes next starts a new responder. */
  private removeRunFiles(runDir: string): void {
    const pidFile = join(runDir, RUN_FILES.pid);
    try { if (readFileSync(pidFile, 'utf8').trim() === String(process.pid)) unlinkSync(pidFile); } catch { /* gone */ }
    try { unlinkSync(join(runDir, RUN_FILES.sock)); } catch { /* gone */ }
  }

  /** Reloads 50 ms after the last change to a records file; without a watcher, SIGHUP still works. */
  watchRecords(): void {
    const dir = this.o.recordsDir;
    let t: NodeJS.Timeout | undefined;
    try {
      mkdirSync(dir, { recursive: true });
      this.watcher = watch(dir, (_event, file) => {
        if (file && !String(file).endsWith(RECORDS_SUFFIX)) return;
        clearTimeout(t);
        t = setTimeout(() => { void this.reload('records changed'); }, 50);
      });
    } catch (err) {
      this.log.warn('cannot watch the records directory; reload with SIGHUP', { dir, error: (err as Error).message });
    }
  }

  private logMemory(): void {
    if (!this.log.debugging) return;
    const mem = process.memoryUsage();
    const mb = (n: number) => Math.round(n / 1e5) / 10;
    this.log.debug('memory after reload', { rssMB: mb(mem.rss), heapMB: mb(mem.heapUsed), heapTotalMB: mb(mem.heapTotal), abMB: mb(mem.arrayBuffers), externalMB: mb(mem.external) });
  }
}

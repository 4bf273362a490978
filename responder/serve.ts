/**
 * Running the responder: as the long-lived per-host daemon the dnsname plugin starts
 * (`dnsname --responder --records DIR --run-dir DIR`, one per run directory, guarded by an
 * flock, with a control socket and pid file, exiting when no network is left), or as the
 * standalone resolver `cnikit dns serve --records DIR --listen ADDR:PORT` (the CLI calls
 * `serveDns`). Both reload on SIGHUP; the standalone one also follows changes to the records
 * directory by itself.
 */
import { closeSync, mkdirSync, openSync, readFileSync, renameSync, unlinkSync, watch, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { tryParseIP, formatIP } from '../pkg/ip/cidr.ts';
import { stderrLogger } from '../pkg/log.ts';
import { native } from '../pkg/native.ts';
import { RUN_FILES } from './control.ts';
import { RECORDS_SUFFIX } from './records.ts';
import { DnsServer, type ListenAddr } from './server.ts';

// TODO(shape): the daemon's logger comes from its entry, not from a module global.
const log = stderrLogger(process.env);

export interface ServeOptions {
  /** Directory of `<network>.records` files. */
  recordsDir: string;
  /** Listen here (standalone); absent = on each network's gateway addresses. */
  listen?: ListenAddr[];
  /** Control socket, pid file and lock live here (the plugin-started responder). */
  runDir?: string;
  /** Stop when the records hold no network (the plugin-started responder). */
  exitWhenEmpty?: boolean;
  /** Follow changes to the records directory without a signal (standalone). */
  watch?: boolean;
  forwardTimeoutMs?: number;
  resolvConf?: string;
}

/** A running resolver. */
export interface DnsService {
  server: DnsServer;
  /** Re-reads the records (what SIGHUP does). */
  reload(reason?: string): Promise<number>;
  /** Closes sockets and run files; resolves when everything is closed. */
  close(): Promise<void>;
  /** Resolves when the service has stopped (closed, or no network left with exitWhenEmpty). */
  done: Promise<void>;
}

/** Parses `ADDR:PORT`, `[V6]:PORT` or a bare address (port 53). */
export function parseListen(s: string): ListenAddr {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(s) ?? /^([^:]+):(\d+)$/.exec(s);
  const addr = m ? m[1]! : s;
  const port = m ? Number(m[2]) : 53;
  const ip = tryParseIP(addr);
  if (!ip || !Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`invalid listen address "${s}" (want ADDR:PORT)`);
  if (ip.value === 0n) throw new Error(`refusing to listen on the wildcard address "${s}": give the address the clients use`);
  return { address: formatIP(ip), port };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A full garbage collection after a reload: building the backend for 10,000 names leaves tens
 * of MB of garbage in the old generation, which V8 would otherwise keep mapped for a long time
 * in an idle daemon. (`--expose-gc` set at run time is the documented way to get `gc`.)
 */
let fullGc: (() => void) | undefined;
function collectGarbage(): void {
  if (!fullGc) {
    v8.setFlagsFromString('--expose-gc');
    fullGc = vm.runInNewContext('gc') as () => void;
  }
  fullGc();
}

/** Takes the run directory's lock, waiting up to `waitMs` for an exiting predecessor. */
async function takeLock(runDir: string, waitMs: number): Promise<number | undefined> {
  mkdirSync(runDir, { recursive: true, mode: 0o700 });
  const fd = openSync(join(runDir, RUN_FILES.lock), 'a', 0o600);
  const deadline = Date.now() + waitMs;
  for (;;) {
    if (native().flock(fd, true, false)) return fd;
    if (Date.now() >= deadline) { closeSync(fd); return undefined; }
    await sleep(20);
  }
}

/** Starts a resolver over `o.recordsDir`. */
export async function serveDns(o: ServeOptions): Promise<DnsService> {
  let lockFd: number | undefined;
  if (o.runDir) {
    lockFd = await takeLock(o.runDir, 5000);
    if (lockFd === undefined) throw new Error(`another responder holds ${join(o.runDir, RUN_FILES.lock)}`);
  }
  const server = new DnsServer({ recordsDir: o.recordsDir, listen: o.listen, forwardTimeoutMs: o.forwardTimeoutMs, resolvConf: o.resolvConf });
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => { resolveDone = r; });
  let control: net.Server | undefined;
  let watcher: ReturnType<typeof watch> | undefined;
  let closing: Promise<void> | undefined;
  let queue: Promise<unknown> = Promise.resolve();

  const close = (): Promise<void> => {
    closing ??= (async () => {
      watcher?.close();
      if (o.runDir) {
        // Remove the run files first, so a plugin that comes next starts a new responder.
        const pidFile = join(o.runDir, RUN_FILES.pid);
        try { if (readFileSync(pidFile, 'utf8').trim() === String(process.pid)) unlinkSync(pidFile); } catch { /* gone */ }
        try { unlinkSync(join(o.runDir, RUN_FILES.sock)); } catch { /* gone */ }
      }
      control?.close();
      await server.close();
      if (lockFd !== undefined) closeSync(lockFd);
      log.info('responder stopped', { pid: process.pid });
      resolveDone();
    })();
    return closing;
  };

  const reload = (reason = 'request'): Promise<number> => {
    const p = queue.then(async () => {
      if (closing) return 0;
      const r = await server.reload(reason);
      collectGarbage();
      const mem = process.memoryUsage();
      log.debug('memory after reload', { rssMB: Math.round(mem.rss / 1e5) / 10, heapMB: Math.round(mem.heapUsed / 1e5) / 10, heapTotalMB: Math.round(mem.heapTotal / 1e5) / 10, abMB: Math.round(mem.arrayBuffers / 1e5) / 10, externalMB: Math.round(mem.external / 1e5) / 10 });
      if (r.networks === 0 && o.exitWhenEmpty) {
        log.info('no network left; exiting', { pid: process.pid });
        await close();
      }
      return r.networks;
    });
    queue = p.catch(() => undefined);
    return p;
  };

  try {
    await reload('start');
  } catch (err) {
    await close();
    throw err;
  }
  if (closing) return { server, reload, close, done };

  if (o.runDir) {
    const sockPath = join(o.runDir, RUN_FILES.sock);
    try { unlinkSync(sockPath); } catch { /* none */ }
    control = net.createServer((c) => {
      let line = '';
      c.setTimeout(5000, () => c.destroy());
      c.on('error', () => c.destroy());
      c.on('data', (d) => {
        line += d;
        if (line.length > 256) { c.destroy(); return; }
        const nl = line.indexOf('\n');
        if (nl < 0) return;
        const cmd = line.slice(0, nl).trim();
        const answer = async () => {
          if (cmd === 'reload') await reload('control');
          else if (cmd !== 'ping') return { ok: false, pid: process.pid, networks: server.networks, listening: server.bound, error: `unknown command "${cmd}"` };
          return { ok: !closing || cmd === 'reload', pid: process.pid, networks: closing ? 0 : server.networks, listening: server.bound, stats: server.stats };
        };
        answer().then((r) => c.end(JSON.stringify(r) + '\n'), (err: Error) => c.end(JSON.stringify({ ok: false, pid: process.pid, networks: server.networks, listening: server.bound, error: err.message }) + '\n'));
      });
    });
    await new Promise<void>((resolve, reject) => {
      control!.once('error', reject);
      control!.listen(sockPath, () => { control!.off('error', reject); resolve(); });
    });
    control.on('error', (err) => log.error('control socket error', { error: err.message }));
    const pidFile = join(o.runDir, RUN_FILES.pid);
    writeFileSync(`${pidFile}.tmp`, `${process.pid}\n`, { mode: 0o644 });
    renameSync(`${pidFile}.tmp`, pidFile);
  }

  if (o.watch) {
    let t: NodeJS.Timeout | undefined;
    try {
      mkdirSync(o.recordsDir, { recursive: true });
      watcher = watch(o.recordsDir, (_event, file) => {
        if (file && !String(file).endsWith(RECORDS_SUFFIX)) return;
        clearTimeout(t);
        t = setTimeout(() => { void reload('records changed'); }, 50);
      });
    } catch (err) {
      log.warn('cannot watch the records directory; reload with SIGHUP', { dir: o.recordsDir, error: (err as Error).message });
    }
  }
  log.info('responder started', { pid: process.pid, records: o.recordsDir, listen: o.listen?.map((l) => `${l.address}:${l.port}`), networks: server.networks });
  return { server, reload, close, done };
}

/**
 * Parses the responder's command line: `--responder --records DIR --run-dir DIR` (started by the
 * plugin) or `--serve --records DIR --listen ADDR:PORT...` (standalone; follows the directory).
 */
export function parseServeArgs(argv: string[]): ServeOptions {
  const o: ServeOptions = { recordsDir: '' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const val = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    switch (a) {
      case '--responder': o.exitWhenEmpty = true; break;
      case '--serve': o.exitWhenEmpty = false; o.watch = true; break;
      case '--records': o.recordsDir = val(); break;
      case '--run-dir': o.runDir = val(); break;
      case '--listen': (o.listen ??= []).push(parseListen(val())); break;
      case '--forward-timeout-ms': o.forwardTimeoutMs = Number(val()); break;
      case '--resolv-conf': o.resolvConf = val(); break;
      case '--watch': o.watch = true; break;
      default: throw new Error(`unknown argument "${a}"`);
    }
  }
  if (!o.recordsDir) throw new Error('--records DIR is required');
  return o;
}

/** main() of the responder process: runs until stopped; signals SIGHUP reload, SIGTERM/SIGINT stop. */
export function responderMain(argv: string[]): void {
  let opts: ServeOptions;
  try {
    opts = parseServeArgs(argv);
  } catch (err) {
    log.error('bad responder arguments', { error: (err as Error).message });
    process.exitCode = 2;
    return;
  }
  serveDns(opts).then((svc) => {
    process.on('SIGHUP', () => { void svc.reload('SIGHUP'); });
    process.on('SIGTERM', () => { void svc.close(); });
    process.on('SIGINT', () => { void svc.close(); });
    svc.done.then(() => process.exit(0), () => process.exit(1));
  }, (err: Error) => {
    log.error('responder failed to start', { error: err.message });
    process.exitCode = 1;
  });
}

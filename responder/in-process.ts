/**
 * DNS responders hosted in the warm engine's process (the ResponderHost of responder/host.ts):
 * the engine gives one InProcessResponders to every call (CmdArgs.responders), and dnsname's ADD
 * becomes the records file write plus an in-memory reload, with one process instead of two.
 *
 * A hosted responder is serve.ts's serveDns, as in a responder process: the same run directory
 * lock, control socket and pid file (the engine's pid), the same log file, the same rule that it
 * stops when no live network is left. So a fresh plugin call (no engine, or CNIKIT_ENGINE=off)
 * finds it answering and reloads it over the control socket. A responder process already
 * serving a run directory (a fresh call started it before the engine ran, or a stopping engine
 * handed over to it) is asked to give it up (control `yield`) at the engine's first call there,
 * and the engine hosts it from then on: one process again, with a gap of a few tens of ms in
 * which that directory's queries go unanswered (27 ms in netns-tests/engine-dns; clients retry). Hosted responders never yield, so two
 * engines never take a directory from each other.
 *
 * Lifetime is the engine's business: while `serving` is not zero the engine does not idle-exit;
 * when it stops for a new build or on request, `handOver` replaces each hosted responder with a
 * responder process (the ensure.ts spawn path) under the records lock, so DNS goes on; when its
 * netns is gone, `closeAll` just closes them. Nothing lives only here: a killed engine leaves
 * the records on disk, its sockets (also those at 127.0.0.11 in container namespaces) close with
 * the process, and the next dnsname call serves again from disk. serve.ts and the DNS code are
 * loaded on the first hosted responder, not with the engine.
 */
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { type Logger, createLogger, debugEnabled } from '../pkg/log.ts';
import { LockedDir } from '../pkg/store/locked-dir.ts';
import { type ControlCommand, type ControlReply, controlRequest } from './control.ts';
import { clearHung, rotateLog, startResponder } from './ensure.ts';
import type { ResponderHost, ResponderNeed } from './host.ts';
import type { HostProbe } from './liveness.ts';
import type { DnsService } from './serve.ts';
import { monotonicMs } from '../pkg/clock.ts';

export interface InProcessOptions {
  /** The host's own events (started, stopped, handed over). */
  log?: (msg: string, fields?: Record<string, unknown>) => void;
  /** Called when a hosted responder starts or stops (the engine's idle clock). */
  onChange?: () => void;
  /** A full GC a while after reloads (serve.ts fullGcAfterReload): sets --expose-gc in this process. */
  fullGcAfterReload?: boolean;
  /** Probes of the host for the hosted responders' checks (the engine's: over its kept rtnetlink socket). */
  probe?: () => HostProbe;
}

/** One hosted responder. */
interface Hosted {
  svc: DnsService;
  need: ResponderNeed;
  logFile: LogFile;
  since: number;
}

/** What the engine's status says of one hosted responder. */
export interface HostedStatus {
  runDir: string;
  recordsDir: string;
  networks: number;
  names: number;
  /** Seconds since it started. */
  uptime: number;
}

/** What handOver did for one run directory. */
export interface HandOver {
  runDir: string;
  /** The responder process now serving it (undefined: starting it failed, see error). */
  pid?: number;
  /** Milliseconds from closing ours to the new process answering. */
  ms: number;
  error?: string;
}

/** A log file appended to in JSON lines (the run directory's responder.log); lines after close() are dropped. */
class LogFile {
  readonly log: Logger;
  private fd: number | undefined;

  constructor(path: string, env: NodeJS.ProcessEnv) {
    this.fd = openSync(path, 'a', 0o600);
    this.log = createLogger({ debug: debugEnabled(env), write: (line) => {
      // Why the check: a closed fd's number may already name another file of this process.
      if (this.fd === undefined) return;
      try { writeSync(this.fd, line); } catch { /* logging never stops serving */ }
    } });
  }

  close(): void {
    if (this.fd === undefined) return;
    const fd = this.fd;
    this.fd = undefined;
    closeSync(fd);
  }
}

export class InProcessResponders implements ResponderHost {
  private readonly o: InProcessOptions;
  private readonly hosted = new Map<string, Hosted>();
  private readonly starting = new Map<string, Promise<Hosted>>();
  private closed = false;

  constructor(o: InProcessOptions = {}) {
    this.o = o;
  }

  /** Number of responders this process serves (and is starting). */
  get serving(): number {
    return this.hosted.size + this.starting.size;
  }

  /** Returns what each hosted responder serves. */
  status(): HostedStatus[] {
    const now = Date.now();
    return [...this.hosted.values()].map((h) => ({
      runDir: h.need.runDir, recordsDir: h.need.recordsDir, networks: h.svc.networks, names: h.svc.names, uptime: Math.round((now - h.since) / 100) / 10,
    }));
  }

  /** The hosted responder of `runDir` that still serves (waiting for one being started). */
  private async live(runDir: string): Promise<Hosted | undefined> {
    const h = this.hosted.get(runDir) ?? await this.starting.get(runDir)?.catch(() => undefined);
    return h && !h.svc.stopping ? h : undefined;
  }

  async ensure(need: ResponderNeed): Promise<ControlReply> {
    const cmd = need.reload ?? 'reload';
    const mine = await this.live(need.runDir);
    if (mine) return mine.svc.command(cmd, need.probe);
    if (this.closed) return await controlRequest(need.runDir, cmd, 3000) ?? { ok: false, pid: 0, networks: 0, listening: [], error: 'the engine is stopping' };
    // A responder process serving the directory (started by a fresh call before this engine
    // ran, or by an engine that stopped) gives it up to us; one that does not (hosted by
    // another engine, an older build) goes on serving it.
    const yielded = await controlRequest(need.runDir, 'yield', 3000);
    if (yielded?.ok) return this.takeOver(need, yielded.pid, cmd);
    const running = yielded ? await controlRequest(need.runDir, cmd, 3000) : undefined;
    if (running?.ok) return running;
    await clearHung(need.runDir, running);
    const h = await this.start(need);
    return h.svc.command(cmd, need.probe);
  }

  /**
   * Hosts the run directory that responder process `pid` has just given up (serveDns waits for
   * its lock); if that fails, a new responder process serves it, so DNS is never left without one.
   */
  private async takeOver(need: ResponderNeed, pid: number, cmd: ControlCommand): Promise<ControlReply> {
    const t0 = monotonicMs();
    try {
      const h = await this.start(need);
      const reply = await h.svc.command(cmd, need.probe);
      this.o.log?.('took DNS over from a responder process', { runDir: need.runDir, pid, ms: Math.round(monotonicMs() - t0) });
      return reply;
    } catch (err) {
      this.o.log?.('cannot take DNS over; a responder process serves it', { runDir: need.runDir, error: (err as Error).message });
      return startResponder(need);
    }
  }

  async reload(runDir: string): Promise<void> {
    const mine = await this.live(runDir);
    if (mine) await mine.svc.command('reload').catch(() => undefined);
    else await controlRequest(runDir, 'reload', 3000);
  }

  /** Reloads every hosted responder (the engine's SIGHUP). */
  async reloadAll(reason: string): Promise<void> {
    await Promise.all([...this.hosted.values()].map((h) => h.svc.reload(reason).catch(() => 0)));
  }

  /** Starts a responder for `need` in this process (one start per run directory at a time). */
  private start(need: ResponderNeed): Promise<Hosted> {
    const pending = this.starting.get(need.runDir);
    if (pending) return pending;
    const p = this.serve(need).finally(() => { this.starting.delete(need.runDir); });
    this.starting.set(need.runDir, p);
    return p;
  }

  private async serve(need: ResponderNeed): Promise<Hosted> {
    mkdirSync(need.runDir, { recursive: true, mode: 0o700 });
    const logFile = new LogFile(rotateLog(need.runDir), need.env);
    let svc: DnsService;
    try {
      const { serveDns } = await import('./serve.ts');
      svc = await serveDns({
        recordsDir: need.recordsDir, runDir: need.runDir, exitWhenEmpty: true, log: logFile.log,
        fullGcAfterReload: this.o.fullGcAfterReload, probe: this.o.probe,
      });
    } catch (err) {
      logFile.close();
      throw err;
    }
    const h: Hosted = { svc, need: { ...need, reload: undefined }, logFile, since: Date.now() };
    if (svc.stopping) {
      logFile.close();
      return h; // nothing to serve: it stopped at once
    }
    this.hosted.set(need.runDir, h);
    this.o.log?.('serving DNS', { runDir: need.runDir, recordsDir: need.recordsDir, networks: svc.networks });
    this.o.onChange?.();
    void svc.done.finally(() => {
      if (this.hosted.get(need.runDir) === h) this.hosted.delete(need.runDir);
      logFile.close();
      this.o.log?.('stopped serving DNS', { runDir: need.runDir });
      this.o.onChange?.();
    });
    return h;
  }

  /** Waits for the responders being started, then returns the hosted ones (no new ones after). */
  private async settle(): Promise<Hosted[]> {
    this.closed = true;
    await Promise.all([...this.starting.values()].map((p) => p.catch(() => undefined)));
    return [...this.hosted.values()];
  }

  /**
   * Replaces every hosted responder with a responder process serving the same directories, so
   * DNS goes on after this process exits: under the records lock (no plugin call in between),
   * closes ours (its socket, pid file and run lock go) and starts the process, which reads the
   * records from disk. Starts no new hosted responder after.
   */
  async handOver(): Promise<HandOver[]> {
    const out: HandOver[] = [];
    for (const h of await this.settle()) {
      if (h.svc.stopping) continue;
      await new LockedDir(h.need.recordsDir).withLock(async () => {
        const t0 = monotonicMs();
        await h.svc.close();
        try {
          const r = await startResponder(h.need);
          out.push({ runDir: h.need.runDir, pid: r.pid, ms: Math.round(monotonicMs() - t0) });
        } catch (err) {
          out.push({ runDir: h.need.runDir, ms: Math.round(monotonicMs() - t0), error: (err as Error).message });
        }
      });
    }
    for (const r of out) this.o.log?.('handed DNS over to a responder process', { ...r });
    return out;
  }

  /** Closes every hosted responder (nothing left to serve: the netns is gone). */
  async closeAll(): Promise<void> {
    await Promise.all((await this.settle()).map((h) => h.svc.close()));
  }
}

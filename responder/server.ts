/**
 * The responder's query pipeline: a DnsServer holds what the records say (RecordsState, built
 * into lookup tables, a Backend), the sockets (Listeners), the way upstream (Forwarder) and the
 * cache of forwarded answers (AnswerCache), and answers every message that arrives:
 *
 *   parse (fast path, else dns2's slow path) -> the scope: at 127.0.0.11 inside a container,
 *   the networks of that container; at a gateway, the network listening there if the client
 *   is inside it; standalone, the client's network -> look up -> reply, or answer from the
 *   cache, or forward upstream (REFUSED when the scope is internal) and relay the answer
 *
 * A message is handled synchronously up to the reply or the forward, so a reload, which builds a
 * new Backend and swaps one reference, never loses or half-answers a query. Whatever arrives
 * (runts, garbage, responses, compressed names) is dropped or answered FORMERR/NOTIMP; an
 * exception in the handler is logged (at most once a second) and the packet dropped.
 */
import { nextTurn } from '../pkg/clock.ts';
import type { Logger } from '../pkg/log.ts';
import { Backend, type ListenAddr, type Scope, type Upstream, clientAllowed, listenKey, lookupIn } from './backend.ts';
import { AnswerCache, type CacheOptions, type CacheStats } from './cache.ts';
import { Forwarder, resolvConfNameservers } from './forwarder.ts';
import { type HostProbe, openHostProbe } from './liveness.ts';
import { Listeners, type Place, type Reply } from './listeners.ts';
import { loadSlowParser } from './slow-path.ts';
import { RecordsState } from './state.ts';
import { type Query, RCODE, checkingDisabled, encodeError, encodeResponse, errorReply, keyToName, parseQuery, rcodeOf, udpLimit } from './wire.ts';

export interface ServerOptions {
  recordsDir: string;
  /**
   * Standalone mode: listen here and pick the network by the client's address (clients outside
   * every network see all of them). Absent: listen on each network's gateways and at 127.0.0.11
   * in the containers of networks in that mode (responder mode).
   */
  listen?: ListenAddr[];
  /** Total time to wait for upstream answers before SERVFAIL. */
  forwardTimeoutMs?: number;
  /** Where the host's nameservers are read from when a network has no `upstreams`. */
  resolvConf?: string;
  /** The cache of forwarded answers; false = none. */
  cache?: CacheOptions | false;
  /** Opens a probe of the host (default: this process's netns); tests inject one. */
  probe?: () => HostProbe;
  log: Logger;
}

/** Counters, for logs and the control socket. */
export interface ServerStats {
  queries: number;
  answered: number;
  forwarded: number;
  refused: number;
  servfail: number;
  malformed: number;
  reloads: number;
  /** Forwarded names answered from the cache. */
  cached?: number;
  cache?: CacheStats;
}

/**
 * Where synchronous replies are encoded (a reply function copies what it sends before it
 * returns: listeners.ts), so that answering allocates no buffer per query.
 */
const OUT = Buffer.allocUnsafe(65536);

/** Container namespaces stat'ed in one turn of a liveness sweep. */
const SWEEP_SLICE = 100;

const SERVFAIL = { rcode: RCODE.SERVFAIL, aa: false, answers: [], authority: [] } as const;
const REFUSED = { rcode: RCODE.REFUSED, aa: false, answers: [], authority: [] } as const;

/**
 * The second key of a forwarded query in the cache: its type and class, and the flags that
 * change the answer (EDNS present, DO, CD, RD). The first is the scope's upstream list, the
 * third the name.
 */
function cacheSub(q: Query, m: Buffer): number {
  const flags = (q.edns ? 1 : 0) | (q.edns?.dnssecOk ? 2 : 0) | (checkingDisabled(m) ? 4 : 0) | (q.rd ? 8 : 0);
  return ((q.qtype * 0x10000 + q.qclass) * 16) + flags;
}

/** Sends an upstream's (or the cache's) response on, or only its rcode with TC when it is too big for the client's UDP size. */
function relay(query: Query, resp: Buffer, overTcp: boolean, max: number, reply: Reply): void {
  if (overTcp || resp.length <= max) reply(resp);
  else reply(encodeResponse(query, { rcode: rcodeOf(resp), aa: false, answers: [], authority: [] }, 0));
}

export class DnsServer {
  private backend = new Backend([]);
  private readonly state: RecordsState;
  private readonly listeners: Listeners;
  private readonly forwarder: Forwarder;
  private readonly cache: AnswerCache | undefined;
  private readonly opts: ServerOptions;
  private readonly log: Logger;
  private readonly probe: () => HostProbe;
  private hostUpstreams: Upstream[] = [];
  private hostUpstreamKey = '';
  private served = 0;
  private servedNames = 0;
  private lastError = 0;
  private slowParser?: Promise<(m: Buffer) => Query | undefined>;
  readonly stats: ServerStats = { queries: 0, answered: 0, forwarded: 0, refused: 0, servfail: 0, malformed: 0, reloads: 0, cached: 0 };

  constructor(opts: ServerOptions) {
    this.opts = opts;
    this.log = opts.log;
    this.probe = opts.probe ?? openHostProbe;
    this.state = new RecordsState({ recordsDir: opts.recordsDir, listen: opts.listen, log: opts.log, probe: this.probe });
    this.forwarder = new Forwarder(opts.forwardTimeoutMs ?? 2000, opts.log);
    if (opts.cache !== false) {
      this.cache = new AnswerCache(opts.cache ?? {});
      this.stats.cache = this.cache.stats;
    }
    this.listeners = new Listeners((on, m, client, overTcp, reply) => this.answer(on, m, client, overTcp, reply), opts.log);
  }

  /** Number of networks currently served. */
  get networks(): number {
    return this.served;
  }

  /** Container names (and aliases) served, summed over the networks. */
  get names(): number {
    return this.servedNames;
  }

  /** Addresses of this netns currently bound (`address|port`). */
  get bound(): string[] {
    return this.listeners.bound;
  }

  /** Number of container namespaces with 127.0.0.11 open. */
  get boundInNetns(): number {
    return this.listeners.boundInNetns;
  }

  /** True when records judged dead or gone are still on disk (the daemon prunes them). */
  get needsPrune(): boolean {
    return this.state.needsPrune;
  }

  /** For the next opening of the 127.0.0.11 sockets in netns `ino`: its path can also be reached through process `pid`'s mount namespace. */
  reachThrough(ino: number, pid: number): void {
    this.listeners.reachThrough(ino, pid);
  }

  /** Whether the netns with inode `ino` has its 127.0.0.11 sockets open (undefined: not wanted). */
  netnsState(ino: number): { listening: boolean; error?: string } | undefined {
    return this.listeners.netnsState(ino);
  }

  /**
   * Re-reads the records directory (what changed), swaps the backend and opens/closes
   * listeners to match. Problems in record files are logged once and skipped.
   */
  async reload(reason: string, probe?: HostProbe): Promise<{ networks: number }> {
    await this.state.refresh(probe);
    this.stats.reloads++;
    return this.apply(reason);
  }

  /**
   * Checks up to `budget` containers' namespaces and, with `links`, every network's bridge;
   * applies what died. Resolves true when something changed.
   */
  async check(budget: number, links: boolean): Promise<boolean> {
    let changed = false;
    if (links) changed = await this.state.checkLinks();
    const probe = this.probe();
    try {
      // In slices with a turn between them: a stat per container is ~1.5-9 µs, and at 1000
      // containers one piece held the loop (and every query behind it) for up to 9 ms.
      const total = Math.min(budget, this.state.sweepSize);
      for (let done = 0; done < total; done += SWEEP_SLICE) {
        if (done) await nextTurn();
        changed = this.state.sweep(Math.min(SWEEP_SLICE, total - done), probe) || changed;
      }
    } finally {
      probe.close();
    }
    if (changed) await this.apply('liveness check');
    return changed;
  }

  private async apply(reason: string): Promise<{ networks: number }> {
    const built = this.state.build();
    // Never forward to ourselves (a loop that would fill the pending table).
    const ours = new Set(built.places.filter((p) => !p.netns).map(listenKey));
    // The host's resolv.conf is read only when a network forwards to it (none names upstreams).
    const views = [...built.backend.views.values(), ...(this.opts.listen ? [built.backend.hostView] : [])];
    const needHost = views.some((v) => v.upstreams === undefined && !v.internal);
    const hostUpstreams = needHost ? resolvConfNameservers(this.opts.resolvConf ?? '/etc/resolv.conf').filter((u) => !ours.has(listenKey(u))) : [];
    const key = hostUpstreams.map((u) => listenKey(u)).join(',');
    if (key !== this.hostUpstreamKey) { this.hostUpstreamKey = key; this.cache?.clear(); }
    this.hostUpstreams = hostUpstreams;
    this.backend = built.backend;
    this.served = built.networks;
    this.servedNames = built.names;
    await this.listeners.update(built.places);
    this.log.info('records loaded', { reason, networks: built.networks, listening: this.bound, netns: this.boundInNetns });
    return { networks: built.networks };
  }

  /** Closes every socket. */
  async close(): Promise<void> {
    this.forwarder.close();
    await this.listeners.close();
  }

  /** The scope a query from `client` that arrived on `on` is answered from; undefined = refused. */
  private scopeFor(on: Place, client: string): Scope | undefined {
    if (on.netns) return this.backend.containers.get(on.netns.ino)?.scope;
    if (this.opts.listen) return (this.backend.viewOfClient(client) ?? this.backend.hostView).scope;
    const v = this.backend.viewAt(on.key ?? listenKey(on));
    return v && clientAllowed(v, client) ? v.scope : undefined;
  }

  /** Answers one message; never throws. */
  private answer(on: Place, m: Buffer, client: string, overTcp: boolean, reply: Reply): void {
    this.stats.queries++;
    try {
      const q = parseQuery(m);
      if ('key' in q) return this.answerQuery(on, q, m, client, overTcp, reply);
      // The message's bytes are reused once this returns (listeners.ts batches): keep a copy.
      if (q.action === 'slow') return this.answerSlow(on, Buffer.from(m), client, overTcp, reply);
      this.stats.malformed++;
      if (q.action === 'reply') reply(encodeError(q));
    } catch (err) {
      this.handlerFailed(err, client);
    }
  }

  /** A query only dns2's general decoder parses (slow-path.ts): answered once that is loaded. */
  private answerSlow(on: Place, m: Buffer, client: string, overTcp: boolean, reply: Reply): void {
    this.slowParser ??= loadSlowParser();
    this.slowParser.then((parse) => {
      const query = parse(m);
      if (query) return this.answerQuery(on, query, m, client, overTcp, reply);
      this.stats.malformed++;
      reply(encodeError(errorReply(m, RCODE.FORMERR)));
    }).catch((err: unknown) => this.handlerFailed(err, client));
  }

  private answerQuery(on: Place, query: Query, m: Buffer, client: string, overTcp: boolean, reply: Reply): void {
    try {
      const max = overTcp ? 65535 : udpLimit(query);
      const scope = this.scopeFor(on, client);
      if (!scope) {
        this.stats.refused++;
        reply(encodeResponse(query, REFUSED, max, OUT));
        return;
      }
      const r = lookupIn(scope, query.key, query.qtype, query.qclass);
      if (r.kind === 'reply') {
        this.stats.answered++;
        reply(encodeResponse(query, r, max, OUT));
        return;
      }
      const upstreams = r.kind === 'forward' && !scope.internal ? (scope.upstreams ?? this.hostUpstreams) : [];
      if (!upstreams.length) {
        this.stats.refused++;
        reply(encodeResponse(query, REFUSED, max, OUT));
        return;
      }
      const cache = this.cache;
      const sub = cache ? cacheSub(query, m) : 0;
      const hit = cache?.get(scope.upstreamKey, sub, query.key, m, OUT);
      if (hit) {
        this.stats.cached = (this.stats.cached ?? 0) + 1;
        relay(query, hit, overTcp, max, reply);
        return;
      }
      this.stats.forwarded++;
      // The message's bytes are reused once this returns (listeners.ts batches): keep the question.
      query.question = Buffer.from(query.question);
      this.forwarder.forward(m, upstreams, overTcp, (resp) => {
        if (resp) {
          cache?.put(scope.upstreamKey, sub, query.key, resp);
          relay(query, resp, overTcp, max, reply);
          return;
        }
        this.stats.servfail++;
        this.log.debug('upstream failed', { name: keyToName(query.key), scope: scope.name });
        reply(encodeResponse(query, SERVFAIL, max));
      });
    } catch (err) {
      this.handlerFailed(err, client);
    }
  }

  private handlerFailed(err: unknown, client: string): void {
    this.stats.malformed++;
    const now = Date.now();
    if (now - this.lastError > 1000) {
      this.lastError = now;
      this.log.error('query handler failed; packet dropped', { error: (err as Error).message, client });
    }
  }
}

/**
 * The responder's query pipeline: a DnsServer holds the records as lookup tables (Backend), the
 * sockets (Listeners) and the way upstream (Forwarder), and answers every message that arrives:
 *
 *   parse (fast path, else dns2's slow path) -> the network's view (the one listening on the
 *   address the query came to, if the client is inside it; standalone: the client's network)
 *   -> look up -> reply, or forward upstream and relay the answer
 *
 * A message is handled synchronously up to the reply or the forward, so a reload, which builds a
 * new Backend and swaps one reference, never loses or half-answers a query. Whatever arrives
 * (runts, garbage, responses, compressed names) is dropped or answered FORMERR/NOTIMP; an
 * exception in the handler is logged (at most once a second) and the packet dropped.
 */
import type { Logger } from '../pkg/log.ts';
import { Backend, type ListenAddr, type Upstream, type View, clientAllowed, lookup } from './backend.ts';
import { Forwarder, resolvConfNameservers } from './forwarder.ts';
import { Listeners, type Reply } from './listeners.ts';
import { loadRecordsDir } from './records.ts';
import { parseQuerySlow } from './slow-path.ts';
import { type Query, RCODE, encodeError, encodeResponse, errorReply, keyToName, parseQuery, rcodeOf, udpLimit } from './wire.ts';

export interface ServerOptions {
  recordsDir: string;
  /**
   * Standalone mode: listen here and pick the network by the client's address (clients outside
   * every network see all of them). Absent: listen on each network's gateways (responder mode).
   */
  listen?: ListenAddr[];
  /** Total time to wait for upstream answers before SERVFAIL. */
  forwardTimeoutMs?: number;
  /** Where the host's nameservers are read from when a network has no `upstreams`. */
  resolvConf?: string;
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
}

const SERVFAIL = { rcode: RCODE.SERVFAIL, aa: false, answers: [], authority: [] } as const;
const REFUSED = { rcode: RCODE.REFUSED, aa: false, answers: [], authority: [] } as const;

export class DnsServer {
  private backend = new Backend([]);
  private readonly listeners: Listeners;
  private readonly forwarder: Forwarder;
  private readonly opts: ServerOptions;
  private readonly log: Logger;
  private hostUpstreams: Upstream[] = [];
  private serial = 0;
  private lastError = 0;
  readonly stats: ServerStats = { queries: 0, answered: 0, forwarded: 0, refused: 0, servfail: 0, malformed: 0, reloads: 0 };

  constructor(opts: ServerOptions) {
    this.opts = opts;
    this.log = opts.log;
    this.forwarder = new Forwarder(opts.forwardTimeoutMs ?? 2000, opts.log);
    this.listeners = new Listeners((on, m, client, overTcp, reply) => this.answer(on, m, client, overTcp, reply), opts.log);
  }

  /** Number of networks currently served. */
  get networks(): number {
    return this.backend.views.size;
  }

  /** Addresses currently bound (`address|port`). */
  get bound(): string[] {
    return this.listeners.bound;
  }

  /**
   * Re-reads the records directory, swaps the backend and opens/closes listeners to match.
   * Problems in record files are logged and skipped.
   */
  async reload(reason: string): Promise<{ networks: number; problems: number }> {
    const { networks, problems } = loadRecordsDir(this.opts.recordsDir);
    for (const p of problems) this.log.warn('skipping bad records', { file: p.file, line: p.line, problem: p.msg });
    const next = new Backend(networks, (Date.now() / 1000 + this.serial++) >>> 0, this.opts.listen !== undefined);
    const wanted = this.opts.listen ?? next.listen;
    // Never forward to ourselves (a loop that would fill the pending table).
    const notUs = (u: Upstream) => !wanted.some((w) => w.address === u.address && w.port === u.port);
    this.hostUpstreams = resolvConfNameservers(this.opts.resolvConf ?? '/etc/resolv.conf').filter(notUs);
    for (const v of [...next.views.values(), next.hostView]) if (v.upstreams) v.upstreams = v.upstreams.filter(notUs);
    this.backend = next;
    this.stats.reloads++;
    await this.listeners.update(wanted);
    this.log.info('records loaded', { reason, networks: networks.length, problems: problems.length, listening: this.bound });
    return { networks: networks.length, problems: problems.length };
  }

  /** Closes every socket. */
  async close(): Promise<void> {
    this.forwarder.close();
    await this.listeners.close();
  }

  /** The view a query from `client` that arrived on `on` is answered from; undefined = refused. */
  private viewFor(on: ListenAddr, client: string): View | undefined {
    if (this.opts.listen) return this.backend.viewOfClient(client) ?? this.backend.hostView;
    const v = this.backend.viewFor(on.address, on.port);
    return v && clientAllowed(v, client) ? v : undefined;
  }

  /** Parses one message; undefined when it gets no answer or an error reply was sent already. */
  private parse(m: Buffer, reply: Reply): Query | undefined {
    const q = parseQuery(m);
    if ('key' in q) return q;
    if (q.action === 'slow') {
      const slow = parseQuerySlow(m);
      if (slow) return slow;
      this.stats.malformed++;
      reply(encodeError(errorReply(m, RCODE.FORMERR)));
      return undefined;
    }
    this.stats.malformed++;
    if (q.action === 'reply') reply(encodeError(q));
    return undefined;
  }

  /** Answers one message; never throws. */
  private answer(on: ListenAddr, m: Buffer, client: string, overTcp: boolean, reply: Reply): void {
    this.stats.queries++;
    try {
      const query = this.parse(m, reply);
      if (!query) return;
      const max = overTcp ? 65535 : udpLimit(query);
      const view = this.viewFor(on, client);
      if (!view) {
        this.stats.refused++;
        reply(encodeResponse(query, REFUSED, max));
        return;
      }
      const r = lookup(view, query.key, query.qtype, query.qclass);
      if (r.kind === 'reply') {
        this.stats.answered++;
        reply(encodeResponse(query, r, max));
        return;
      }
      const upstreams = r.kind === 'forward' ? (view.upstreams ?? this.hostUpstreams) : [];
      if (!upstreams.length) {
        this.stats.refused++;
        reply(encodeResponse(query, REFUSED, max));
        return;
      }
      this.stats.forwarded++;
      this.forwarder.forward(m, upstreams, overTcp, (resp) => {
        if (resp && (overTcp || resp.length <= max)) { reply(resp); return; }
        if (resp) {
          // The upstream ignored the client's size: tell the client to retry over TCP.
          reply(encodeResponse(query, { rcode: rcodeOf(resp), aa: false, answers: [], authority: [] }, 0));
          return;
        }
        this.stats.servfail++;
        this.log.debug('upstream failed', { name: keyToName(query.key), network: view.name });
        reply(encodeResponse(query, SERVFAIL, max));
      });
    } catch (err) {
      this.stats.malformed++;
      const now = Date.now();
      if (now - this.lastError > 1000) {
        this.lastError = now;
        this.log.error('query handler failed; packet dropped', { error: (err as Error).message, client });
      }
    }
  }
}

/**
 * The DNS responder's sockets: UDP and TCP listeners on each network's gateway address (or on
 * explicit addresses for the standalone resolver), the forwarder to upstream resolvers, and
 * reloads that swap the backend while keeping every socket that is still wanted.
 *
 * A query is handled synchronously from packet to reply (parse, isolation check, lookup,
 * encode), so a reload, which builds a new Backend and swaps one reference, never loses or
 * half-answers a query. Whatever arrives (runts, garbage, responses, compressed names) is
 * dropped or answered FORMERR/NOTIMP; an exception in a handler is logged and the packet dropped.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { formatIP, tryParseIP } from '../pkg/ip/cidr.ts';
import { stderrLogger } from '../pkg/log.ts';
import { Backend, type Upstream, type View, clientAllowed, lookup } from './backend.ts';
import { loadRecordsDir } from './records.ts';
import { parseQuerySlow } from './slow-path.ts';
import { type Query, RCODE, encodeError, encodeResponse, keyToName, parseQuery, setId, udpLimit } from './wire.ts';

// TODO(shape): the daemon's logger comes from its entry, not from a module global.
const log = stderrLogger(process.env);

/** An address:port to listen on. */
export interface ListenAddr {
  address: string;
  port: number;
}

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
}

const TCP_IDLE_MS = 10_000;
const TCP_MAX_CONNECTIONS = 512;
const MAX_PENDING_FORWARDS = 4096;
const BIND_RETRY_MS = 1000;
const SERVFAIL = { rcode: RCODE.SERVFAIL, aa: false, answers: [], authority: [] } as const;
const REFUSED = { rcode: RCODE.REFUSED, aa: false, answers: [], authority: [] } as const;

interface Listener {
  key: string;
  address: string;
  port: number;
  udp?: dgram.Socket;
  tcp?: net.Server;
  /** Set while binding failed; retried every BIND_RETRY_MS. */
  failed?: string;
}

type Reply = (msg: Buffer) => void;

/** Reads `nameserver` lines of a resolv.conf. */
export function resolvConfNameservers(path: string): Upstream[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return [];
  }
  const out: Upstream[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    const ip = m ? tryParseIP(m[1]!.replace(/%.*$/, '')) : undefined;
    if (ip) out.push({ address: formatIP(ip), port: 53, family: ip.family });
  }
  return out;
}

interface Pending {
  origId: number;
  msg: Buffer;
  upstreams: Upstream[];
  idx: number;
  overTcp: boolean;
  deadline: number;
  timer: NodeJS.Timeout | undefined;
  done: (resp: Buffer | undefined) => void;
}

/** Sends queries on to upstream resolvers over UDP (TCP when a TCP client gets a truncated answer). */
class Forwarder {
  private readonly sockets = new Map<4 | 6, dgram.Socket>();
  private readonly pending = new Map<number, Pending>();
  private readonly timeoutMs: number;

  constructor(timeoutMs: number) {
    this.timeoutMs = timeoutMs;
  }

  private socket(family: 4 | 6): dgram.Socket {
    let s = this.sockets.get(family);
    if (!s) {
      s = dgram.createSocket(family === 4 ? 'udp4' : 'udp6');
      s.on('message', (m, rinfo) => this.onResponse(m, rinfo));
      s.on('error', (err) => log.warn('forwarder socket error', { family, error: err.message }));
      s.bind(0);
      s.unref();
      this.sockets.set(family, s);
    }
    return s;
  }

  forward(msg: Buffer, upstreams: Upstream[], overTcp: boolean, done: (resp: Buffer | undefined) => void): void {
    if (this.pending.size >= MAX_PENDING_FORWARDS) { done(undefined); return; }
    const p: Pending = {
      origId: msg.readUInt16BE(0), msg: Buffer.from(msg), upstreams, idx: 0, overTcp,
      deadline: Date.now() + this.timeoutMs, timer: undefined, done,
    };
    this.attempt(p);
  }

  private attempt(p: Pending): void {
    const u = p.upstreams[p.idx];
    const left = p.deadline - Date.now();
    if (!u || left <= 0) { p.done(undefined); return; }
    let id = randomInt(0x10000);
    for (let n = 0; this.pending.has(id) && n < 16; n++) id = randomInt(0x10000);
    if (this.pending.has(id)) { p.done(undefined); return; }
    setId(p.msg, id);
    this.pending.set(id, p);
    const perTry = Math.max(250, Math.floor(left / (p.upstreams.length - p.idx)));
    p.timer = setTimeout(() => {
      this.pending.delete(id);
      p.idx++;
      this.attempt(p);
    }, Math.min(perTry, left));
    try {
      this.socket(u.family).send(p.msg, u.port, u.address, (err) => {
        if (err && this.pending.get(id) === p) {
          clearTimeout(p.timer);
          this.pending.delete(id);
          p.idx++;
          this.attempt(p);
        }
      });
    } catch {
      clearTimeout(p.timer);
      this.pending.delete(id);
      p.idx++;
      this.attempt(p);
    }
  }

  private onResponse(m: Buffer, rinfo: dgram.RemoteInfo): void {
    if (m.length < 12 || !(m[2]! & 0x80)) return;
    const id = m.readUInt16BE(0);
    const p = this.pending.get(id);
    const u = p?.upstreams[p.idx];
    if (!p || !u || rinfo.address !== u.address || rinfo.port !== u.port) return; // not what we asked (spoofing)
    clearTimeout(p.timer);
    this.pending.delete(id);
    if ((m[2]! & 0x02) && p.overTcp) {
      setId(p.msg, p.origId);
      tcpExchange(u, p.msg, Math.max(100, p.deadline - Date.now())).then((r) => {
        if (r) { setId(r, p.origId); p.done(r); } else { setId(m, p.origId); p.done(m); }
      }, () => { setId(m, p.origId); p.done(m); });
      return;
    }
    setId(m, p.origId);
    p.done(m);
  }

  close(): void {
    for (const p of this.pending.values()) clearTimeout(p.timer);
    this.pending.clear();
    for (const s of this.sockets.values()) s.close();
    this.sockets.clear();
  }
}

/** One query/response exchange over TCP (RFC 7766 framing). */
function tcpExchange(u: Upstream, msg: Buffer, timeoutMs: number): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const s = net.connect({ host: u.address, port: u.port });
    let buf = Buffer.alloc(0);
    const finish = (r: Buffer | undefined) => { s.destroy(); resolve(r); };
    s.setTimeout(timeoutMs, () => finish(undefined));
    s.on('error', () => finish(undefined));
    s.on('connect', () => {
      const len = Buffer.alloc(2);
      len.writeUInt16BE(msg.length);
      s.write(Buffer.concat([len, msg]));
    });
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) finish(buf.subarray(2, 2 + buf.readUInt16BE(0)));
    });
    s.on('end', () => finish(undefined));
  });
}

/** Sync `lookup` for dgram: our reply addresses are always IP literals. */
function literalLookup(address: string, _opts: unknown, cb: (err: Error | null, address: string, family: number) => void): void {
  cb(null, address, address.includes(':') ? 6 : 4);
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

export class DnsServer {
  private backend = new Backend([]);
  private readonly listeners = new Map<string, Listener>();
  private readonly forwarder: Forwarder;
  private readonly opts: ServerOptions;
  private hostUpstreams: Upstream[] = [];
  private retryTimer: NodeJS.Timeout | undefined;
  private serial = 0;
  private closed = false;
  private lastError = 0;
  readonly stats: ServerStats = { queries: 0, answered: 0, forwarded: 0, refused: 0, servfail: 0, malformed: 0, reloads: 0 };

  constructor(opts: ServerOptions) {
    this.opts = opts;
    this.forwarder = new Forwarder(opts.forwardTimeoutMs ?? 2000);
  }

  /** Number of networks currently served. */
  get networks(): number {
    return this.backend.views.size;
  }

  /** Addresses currently bound (`address|port`). */
  get bound(): string[] {
    return [...this.listeners.values()].filter((l) => !l.failed && l.udp).map((l) => l.key);
  }

  /**
   * Re-reads the records directory, swaps the backend and opens/closes listeners to match.
   * Problems in record files are logged and skipped.
   */
  async reload(reason: string): Promise<{ networks: number; problems: number }> {
    const { networks, problems } = loadRecordsDir(this.opts.recordsDir);
    for (const p of problems) log.warn('skipping bad records', { file: p.file, line: p.line, problem: p.msg });
    const next = new Backend(networks, (Date.now() / 1000 + this.serial++) >>> 0, this.opts.listen !== undefined);
    const wanted: ListenAddr[] = this.opts.listen ?? [...next.byListen.keys()].map((k) => {
      const [address, port] = k.split('|') as [string, string];
      return { address, port: Number(port) };
    });
    // Never forward to ourselves (a loop that would fill the pending table).
    const notUs = (u: Upstream) => !wanted.some((w) => w.address === u.address && w.port === u.port);
    this.hostUpstreams = resolvConfNameservers(this.opts.resolvConf ?? '/etc/resolv.conf').filter(notUs);
    for (const v of [...next.views.values(), next.hostView]) if (v.upstreams) v.upstreams = v.upstreams.filter(notUs);
    this.backend = next;
    this.stats.reloads++;
    const keys = new Set(wanted.map((w) => `${w.address}|${w.port}`));
    await Promise.all([...this.listeners.values()].filter((l) => !keys.has(l.key)).map((l) => this.closeListener(l)));
    await Promise.all(wanted.filter((w) => !this.listeners.has(`${w.address}|${w.port}`)).map((w) => this.openListener(w)));
    log.info('records loaded', { reason, networks: networks.length, problems: problems.length, listening: this.bound });
    return { networks: networks.length, problems: problems.length };
  }

  private async openListener(w: ListenAddr): Promise<void> {
    const l: Listener = { key: `${w.address}|${w.port}`, address: w.address, port: w.port };
    this.listeners.set(l.key, l);
    await this.bindListener(l);
  }

  private async bindListener(l: Listener): Promise<void> {
    const family = l.address.includes(':') ? 6 : 4;
    try {
      const udp = dgram.createSocket({ type: family === 4 ? 'udp4' : 'udp6', lookup: literalLookup as never });
      await new Promise<void>((resolve, reject) => {
        udp.once('error', reject);
        udp.bind({ address: l.address, port: l.port, exclusive: true }, () => { udp.off('error', reject); resolve(); });
      });
      udp.on('error', (err) => log.warn('udp socket error', { listen: l.key, error: err.message }));
      udp.on('message', (m, rinfo) => this.onUdp(l, udp, m, rinfo));
      const tcp = net.createServer({ pauseOnConnect: false }, (c) => this.onTcp(l, c));
      tcp.maxConnections = TCP_MAX_CONNECTIONS;
      try {
        await new Promise<void>((resolve, reject) => {
          tcp.once('error', reject);
          tcp.listen({ host: l.address, port: l.port, exclusive: true }, () => { tcp.off('error', reject); resolve(); });
        });
      } catch (err) {
        udp.close();
        throw err;
      }
      tcp.on('error', (err) => log.warn('tcp server error', { listen: l.key, error: err.message }));
      if (!this.listeners.has(l.key) || this.closed) { udp.close(); tcp.close(); return; }
      l.udp = udp;
      l.tcp = tcp;
      if (l.failed) log.info('listening after retry', { listen: l.key });
      l.failed = undefined;
    } catch (err) {
      const msg = (err as Error).message;
      if (l.failed !== msg) log.warn('cannot listen, will retry', { listen: l.key, error: msg });
      l.failed = msg;
      this.scheduleRetry();
    }
  }

  private scheduleRetry(): void {
    if (this.retryTimer || this.closed) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      for (const l of this.listeners.values()) if (l.failed && !this.closed) void this.bindListener(l);
    }, BIND_RETRY_MS);
  }

  private closeListener(l: Listener): Promise<void> {
    this.listeners.delete(l.key);
    const waits: Promise<void>[] = [];
    if (l.udp) { const u = l.udp; waits.push(new Promise((r) => u.close(() => r()))); }
    if (l.tcp) { const t = l.tcp; waits.push(new Promise((r) => t.close(() => r()))); }
    l.udp = undefined;
    l.tcp = undefined;
    return Promise.all(waits).then(() => undefined);
  }

  /** Closes every socket. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.forwarder.close();
    await Promise.all([...this.listeners.values()].map((l) => this.closeListener(l)));
  }

  private onUdp(l: Listener, sock: dgram.Socket, m: Buffer, rinfo: dgram.RemoteInfo): void {
    this.handle(l, m, rinfo.address, false, (resp) => {
      try {
        sock.send(resp, rinfo.port, rinfo.address);
      } catch { /* socket closed by a reload that removed this network */ }
    });
  }

  private onTcp(l: Listener, c: net.Socket): void {
    let buf: Buffer = Buffer.alloc(0);
    const client = c.remoteAddress ?? '';
    c.setNoDelay(true);
    c.setTimeout(TCP_IDLE_MS, () => c.destroy());
    c.on('error', () => c.destroy());
    c.on('data', (d: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, d]) : d;
      while (buf.length >= 2) {
        const len = buf.readUInt16BE(0);
        if (buf.length < 2 + len) break;
        const m = buf.subarray(2, 2 + len);
        buf = buf.subarray(2 + len);
        this.handle(l, m, client, true, (resp) => {
          if (c.destroyed) return;
          const frame = Buffer.allocUnsafe(2 + resp.length);
          frame.writeUInt16BE(resp.length, 0);
          resp.copy(frame, 2);
          c.write(frame);
        });
      }
    });
  }

  private viewFor(l: Listener, client: string): View | undefined {
    if (this.opts.listen) return this.backend.viewOfClient(client) ?? this.backend.hostView;
    const v = this.backend.viewFor(l.address, l.port);
    return v && clientAllowed(v, client) ? v : undefined;
  }

  /** Answers one message; never throws. */
  private handle(l: Listener, m: Buffer, client: string, overTcp: boolean, reply: Reply): void {
    this.stats.queries++;
    try {
      let q = parseQuery(m);
      if (!('key' in q)) {
        if (q.action === 'slow') {
          const slow = parseQuerySlow(m);
          if (!slow) { this.stats.malformed++; reply(encodeError({ id: m.readUInt16BE(0), opcode: (m[2]! >> 3) & 0xf, rd: (m[2]! & 1) === 1, rcode: RCODE.FORMERR })); return; }
          q = slow;
        } else {
          this.stats.malformed++;
          if (q.action === 'reply') reply(encodeError(q));
          return;
        }
      }
      const query: Query = q;
      const max = overTcp ? 65535 : udpLimit(query);
      const view = this.viewFor(l, client);
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
          reply(encodeResponse(query, { rcode: resp[3]! & 0xf, aa: false, answers: [], authority: [] }, 0));
          return;
        }
        this.stats.servfail++;
        log.debug('upstream failed', { name: keyToName(query.key), network: view.name });
        reply(encodeResponse(query, SERVFAIL, max));
      });
    } catch (err) {
      this.stats.malformed++;
      const now = Date.now();
      if (now - this.lastError > 1000) {
        this.lastError = now;
        log.error('query handler failed; packet dropped', { error: (err as Error).message, client });
      }
    }
  }
}

/**
 * The forwarder: sends a query that no network's records answer on to upstream resolvers and
 * hands back the upstream's response under the client's id. Upstreams are tried in order within
 * one deadline: each try gets its share of the time left (at least 250 ms), and a try that times
 * out or cannot be sent gives way to the next upstream (`next`). A response counts only when its
 * id and source (address and port of the upstream asked) match; anything else is dropped, so a
 * spoofed answer has to guess a random id as well. A truncated response for a client that asked
 * over TCP is fetched again over TCP. Also here: the host's upstreams, read from resolv.conf.
 *
 * It does not cache, retry the same upstream, or speak DNS beyond the header: the message is
 * relayed as it came.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { formatIP, tryParseIP } from '../pkg/ip/cidr.ts';
import { native } from '../pkg/native.ts';
import type { Logger } from '../pkg/log.ts';
import type { Upstream } from './backend.ts';
import { HEADER_SIZE, idOf, isResponse, isTruncated, setId } from './wire.ts';

/** Forwards in flight at most; beyond it a query gets SERVFAIL at once instead of memory. */
const MAX_PENDING = 4096;
const MIN_TRY_MS = 250;

/**
 * Query ids from the kernel's CSPRNG, drawn 256 at a time: an id an off-path attacker could
 * predict would let a spoofed answer in. (getrandom through the addon, not node:crypto, which
 * costs a long-lived process ~2 MiB of RSS for this alone.)
 */
class RandomIds {
  private readonly pool = Buffer.alloc(512);
  private at = this.pool.length;

  next(): number {
    if (this.at === this.pool.length) { native().randomFill(this.pool); this.at = 0; }
    const id = this.pool.readUInt16LE(this.at);
    this.at += 2;
    return id;
  }
}

/** One forwarded query, from the first try to the answer or the last upstream. */
interface Pending {
  origId: number;
  /** A copy of the query; its id is rewritten for each try. */
  msg: Buffer;
  upstreams: Upstream[];
  /** The upstream being asked now. */
  idx: number;
  overTcp: boolean;
  deadline: number;
  timer: NodeJS.Timeout | undefined;
  done: (resp: Buffer | undefined) => void;
}

/** Sends queries on to upstream resolvers over UDP (TCP when a TCP client gets a truncated answer). */
export class Forwarder {
  private readonly sockets = new Map<4 | 6, dgram.Socket>();
  /** By the id the current try carries on the wire. */
  private readonly pending = new Map<number, Pending>();
  private readonly ids = new RandomIds();
  private readonly timeoutMs: number;
  private readonly log: Logger;

  /** `timeoutMs`: the total time a query may take, over every upstream. */
  constructor(timeoutMs: number, log: Logger) {
    this.timeoutMs = timeoutMs;
    this.log = log;
  }

  /**
   * Forwards query `msg` to `upstreams`; `done` gets the response (with the client's id) or
   * undefined when none answered in time.
   */
  forward(msg: Buffer, upstreams: Upstream[], overTcp: boolean, done: (resp: Buffer | undefined) => void): void {
    if (this.pending.size >= MAX_PENDING) { done(undefined); return; }
    this.attempt({
      origId: idOf(msg), msg: Buffer.from(msg), upstreams, idx: 0, overTcp,
      deadline: Date.now() + this.timeoutMs, timer: undefined, done,
    });
  }

  /** Closes the sockets; queries in flight get no answer. */
  close(): void {
    for (const p of this.pending.values()) clearTimeout(p.timer);
    this.pending.clear();
    for (const s of this.sockets.values()) s.close();
    this.sockets.clear();
  }

  /** Asks p's current upstream, or gives up when none is left or the deadline has passed. */
  private attempt(p: Pending): void {
    const u = p.upstreams[p.idx];
    const left = p.deadline - Date.now();
    const id = u && left > 0 ? this.freeId() : undefined;
    if (!u || id === undefined) { p.done(undefined); return; }
    setId(p.msg, id);
    this.pending.set(id, p);
    const perTry = Math.max(MIN_TRY_MS, Math.floor(left / (p.upstreams.length - p.idx)));
    p.timer = setTimeout(() => this.next(p, id), Math.min(perTry, left));
    try {
      this.socket(u.family).send(p.msg, u.port, u.address, (err) => { if (err) this.next(p, id); });
    } catch {
      this.next(p, id);
    }
  }

  /** Drops the upstream that try `id` of p went to (timed out, or the send failed) and tries the next. */
  private next(p: Pending, id: number): void {
    if (this.pending.get(id) !== p) return; // answered, or this try was already given up
    clearTimeout(p.timer);
    this.pending.delete(id);
    p.idx++;
    this.attempt(p);
  }

  /** A random id no query in flight carries, or undefined when 16 draws all collided. */
  private freeId(): number | undefined {
    for (let n = 0; n < 16; n++) {
      const id = this.ids.next();
      if (!this.pending.has(id)) return id;
    }
    return undefined;
  }

  private socket(family: 4 | 6): dgram.Socket {
    let s = this.sockets.get(family);
    if (!s) {
      s = dgram.createSocket(family === 4 ? 'udp4' : 'udp6');
      s.on('message', (m, rinfo) => this.onResponse(m, rinfo));
      s.on('error', (err) => this.log.warn('forwarder socket error', { family, error: err.message }));
      s.bind(0);
      s.unref();
      this.sockets.set(family, s);
    }
    return s;
  }

  private onResponse(m: Buffer, rinfo: dgram.RemoteInfo): void {
    if (m.length < HEADER_SIZE || !isResponse(m)) return;
    const id = idOf(m);
    const p = this.pending.get(id);
    const u = p?.upstreams[p.idx];
    if (!p || !u || rinfo.address !== u.address || rinfo.port !== u.port) return; // not what we asked (spoofing)
    clearTimeout(p.timer);
    this.pending.delete(id);
    const relay = (r: Buffer) => { setId(r, p.origId); p.done(r); };
    if (isTruncated(m) && p.overTcp) {
      setId(p.msg, p.origId);
      tcpExchange(u, p.msg, Math.max(100, p.deadline - Date.now())).then((r) => relay(r ?? m), () => relay(m));
      return;
    }
    relay(m);
  }
}

/** One query/response exchange over TCP (RFC 7766 framing); undefined on any failure. */
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

/** Reads the `nameserver` lines of a resolv.conf (zones dropped); [] when the file is unreadable. */
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

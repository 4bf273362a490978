/**
 * The responder's sockets: one UDP socket and one TCP server per place it listens, opened and
 * closed to match what each reload wants. A place is either an address of this netns (a
 * network's gateway) or 127.0.0.11 inside one container's netns (Docker's embedded resolver):
 * those sockets are created in the container's namespace by the native layer (a short-lived
 * thread joins it, creates and binds them, and hands the fds over; no DNAT, no br_netfilter)
 * and then served by this event loop like any other.
 *
 * A socket still wanted is kept as it is, so a reload never drops a client. An address that
 * cannot be bound (the gateway address is not on the bridge yet, say) is retried every second
 * until it can, or until a reload no longer wants it. Closing a place closes its sockets and
 * destroys its TCP connections at once: an open socket keeps its namespace alive, so a
 * container's namespace is freed as soon as the responder lets go of it. TCP carries RFC 7766
 * framing (a two-byte length before each message), with an idle timeout and a connection limit.
 *
 * Each message is handed to the query handler with the place it arrived on, the client's
 * address and a function that sends the reply back the same way. What a message means is not
 * decided here.
 */
import dgram from 'node:dgram';
import { closeSync } from 'node:fs';
import net from 'node:net';
import type { Logger } from '../pkg/log.ts';
import { native } from '../pkg/native.ts';
import { type ListenAddr, listenKey } from './backend.ts';
import type { NetnsBinding } from './records.ts';

const TCP_IDLE_MS = 10_000;
const TCP_MAX_CONNECTIONS = 512;
const BIND_RETRY_MS = 1000;

/** Sends one response back to the client a message came from. */
export type Reply = (msg: Buffer) => void;

/** Where a message arrived: an address here, or (with `netns`) an address inside that netns. */
export interface Place extends ListenAddr {
  netns?: NetnsBinding;
}

/** Handles one message that arrived on `on` from `client`; must not throw. */
export type QueryHandler = (on: Place, m: Buffer, client: string, overTcp: boolean, reply: Reply) => void;

/** The key of a place: `address|port`, prefixed by `netns <inode> ` inside a container. */
export function placeKey(p: Place): string {
  return p.netns ? `netns ${p.netns.ino} ${listenKey(p)}` : listenKey(p);
}

interface Listener extends Place {
  key: string;
  udp?: dgram.Socket;
  tcp?: net.Server;
  conns: Set<net.Socket>;
  /** Set while binding fails (the error), cleared once bound. */
  failed?: string;
}

/** The set of places the responder listens on, UDP and TCP on each. */
export class Listeners {
  private readonly listeners = new Map<string, Listener>();
  private readonly handle: QueryHandler;
  private readonly log: Logger;
  private retryTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(handle: QueryHandler, log: Logger) {
    this.handle = handle;
    this.log = log;
  }

  /** The addresses of this netns bound now (`listenKey` form), for logs and the control reply. */
  get bound(): string[] {
    return [...this.listeners.values()].filter((l) => !l.netns && !l.failed && l.udp).map((l) => l.key);
  }

  /** The number of container namespaces listened in now. */
  get boundInNetns(): number {
    let n = 0;
    for (const l of this.listeners.values()) if (l.netns && l.udp) n++;
    return n;
  }

  /** Whether 127.0.0.11 (or whatever was asked) listens in the netns with inode `ino`, and if not, why. */
  netnsState(ino: number): { listening: boolean; error?: string } | undefined {
    for (const l of this.listeners.values()) {
      if (l.netns?.ino !== ino) continue;
      return l.udp && !l.failed ? { listening: true } : { listening: false, error: l.failed ?? 'not bound yet' };
    }
    return undefined;
  }

  /** Opens the places in `wanted` that are not open yet and closes the others. */
  async update(wanted: readonly Place[]): Promise<void> {
    const keys = new Set(wanted.map(placeKey));
    await Promise.all([...this.listeners.values()].filter((l) => !keys.has(l.key)).map((l) => this.closeListener(l)));
    await Promise.all(wanted.filter((w) => !this.listeners.has(placeKey(w))).map((w) => this.open(w)));
  }

  /** Closes every socket; resolves when they are closed. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    await Promise.all([...this.listeners.values()].map((l) => this.closeListener(l)));
  }

  private async open(w: Place): Promise<void> {
    const l: Listener = { key: placeKey(w), address: w.address, port: w.port, conns: new Set() };
    if (w.netns) l.netns = w.netns;
    this.listeners.set(l.key, l);
    await this.bind(l);
  }

  /** Binds UDP and then TCP on l; on failure, records why and schedules a retry. */
  private async bind(l: Listener): Promise<void> {
    const family = l.address.includes(':') ? 6 : 4;
    const udp = dgram.createSocket({ type: family === 4 ? 'udp4' : 'udp6', lookup: literalLookup as never });
    const tcp = net.createServer({ pauseOnConnect: false }, (c) => this.onTcp(l, c));
    tcp.maxConnections = TCP_MAX_CONNECTIONS;
    let fds: number[] | undefined;
    try {
      if (l.netns) fds = this.socketsInNetns(l, l.netns);
      await new Promise<void>((resolve, reject) => {
        udp.once('error', reject);
        const done = () => { udp.off('error', reject); resolve(); };
        if (fds) udp.bind({ fd: fds[0]! }, done);
        else udp.bind({ address: l.address, port: l.port, exclusive: true }, done);
      });
      if (fds) fds[0] = -1; // dgram owns it now
      await new Promise<void>((resolve, reject) => {
        tcp.once('error', reject);
        const done = () => { tcp.off('error', reject); resolve(); };
        if (fds) tcp.listen({ fd: fds[1]! }, done);
        else tcp.listen({ host: l.address, port: l.port, exclusive: true }, done);
      });
      if (fds) fds[1] = -1;
    } catch (err) {
      for (const fd of fds ?? []) if (fd >= 0) try { closeSync(fd); } catch { /* gone */ }
      try { udp.close(); } catch { /* never bound */ }
      tcp.close();
      const msg = (err as Error).message;
      if (l.failed !== msg) this.log.warn('cannot listen, will retry', { listen: l.key, error: msg });
      l.failed = msg;
      this.scheduleRetry();
      return;
    }
    udp.on('error', (err) => this.log.warn('udp socket error', { listen: l.key, error: err.message }));
    udp.on('message', (m, rinfo) => this.onUdp(l, udp, m, rinfo));
    tcp.on('error', (err) => this.log.warn('tcp server error', { listen: l.key, error: err.message }));
    if (this.listeners.get(l.key) !== l || this.closed) { udp.close(); tcp.close(); return; } // unwanted meanwhile
    l.udp = udp;
    l.tcp = tcp;
    if (l.failed) this.log.info('listening after retry', { listen: l.key });
    l.failed = undefined;
  }

  /**
   * Creates the place's UDP and TCP sockets inside the container's netns. Refuses (closing
   * them) when the path names another namespace than the one recorded at ADD.
   */
  private socketsInNetns(l: Listener, ns: NetnsBinding): number[] {
    const spec = { address: l.address, port: l.port, freebind: true };
    const r = native().netnsSockets(ns.path, [{ type: 'udp', ...spec }, { type: 'tcp', ...spec }]);
    if (r.netnsIno !== ns.ino) {
      for (const fd of r.fds) closeSync(fd);
      throw new Error(`${ns.path} names another namespace now (inode ${r.netnsIno}, not ${ns.ino})`);
    }
    return r.fds;
  }

  private scheduleRetry(): void {
    if (this.retryTimer || this.closed) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      for (const l of this.listeners.values()) if (l.failed && !this.closed) void this.bind(l);
    }, BIND_RETRY_MS);
  }

  private closeListener(l: Listener): Promise<void> {
    this.listeners.delete(l.key);
    const waits: Promise<void>[] = [];
    if (l.udp) { const u = l.udp; waits.push(new Promise((r) => u.close(() => r()))); }
    if (l.tcp) { const t = l.tcp; waits.push(new Promise((r) => t.close(() => r()))); }
    // Why destroy: server.close() waits for every connection to end, and each one still holds
    // its socket (and so, inside a container, the namespace).
    for (const c of l.conns) c.destroy();
    l.conns.clear();
    l.udp = undefined;
    l.tcp = undefined;
    return Promise.all(waits).then(() => undefined);
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
    l.conns.add(c);
    c.on('close', () => l.conns.delete(c));
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
}

/** Sync `lookup` for dgram: our reply addresses are always IP literals. */
function literalLookup(address: string, _opts: unknown, cb: (err: Error | null, address: string, family: number) => void): void {
  cb(null, address, address.includes(':') ? 6 : 4);
}

/**
 * The responder's sockets: one UDP socket and one TCP server per address it listens on, opened
 * and closed to match what each reload wants. A socket still wanted is kept as it is, so a
 * reload never drops a client or a connection. An address that cannot be bound (the gateway
 * address is not on the bridge yet, say) is retried every second until it can, or until a
 * reload no longer wants it. TCP carries RFC 7766 framing (a two-byte length before each
 * message), with an idle timeout and a connection limit.
 *
 * Each message is handed to the query handler with the address it arrived on, the client's
 * address and a function that sends the reply back the same way. What a message means is not
 * decided here.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import type { Logger } from '../pkg/log.ts';
import { type ListenAddr, listenKey } from './backend.ts';

const TCP_IDLE_MS = 10_000;
const TCP_MAX_CONNECTIONS = 512;
const BIND_RETRY_MS = 1000;

/** Sends one response back to the client a message came from. */
export type Reply = (msg: Buffer) => void;

/** Handles one message that arrived on `on` from `client`; must not throw. */
export type QueryHandler = (on: ListenAddr, m: Buffer, client: string, overTcp: boolean, reply: Reply) => void;

interface Listener extends ListenAddr {
  key: string;
  udp?: dgram.Socket;
  tcp?: net.Server;
  /** Set while binding fails (the error), cleared once bound. */
  failed?: string;
}

/** The set of addresses the responder listens on, UDP and TCP on each. */
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

  /** The addresses bound now (`listenKey` form), for logs and the control reply. */
  get bound(): string[] {
    return [...this.listeners.values()].filter((l) => !l.failed && l.udp).map((l) => l.key);
  }

  /** Opens the addresses in `wanted` that are not open yet and closes the others. */
  async update(wanted: readonly ListenAddr[]): Promise<void> {
    const keys = new Set(wanted.map(listenKey));
    await Promise.all([...this.listeners.values()].filter((l) => !keys.has(l.key)).map((l) => this.closeListener(l)));
    await Promise.all(wanted.filter((w) => !this.listeners.has(listenKey(w))).map((w) => this.open(w)));
  }

  /** Closes every socket; resolves when they are closed. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    await Promise.all([...this.listeners.values()].map((l) => this.closeListener(l)));
  }

  private async open(w: ListenAddr): Promise<void> {
    const l: Listener = { key: listenKey(w), address: w.address, port: w.port };
    this.listeners.set(l.key, l);
    await this.bind(l);
  }

  /** Binds UDP and then TCP on l; on failure, records why and schedules a retry. */
  private async bind(l: Listener): Promise<void> {
    const family = l.address.includes(':') ? 6 : 4;
    try {
      const udp = dgram.createSocket({ type: family === 4 ? 'udp4' : 'udp6', lookup: literalLookup as never });
      await new Promise<void>((resolve, reject) => {
        udp.once('error', reject);
        udp.bind({ address: l.address, port: l.port, exclusive: true }, () => { udp.off('error', reject); resolve(); });
      });
      udp.on('error', (err) => this.log.warn('udp socket error', { listen: l.key, error: err.message }));
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
      tcp.on('error', (err) => this.log.warn('tcp server error', { listen: l.key, error: err.message }));
      if (this.listeners.get(l.key) !== l || this.closed) { udp.close(); tcp.close(); return; } // unwanted meanwhile
      l.udp = udp;
      l.tcp = tcp;
      if (l.failed) this.log.info('listening after retry', { listen: l.key });
      l.failed = undefined;
    } catch (err) {
      const msg = (err as Error).message;
      if (l.failed !== msg) this.log.warn('cannot listen, will retry', { listen: l.key, error: msg });
      l.failed = msg;
      this.scheduleRetry();
    }
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

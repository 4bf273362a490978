/**
 * The responder's sockets: one UDP socket and one TCP server per place it listens, opened and
 * closed to match what each reload wants. A place is either an address of this netns (a
 * network's gateway) or 127.0.0.11 inside one container's netns (Docker's embedded resolver):
 * those sockets are created in the container's namespace by the native layer (a short-lived
 * thread joins it, creates and binds them, and hands the fds over; no DNAT, no br_netfilter)
 * and then served by this event loop like any other.
 *
 * UDP sockets are always made by the native layer (in this netns or the container's), so their
 * fd is known: after dgram delivers the first datagram of a wake-up, the rest queued on the
 * socket are read with one recvmmsg per batch and the replies sent with one sendmmsg, instead
 * of two system calls and a Buffer, an address string and a send request per datagram (see
 * docs/toolchain.md on where a query's time goes). A reply that comes later (forwarded) goes
 * out through dgram.
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
import { formatIP, ipFromBytes } from '../pkg/ip/cidr.ts';
import { UDP_META_SIZE, native } from '../pkg/native.ts';
import { type ListenAddr, listenKey } from './backend.ts';
import type { NetnsBinding } from './records.ts';

const TCP_IDLE_MS = 10_000;
const TCP_MAX_CONNECTIONS = 512;
const BIND_RETRY_MS = 1000;
/** Bytes per received datagram (a bigger query is cut and dropped) and per batch of replies. */
const SLOT = 4096;
/** Datagrams per recvmmsg / sendmmsg. */
const BATCH = 64;
/** Datagrams handled per wake-up of one socket, so that others get their turn. */
const MAX_PER_TURN = 512;

/**
 * Sends one response back to the client a message came from. It copies what it sends before it
 * returns, so the caller may reuse `msg` at once.
 */
export type Reply = (msg: Buffer) => void;

/** Where a message arrived: an address here, or (with `netns`) an address inside that netns. */
export interface Place extends ListenAddr {
  netns?: NetnsBinding;
  /** placeKey of it (set on the places messages arrive on). */
  key?: string;
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
  /** The UDP socket's fd (made by the native layer, then handed to dgram). */
  udpFd?: number;
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
  private readonly batch = new UdpBatch();
  /** netns inode -> a process in whose mount namespace its path can be opened (while it waits for us). */
  private readonly through = new Map<number, number>();

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

  /** Says that the path of netns `ino` can be opened through process `pid`'s mount namespace, for the next update. */
  reachThrough(ino: number, pid: number): void {
    this.through.set(ino, pid);
  }

  /** Opens the places in `wanted` that are not open yet and closes the others. */
  async update(wanted: readonly Place[]): Promise<void> {
    const keys = new Set(wanted.map(placeKey));
    try {
      await Promise.all([...this.listeners.values()].filter((l) => !keys.has(l.key)).map((l) => this.closeListener(l)));
      await Promise.all(wanted.filter((w) => !this.listeners.has(placeKey(w))).map((w) => this.open(w)));
    } finally {
      this.through.clear(); // the process waits no longer
    }
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
    let udpFd: number | undefined;
    try {
      fds = l.netns ? this.socketsInNetns(l, l.netns) : native().netnsSockets(null, [{ type: 'udp', address: l.address, port: l.port }]).fds;
      udpFd = fds[0]!;
      await new Promise<void>((resolve, reject) => {
        udp.once('error', reject);
        udp.bind({ fd: fds![0]! }, () => { udp.off('error', reject); resolve(); });
      });
      fds[0] = -1; // dgram owns it now
      await new Promise<void>((resolve, reject) => {
        tcp.once('error', reject);
        const done = () => { tcp.off('error', reject); resolve(); };
        if (fds![1] !== undefined) tcp.listen({ fd: fds![1] }, done);
        else tcp.listen({ host: l.address, port: l.port, exclusive: true }, done);
      });
      if (fds[1] !== undefined) fds[1] = -1;
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
    udp.on('message', (m, rinfo) => this.onUdp(l, udp, udpFd!, m, rinfo));
    tcp.on('error', (err) => this.log.warn('tcp server error', { listen: l.key, error: err.message }));
    if (this.listeners.get(l.key) !== l || this.closed) { udp.close(); tcp.close(); return; } // unwanted meanwhile
    l.udp = udp;
    l.udpFd = udpFd;
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
    const specs = [{ type: 'udp' as const, ...spec }, { type: 'tcp' as const, ...spec }];
    let r: { netnsIno: number; fds: number[] } | undefined;
    let first: unknown;
    try {
      r = native().netnsSockets(ns.path, specs);
      if (r.netnsIno !== ns.ino) { for (const fd of r.fds) closeSync(fd); r = undefined; }
    } catch (err) {
      first = err; // EINVAL from setns: the path is no namespace here
    }
    // The runtime's bind mount may live in another mount namespace: try the caller's view.
    const pid = this.through.get(ns.ino);
    if (!r && pid !== undefined) {
      r = native().netnsSockets(`/proc/${pid}/root${ns.path}`, specs);
      if (r.netnsIno !== ns.ino) { for (const fd of r.fds) closeSync(fd); r = undefined; }
    }
    if (!r) {
      if (first) throw first;
      throw new Error(`${ns.path} names another namespace now (not inode ${ns.ino})`);
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

  /**
   * Handles the datagram dgram delivered, then drains what else is queued on the socket in
   * batches (recvmmsg), sending the replies made meanwhile with one sendmmsg per batch.
   */
  private onUdp(l: Listener, sock: dgram.Socket, fd: number, m: Buffer, rinfo: dgram.RemoteInfo): void {
    const b = this.batch;
    b.begin(sock, fd);
    this.handle(l, m, rinfo.address, false, b.replierTo(rinfo));
    for (let handled = 1; handled < MAX_PER_TURN && l.udp === sock;) {
      let n: number;
      try {
        n = native().udpRecvBatch(fd, b.rbuf, SLOT, b.rmeta);
      } catch (err) {
        this.log.debug('recvmmsg failed', { listen: l.key, error: (err as Error).message });
        break;
      }
      if (n === 0) break;
      b.next();
      for (let i = 0; i < n; i++) {
        const len = b.rmeta.readUInt32LE(i * UDP_META_SIZE + 4);
        if (len === 0xffffffff) continue; // bigger than any query
        const off = i * SLOT;
        this.handle(l, b.rbuf.subarray(off, off + len), b.clientOf(i), false, b.replier(i));
      }
      handled += n;
      if (n < BATCH) break;
    }
    b.end();
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

/** Sends resp through dgram (a copy: dgram may keep the buffer until the kernel takes it). */
function sendOne(sock: dgram.Socket, resp: Buffer, port: number, address: string): void {
  try {
    sock.send(Buffer.from(resp), port, address);
  } catch { /* socket closed by a reload that removed this network */ }
}

/**
 * The buffers of one batch (shared by every socket: one batch is handled at a time, and
 * synchronously): received datagrams and their records, replies and theirs. A reply made while
 * its batch is open is copied into the send buffer; one made later (a forwarded answer) goes
 * out through dgram. The received bytes are reused by the next batch, so whoever keeps a query
 * past its handling copies it (the forwarder does).
 */
class UdpBatch {
  readonly rbuf = Buffer.allocUnsafe(BATCH * SLOT);
  readonly rmeta = Buffer.alloc(BATCH * UDP_META_SIZE);
  private readonly sbuf = Buffer.allocUnsafe(BATCH * SLOT);
  private readonly smeta = Buffer.alloc(BATCH * UDP_META_SIZE);
  private count = 0;
  private used = 0;
  private sock: dgram.Socket | undefined;
  private fd = -1;
  /** Bumped per batch: a replier of an earlier batch no longer writes into the buffers. */
  private generation = 0;

  /** Opens a batch of replies on `sock` (fd `fd`). */
  begin(sock: dgram.Socket, fd: number): void {
    this.sock = sock;
    this.fd = fd;
    this.count = 0;
    this.used = 0;
    this.generation++;
  }

  /**
   * Starts reading into the receive buffers again: the repliers of earlier datagrams become
   * late ones (their records are overwritten); replies collected so far stay (they are copied).
   */
  next(): void {
    this.generation++;
  }

  /** The reply function of the datagram dgram delivered (its address from rinfo). */
  replierTo(rinfo: dgram.RemoteInfo): (resp: Buffer) => void {
    const gen = this.generation;
    const sock = this.sock!;
    return (resp) => {
      if (gen !== this.generation || this.sock !== sock || this.count === BATCH || !this.writeAddress(rinfo)) { sendOne(sock, resp, rinfo.port, rinfo.address); return; }
      this.pushAt(resp);
    };
  }

  /** Writes rinfo's address as the next send record's (IPv4 only: others go through dgram). */
  private writeAddress(rinfo: dgram.RemoteInfo): boolean {
    if (rinfo.family !== 'IPv4') return false;
    const p = rinfo.address.split('.');
    if (p.length !== 4) return false;
    const at = this.count * UDP_META_SIZE;
    this.smeta.fill(0, at, at + UDP_META_SIZE);
    this.smeta.writeUInt16LE(2, at + 8);
    this.smeta.writeUInt16LE(rinfo.port, at + 10);
    for (let k = 0; k < 4; k++) this.smeta[at + 16 + k] = Number(p[k]);
    return true;
  }

  private lastV4 = -1;
  private lastV4Text = '';

  /** The client address of received message i, as dgram would give it. */
  clientOf(i: number): string {
    const m = this.rmeta;
    const at = i * UDP_META_SIZE;
    if (m.readUInt16LE(at + 8) !== 2) return formatIP(ipFromBytes(m.subarray(at + 16, at + 32)));
    // Clients come in runs (a busy one sends many): the last address's text is kept.
    const v4 = m.readUInt32BE(at + 16);
    if (v4 !== this.lastV4) {
      this.lastV4 = v4;
      this.lastV4Text = `${m[at + 16]}.${m[at + 17]}.${m[at + 18]}.${m[at + 19]}`;
    }
    return this.lastV4Text;
  }

  /** The reply function of received message i. */
  replier(i: number): (resp: Buffer) => void {
    const gen = this.generation;
    const sock = this.sock!;
    const at = i * UDP_META_SIZE;
    // What a late reply needs once the buffers are reused: the client's port and address.
    const port = this.rmeta.readUInt16LE(at + 10);
    const v4 = this.rmeta.readUInt16LE(at + 8) === 2 ? this.rmeta.readUInt32BE(at + 16) : -1;
    const v6 = v4 < 0 ? Buffer.from(this.rmeta.subarray(at + 16, at + 32)) : undefined;
    return (resp) => {
      if (gen === this.generation && this.sock === sock) { this.push(resp, i); return; }
      const address = v6 ? formatIP(ipFromBytes(v6)) : `${v4 >>> 24}.${(v4 >>> 16) & 255}.${(v4 >>> 8) & 255}.${v4 & 255}`;
      sendOne(sock, resp, port, address);
    };
  }

  private addressOf(rec: Buffer): { address: string; port: number } {
    const port = rec.readUInt16LE(10);
    if (rec.readUInt16LE(8) === 2) return { address: `${rec[16]}.${rec[17]}.${rec[18]}.${rec[19]}`, port };
    return { address: formatIP(ipFromBytes(rec.subarray(16, 32))), port };
  }

  private push(resp: Buffer, i: number): void {
    if (this.count === BATCH || this.used + resp.length > this.sbuf.length) this.flush();
    if (resp.length > this.sbuf.length) { const a = this.addressOf(this.rmeta.subarray(i * UDP_META_SIZE, (i + 1) * UDP_META_SIZE)); sendOne(this.sock!, resp, a.port, a.address); return; }
    this.rmeta.copy(this.smeta, this.count * UDP_META_SIZE, i * UDP_META_SIZE, (i + 1) * UDP_META_SIZE);
    this.pushAt(resp);
  }

  /** Appends resp as the next message; its address record is written already. */
  private pushAt(resp: Buffer): void {
    if (this.used + resp.length > this.sbuf.length) {
      // Keep the record just written: move it to slot 0 once the others are out.
      const rec = Buffer.from(this.smeta.subarray(this.count * UDP_META_SIZE, (this.count + 1) * UDP_META_SIZE));
      this.flush();
      rec.copy(this.smeta, 0);
    }
    if (resp.length > this.sbuf.length) { const a = this.addressOf(this.smeta.subarray(this.count * UDP_META_SIZE, (this.count + 1) * UDP_META_SIZE)); sendOne(this.sock!, resp, a.port, a.address); return; }
    const at = this.count * UDP_META_SIZE;
    this.sbuf.set(resp, this.used);
    this.smeta.writeUInt32LE(this.used, at);
    this.smeta.writeUInt32LE(resp.length, at + 4);
    this.used += resp.length;
    this.count++;
  }

  /** Sends the replies collected; what the kernel refuses now goes through dgram (queued). */
  private flush(): void {
    if (this.count === 0) return;
    let sent = native().udpSendBatch(this.fd, this.sbuf, this.smeta, this.count);
    if (sent < 0) sent = 0;
    for (let k = sent; k < this.count; k++) {
      const rec = this.smeta.subarray(k * UDP_META_SIZE, (k + 1) * UDP_META_SIZE);
      const off = rec.readUInt32LE(0);
      const a = this.addressOf(rec);
      sendOne(this.sock!, this.sbuf.subarray(off, off + rec.readUInt32LE(4)), a.port, a.address);
    }
    this.count = 0;
    this.used = 0;
  }

  /** Sends what is left and closes the batch: later replies go through dgram. */
  end(): void {
    this.flush();
    this.generation++;
  }
}

/** Sync `lookup` for dgram: our reply addresses are always IP literals. */
function literalLookup(address: string, _opts: unknown, cb: (err: Error | null, address: string, family: number) => void): void {
  cb(null, address, address.includes(':') ? 6 : 4);
}

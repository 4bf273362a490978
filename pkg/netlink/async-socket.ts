/**
 * AsyncNetlinkSocket: the NetlinkSocket of a long-lived process that serves many calls at once on
 * one event loop. Replies come from a uv_poll watcher on the socket (native nlWatch), so waiting
 * for the kernel never blocks the loop, and several requests of several calls can be in flight
 * on one socket: each datagram's messages go to the exchange that owns their sequence number.
 *
 * - A dump runs alone: the kernel keeps one dump per socket and refuses a second with EBUSY, so a
 *   dump waits until the one before it on this socket has finished. Other requests go out at once,
 *   during a dump too (their replies are told apart by sequence number).
 * - A timeout is a timer, never a blocking wait: it fails its own exchange (ETIMEDOUT) and drops
 *   that exchange's sequence numbers, so a late reply to it is ignored. Before it fails, it reads
 *   what is already queued on the socket without waiting: after a stall of the event loop, timers
 *   run before the poll phase, and a reply that did arrive in time must win. The timer keeps the
 *   process alive while a request waits; the watcher alone does not.
 * - A receive error (ENOBUFS: the kernel dropped replies because the queue was full) fails every
 *   exchange in flight, since any of them may have lost its answer; the socket goes on working.
 * - close() is one native call that stops the watcher and closes the fd after libuv lets go of
 *   it; a socket left open by a worker thread that ends is closed with the thread's environment.
 *
 * - The kernel processes a request inside sendmsg, so a send takes the time the kernel needs for
 *   it (an nftables commit, waiting for rtnl_lock). A request marked `slow` (a link delete, which
 *   waits ~20 ms for RCU grace periods) is sent from a thread of the addon (nlSendAsync), so the
 *   loop goes on, and several such waits overlap in the kernel (8 veth deletes at once: 54 ms
 *   against 181 one after another). Every other send is made on the loop: most take microseconds,
 *   and a thread would cost more than they do.
 */
import { constants } from 'node:os';
import { type SysError, native } from '../native.ts';
import { parseMessages } from './message.ts';
import { type Exchange, NetlinkSocketBase, RECV_TIMEOUT_MS, type Reply, fileReplies, netlinkError, timeoutError } from './socket.ts';

interface Pending {
  /** Every sequence number this exchange registered (its waits and its abortOn). */
  seqs: number[];
  open: Set<number>;
  replies: Map<number, Reply>;
  abortOn: number | undefined;
  resolve(r: Map<number, Reply>): void;
  reject(e: unknown): void;
  timer: NodeJS.Timeout;
  settled: boolean;
}

export class AsyncNetlinkSocket extends NetlinkSocketBase {
  readonly fd: number;
  readonly netns: string | null;
  /** Every sequence number still waited for, with the exchange it belongs to. */
  private readonly bySeq = new Map<number, Pending>();
  /** Settles when the last dump queued on this socket has finished. */
  private dumpTail: Promise<unknown> = Promise.resolve();
  private readonly timeoutMs: number;
  private closed = false;

  private constructor(fd: number, netns: string | null, timeoutMs: number) {
    super();
    this.fd = fd;
    this.netns = netns;
    this.timeoutMs = timeoutMs;
    native().nlWatch(fd, (err, datagrams) => this.onData(err, datagrams));
  }

  /**
   * Opens a socket of `protocol` inside the namespace at `netnsPath` (omitted = this process's).
   * `timeoutMs` bounds each exchange (default RECV_TIMEOUT_MS).
   */
  static open(protocol: number, netnsPath?: string | null, opts: { timeoutMs?: number } = {}): AsyncNetlinkSocket {
    const fd = native().nlOpen(protocol, netnsPath ?? null);
    try {
      return new AsyncNetlinkSocket(fd, netnsPath ?? null, opts.timeoutMs ?? RECV_TIMEOUT_MS);
    } catch (err) {
      native().nlClose(fd);
      throw err;
    }
  }

  /** How many exchanges are waiting for the kernel (for a daemon's accounting and for tests). */
  get inFlight(): number {
    return new Set(this.bySeq.values()).size;
  }

  exchange(buf: Buffer, x: Exchange): Promise<Map<number, Reply>> {
    if (!x.dump) return this.start(buf, x);
    const run = this.dumpTail.then(() => this.start(buf, x));
    this.dumpTail = run.catch(() => undefined);
    return run;
  }

  private start(buf: Buffer, x: Exchange): Promise<Map<number, Reply>> {
    if (this.closed) return Promise.reject(netlinkError(constants.errno.EBADF, x.op, 'socket closed'));
    return new Promise((resolve, reject) => {
      const p: Pending = {
        seqs: x.abortOn === undefined ? [...x.wait] : [...x.wait, x.abortOn], open: new Set(x.wait), replies: new Map(), abortOn: x.abortOn, resolve, reject, settled: false,
        timer: setTimeout(() => this.expire(p, x.op), this.timeoutMs),
      };
      for (const s of p.seqs) this.bySeq.set(s, p);
      const sent = () => {
        if (!p.open.size) this.finish(p);
        else this.takeQueued();
      };
      try {
        if (x.slow) {
          // The reply is queued by the time the send returns; if the socket was closed meanwhile,
          // close() has failed the exchange already and the fd number may be another file's.
          native().nlSendAsync(this.fd, buf).then(() => {
            if (!this.closed && !p.settled) sent();
          }, (err: unknown) => this.finish(p, err));
          return;
        }
        native().nlSend(this.fd, buf);
      } catch (err) {
        this.finish(p, err);
        return;
      }
      sent();
    });
  }

  /**
   * Reads, without waiting, what the kernel has queued already. Why right after a send: the
   * kernel answers most requests while it handles the send (rtnetlink and nfnetlink do their
   * work in sendmsg, a dump makes its next part in each recvmsg), so the whole exchange usually
   * ends here, a turn of the event loop sooner than the watcher would end it. What is not there
   * yet comes through the watcher as before: nothing here can block.
   */
  private takeQueued(): void {
    const queued: Buffer[] = [];
    let err: SysError | null = null;
    try {
      for (let d = native().nlRecv(this.fd, 0); d; d = native().nlRecv(this.fd, 0)) queued.push(d);
    } catch (e) {
      err = e as SysError;
    }
    if (queued.length || err) this.onData(err, queued);
  }

  /** Fails an exchange whose time is up, unless what is queued on the socket already answers it. */
  private expire(p: Pending, op: string): void {
    this.takeQueued();
    if (!p.settled) this.finish(p, timeoutError(op));
  }

  /** Ends an exchange: forgets its sequence numbers, clears its timer, settles its promise. */
  private finish(p: Pending, err?: unknown): void {
    if (p.settled) return;
    p.settled = true;
    clearTimeout(p.timer);
    for (const s of p.seqs) if (this.bySeq.get(s) === p) this.bySeq.delete(s);
    if (err) p.reject(err);
    else p.resolve(p.replies);
  }

  private onData(err: SysError | null, datagrams: Buffer[]): void {
    for (const d of datagrams) {
      const msgs = parseMessages(d);
      // Group by exchange first: one datagram (a batch's ACKs) usually answers one exchange.
      const touched = new Set<Pending>();
      for (const m of msgs) {
        const p = this.bySeq.get(m.seq);
        if (p) touched.add(p);
      }
      for (const p of touched) {
        const aborted = fileReplies(msgs, p.open, p.replies, p.abortOn);
        if (aborted || !p.open.size) this.finish(p);
      }
    }
    if (err) for (const p of new Set(this.bySeq.values())) this.finish(p, err);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const p of new Set(this.bySeq.values())) this.finish(p, netlinkError(constants.errno.EBADF, 'netlink', 'socket closed'));
    // One call stops the watcher and closes the fd after it (docs in native/netns.cc).
    try {
      native().nlClose(this.fd);
    } catch { /* already closed */ }
  }
}

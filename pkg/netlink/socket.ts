/**
 * NetlinkSocket: a netlink socket bound to one network namespace at open time (the native layer
 * opens it on a short-lived thread inside that namespace), and the one interface that RouteHandle,
 * Nftables and conntrack speak through. Two implementations share everything above the wire:
 *
 * - `BlockingNetlinkSocket` (here): sends, then blocks the thread in poll until the replies are
 *   in. Right for a fresh plugin process, which has nothing else to do meanwhile.
 * - `AsyncNetlinkSocket` (async-socket.ts): replies arrive from the event loop, so several calls
 *   in flight in one process share a socket without blocking each other.
 *
 * Both reduce to `exchange()`: send one datagram of encoded messages and collect, per sequence
 * number, the messages that answer it up to its final reply (the ACK or error, or NLMSG_DONE of
 * a dump). request/dump/batch are built on it once, in NetlinkSocketBase; a fake (fake-socket.ts)
 * does the same for unit tests. Kernel errors become SysErrors with `code` (EEXIST...), `errno`,
 * `op` and the extended ACK.
 */
import { constants } from 'node:os';
import { type SysError, native } from '../native.ts';
import {
  type NlMessage, NLMSG_DONE, NLMSG_ERROR, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
  encodeMessage, parseError, parseMessages,
} from './message.ts';

/** Netlink protocols (<linux/netlink.h>). */
export const NETLINK_ROUTE = 0;
export const NETLINK_NETFILTER = 12;

const ERRNO_NAMES = new Map<number, string>(Object.entries(constants.errno).map(([k, v]) => [v, k]));
/** How long a request waits for the kernel before it fails with ETIMEDOUT. */
export const RECV_TIMEOUT_MS = 10_000;

/** Builds the error a failed request raises: `RTM_NEWLINK: File exists (extack)`. */
export function netlinkError(errno: number, op: string, extack?: string): SysError {
  const code = ERRNO_NAMES.get(errno) ?? 'EUNKNOWN';
  const e = new Error(`${op}: ${code}${extack ? ` (${extack})` : ''}`) as SysError;
  e.code = code;
  e.errno = errno;
  e.op = op;
  e.syscall = op;
  if (extack) e.extack = extack;
  return e;
}

/** Builds the error of a request that got no answer in time (ETIMEDOUT). */
export function timeoutError(op: string): SysError {
  return netlinkError(constants.errno.ETIMEDOUT, op, 'no reply from the kernel');
}

/** What the kernel answered to one message: the messages before the final one, and its errno. */
export interface Reply {
  /** Data of a GET, the parts of a dump; empty for a plain ACK. */
  messages: NlMessage[];
  /** 0 for an ACK or NLMSG_DONE, else the kernel's errno. */
  errno: number;
  extack?: string;
}

/** What one exchange waits for. */
export interface Exchange {
  /** Sequence numbers whose final reply (NLMSG_ERROR, NLMSG_DONE) ends their part of the exchange. */
  wait: readonly number[];
  /**
   * A sequence number answered only when it fails (an nfnetlink BATCH_BEGIN): such an answer
   * ends the whole exchange, since the kernel then processes nothing after it.
   */
  abortOn?: number;
  /** The datagram starts a dump: a socket runs one dump at a time (the kernel refuses a second with EBUSY). */
  dump?: boolean;
  /** What the exchange does, for errors (ETIMEDOUT names it). */
  op: string;
  /**
   * The kernel holds this request long inside sendmsg (a link delete waits for RCU grace
   * periods, ~20 ms): a socket serving many calls sends it from a thread, so that the others go
   * on meanwhile (async-socket.ts). A one-call socket sends everything the same way.
   */
  slow?: boolean;
}

/** One request of a batch(): its message type, flags (REQUEST and ACK are added), body and `op` for errors. */
export interface BatchRequest { type: number; flags: number; body: Buffer; op: string }

/** A netlink socket bound to a namespace; see the module header. Every method but close() is asynchronous. */
export interface NetlinkSocket {
  /** The namespace path it was opened in (null: the opener's own). */
  readonly netns: string | null;
  /** Reserves a sequence number for a message the caller encodes itself. */
  allocSeq(): number;
  /**
   * Sends `buf` (pre-encoded messages, one datagram) and resolves with the replies, keyed by
   * sequence number: every seq of `x.wait`, unless the `x.abortOn` seq failed first (then that
   * reply is there and the unanswered ones are not). Rejects on ETIMEDOUT or a socket error.
   */
  exchange(buf: Buffer, x: Exchange): Promise<Map<number, Reply>>;
  /**
   * Sends one request with NLM_F_ACK; resolves with the messages before the ACK, rejects with
   * the kernel's error. `slow`: see Exchange.
   */
  request(type: number, flags: number, body: Buffer, op: string, opts?: { slow?: boolean }): Promise<NlMessage[]>;
  /** Sends a dump request and resolves with every message of the dump. */
  dump(type: number, body: Buffer, op: string): Promise<NlMessage[]>;
  /**
   * Sends several requests in one datagram (independent rtnetlink requests, say) and waits for
   * every ACK. The first error in request order is thrown once all replies are in, tagged with
   * the `op` of its request; requests around it still took effect.
   */
  batch(reqs: readonly BatchRequest[]): Promise<NlMessage[]>;
  close(): void;
}

/** request/dump/batch over `exchange`, shared by every implementation. */
export abstract class NetlinkSocketBase implements NetlinkSocket {
  abstract readonly netns: string | null;
  private seq = Math.floor(Math.random() * 0x7fffffff);

  allocSeq(): number {
    this.seq = (this.seq + 1) >>> 0 || 1;
    return this.seq;
  }

  abstract exchange(buf: Buffer, x: Exchange): Promise<Map<number, Reply>>;
  abstract close(): void;

  async request(type: number, flags: number, body: Buffer, op: string, opts: { slow?: boolean } = {}): Promise<NlMessage[]> {
    const seq = this.allocSeq();
    const r = (await this.exchange(encodeMessage(type, flags | NLM_F_REQUEST | NLM_F_ACK, seq, body), { wait: [seq], op, slow: opts.slow })).get(seq)!;
    if (r.errno !== 0) throw netlinkError(r.errno, op, r.extack);
    return r.messages;
  }

  async dump(type: number, body: Buffer, op: string): Promise<NlMessage[]> {
    const seq = this.allocSeq();
    const r = (await this.exchange(encodeMessage(type, NLM_F_REQUEST | NLM_F_DUMP, seq, body), { wait: [seq], op, dump: true })).get(seq)!;
    if (r.errno !== 0) throw netlinkError(r.errno, op, r.extack);
    return r.messages;
  }

  async batch(reqs: readonly BatchRequest[]): Promise<NlMessage[]> {
    if (!reqs.length) return [];
    const seqs = reqs.map(() => this.allocSeq());
    const buf = Buffer.concat(reqs.map((r, i) => encodeMessage(r.type, r.flags | NLM_F_REQUEST | NLM_F_ACK, seqs[i]!, r.body)));
    const replies = await this.exchange(buf, { wait: seqs, op: reqs[0]!.op });
    const failed = seqs.findIndex((s) => replies.get(s)!.errno !== 0);
    if (failed >= 0) {
      const r = replies.get(seqs[failed]!)!;
      throw netlinkError(r.errno, reqs[failed]!.op, r.extack);
    }
    return seqs.flatMap((s) => replies.get(s)!.messages);
  }
}

/**
 * Files the messages of one datagram into `replies` for the seqs in `open` (removing a seq once
 * its final reply is in). Returns true when the `abortOn` seq failed. Shared by the socket
 * implementations and the fake: this is the one place that reads what a reply means.
 */
export function fileReplies(msgs: readonly NlMessage[], open: Set<number>, replies: Map<number, Reply>, abortOn?: number): boolean {
  for (const m of msgs) {
    if (m.seq === abortOn && m.type === NLMSG_ERROR) {
      const { errno, extack } = parseError(m);
      if (errno === 0) continue;
      replies.set(m.seq, extack ? { messages: [], errno, extack } : { messages: [], errno });
      return true;
    }
    if (!open.has(m.seq)) continue; // a stale reply of an earlier, timed-out request
    let r = replies.get(m.seq);
    if (!r) replies.set(m.seq, r = { messages: [], errno: 0 });
    if (m.type === NLMSG_ERROR) {
      const { errno, extack } = parseError(m);
      r.errno = errno;
      if (extack) r.extack = extack;
      open.delete(m.seq);
    } else if (m.type === NLMSG_DONE) {
      open.delete(m.seq);
    } else {
      r.messages.push(m);
    }
  }
  return false;
}

/** The socket of a fresh plugin process: each exchange blocks the thread until its replies are in. */
export class BlockingNetlinkSocket extends NetlinkSocketBase {
  readonly fd: number;
  readonly netns: string | null;
  private closed = false;
  private constructor(fd: number, netns: string | null) {
    super();
    this.fd = fd;
    this.netns = netns;
  }

  /** Opens a socket of `protocol` inside the namespace at `netnsPath` (omitted = this process's). */
  static open(protocol: number, netnsPath?: string | null): BlockingNetlinkSocket {
    return new BlockingNetlinkSocket(native().nlOpen(protocol, netnsPath ?? null), netnsPath ?? null);
  }

  exchange(buf: Buffer, x: Exchange): Promise<Map<number, Reply>> {
    try {
      return Promise.resolve(this.exchangeSync(buf, x));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  private exchangeSync(buf: Buffer, x: Exchange): Map<number, Reply> {
    native().nlSend(this.fd, buf);
    const open = new Set(x.wait);
    const replies = new Map<number, Reply>();
    while (open.size) {
      const d = native().nlRecv(this.fd, RECV_TIMEOUT_MS);
      if (!d) throw timeoutError(x.op);
      if (fileReplies(parseMessages(d), open, replies, x.abortOn)) break;
    }
    return replies;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      native().nlClose(this.fd);
    } catch { /* already closed */ }
  }
}

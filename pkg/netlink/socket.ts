/**
 * A netlink socket bound to one network namespace at open time (the native layer opens it on a
 * short-lived thread inside that namespace). Synchronous request/response, which suits a
 * short-lived plugin: send a request or a batch, read every reply until the ACK or DONE for it.
 * Kernel errors become SysErrors with `code` (EEXIST...), `errno`, `op` and the extended ACK.
 */
import { closeSync } from 'node:fs';
import { constants } from 'node:os';
import { type SysError, native } from '../native.ts';
import {
  type NlMessage, NLMSG_DONE, NLMSG_ERROR, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
  encodeMessage, parseError, parseMessages,
} from './message.ts';

export const NETLINK_ROUTE = 0;
export const NETLINK_NETFILTER = 12;

const ERRNO_NAMES = new Map<number, string>(Object.entries(constants.errno).map(([k, v]) => [v, k]));
const RECV_TIMEOUT_MS = 10_000;

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

export interface BatchRequest { type: number; flags: number; body: Buffer; op: string }

export class NetlinkSocket {
  private seq = Math.floor(Math.random() * 0x7fffffff);
  private closed = false;
  readonly fd: number;
  readonly netns: string | null;
  private constructor(fd: number, netns: string | null) {
    this.fd = fd;
    this.netns = netns;
  }

  /** Opens a socket of `protocol` inside the namespace at `netnsPath` (omitted = this process's). */
  static open(protocol: number, netnsPath?: string | null): NetlinkSocket {
    return new NetlinkSocket(native().nlOpen(protocol, netnsPath ?? null), netnsPath ?? null);
  }

  private nextSeq(): number {
    this.seq = (this.seq + 1) >>> 0 || 1;
    return this.seq;
  }

  /** Sends one request with NLM_F_ACK and returns the messages that came before the ACK. */
  request(type: number, flags: number, body: Buffer, op: string): NlMessage[] {
    const seq = this.nextSeq();
    native().nlSend(this.fd, encodeMessage(type, flags | NLM_F_REQUEST | NLM_F_ACK, seq, body));
    return this.collect(seq, op);
  }

  /** Sends a dump request and returns every message of the dump. */
  dump(type: number, body: Buffer, op: string): NlMessage[] {
    const seq = this.nextSeq();
    native().nlSend(this.fd, encodeMessage(type, NLM_F_REQUEST | NLM_F_DUMP, seq, body));
    return this.collect(seq, op);
  }

  /**
   * Sends several requests in one datagram (an nfnetlink transaction, or independent rtnetlink
   * requests) and waits for every ACK. The first kernel error is thrown after all replies are in,
   * tagged with the `op` of the request that caused it.
   */
  batch(reqs: readonly BatchRequest[]): NlMessage[] {
    const seqs: number[] = [];
    const bufs = reqs.map((r) => {
      const seq = this.nextSeq();
      seqs.push(seq);
      return encodeMessage(r.type, r.flags | NLM_F_REQUEST | NLM_F_ACK, seq, r.body);
    });
    native().nlSend(this.fd, Buffer.concat(bufs));
    const pending = new Set(seqs);
    const replies: NlMessage[] = [];
    let firstErr: SysError | undefined;
    while (pending.size) {
      for (const m of this.recvOnce(reqs[0]?.op ?? 'netlink batch')) {
        if (!pending.has(m.seq)) continue;
        if (m.type === NLMSG_ERROR) {
          pending.delete(m.seq);
          const { errno, extack } = parseError(m);
          if (errno !== 0 && !firstErr) firstErr = netlinkError(errno, reqs[seqs.indexOf(m.seq)]!.op, extack);
        } else replies.push(m);
      }
    }
    if (firstErr) throw firstErr;
    return replies;
  }

  /**
   * Reserves a sequence number for a message the caller encodes itself (an nfnetlink batch, whose
   * BEGIN and END messages get no reply and so cannot go through batch()).
   */
  allocSeq(): number {
    return this.nextSeq();
  }

  /** Sends pre-encoded messages in one datagram (one sendmsg: a batch must not be split). */
  sendRaw(buf: Buffer): void {
    native().nlSend(this.fd, buf);
  }

  /** Receives one datagram and splits it into messages; throws ETIMEDOUT naming `op`. */
  receive(op: string): NlMessage[] {
    return this.recvOnce(op);
  }

  private recvOnce(op: string): NlMessage[] {
    const buf = native().nlRecv(this.fd, RECV_TIMEOUT_MS);
    if (!buf) throw netlinkError(constants.errno.ETIMEDOUT, op, 'no reply from the kernel');
    return parseMessages(buf);
  }

  private collect(seq: number, op: string): NlMessage[] {
    const out: NlMessage[] = [];
    for (;;) {
      for (const m of this.recvOnce(op)) {
        if (m.seq !== seq) continue; // a stale reply of an earlier, timed-out request
        if (m.type === NLMSG_ERROR) {
          const { errno, extack } = parseError(m);
          if (errno !== 0) throw netlinkError(errno, op, extack);
          return out;
        }
        if (m.type === NLMSG_DONE) return out;
        out.push(m);
      }
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      // node:fs closes any fd number, including a socket the addon opened.
      closeSync(this.fd);
    } catch { /* already closed */ }
  }
}

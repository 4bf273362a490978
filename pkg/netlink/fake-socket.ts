/**
 * A NetlinkSocket with no kernel behind it, for unit tests of everything that encodes requests
 * (RouteHandle, Nftables), in the style of mdlayher/netlink's nltest: it records every datagram
 * it is given and answers each message through a function the test supplies. No root and no
 * addon needed. Not used by the executables.
 */
import { type NlMessage, NLMSG_DONE, NLMSG_ERROR, NLM_F_ACK, NLM_F_DUMP, encodeMessage, parseMessages } from './message.ts';
import { type Exchange, NetlinkSocketBase, type Reply, fileReplies, timeoutError } from './socket.ts';

/**
 * How the fake answers one message: nothing (undefined), an NLMSG_ERROR with this errno (0 is an
 * ACK), or data messages followed by the final reply (`errno`, or NLMSG_DONE for a dump).
 */
export type FakeAnswer = undefined | number | { data: Buffer[]; errno?: number };

/** Answers as the kernel does by default: an ACK to a message that asks for one, an empty dump to a dump, else silence. */
export function defaultAnswer(m: NlMessage): FakeAnswer {
  if (m.flags & NLM_F_ACK) return 0;
  if ((m.flags & NLM_F_DUMP) === NLM_F_DUMP) return { data: [] };
  return undefined;
}

function errorMessage(m: NlMessage, errno: number): Buffer {
  const p = Buffer.alloc(4 + 16);
  p.writeInt32LE(-errno, 0);
  // The kernel echoes the header of the request it answers (CAPPED: the header only).
  p.writeUInt32LE(16 + m.payload.length, 4);
  p.writeUInt16LE(m.type, 8);
  p.writeUInt16LE(m.flags, 10);
  p.writeUInt32LE(m.seq, 12);
  return encodeMessage(NLMSG_ERROR, 0, m.seq, p);
}

export class FakeNetlinkSocket extends NetlinkSocketBase {
  readonly netns: string | null;
  /** Every datagram sent, in order. */
  readonly sent: Buffer[] = [];
  closed = false;
  private readonly answer: (m: NlMessage, index: number) => FakeAnswer;

  /** `answer(m, i)` is called for each message of a datagram, `i` its position in it. */
  constructor(answer: (m: NlMessage, index: number) => FakeAnswer = defaultAnswer, netns: string | null = null) {
    super();
    this.answer = answer;
    this.netns = netns;
  }

  /** Every message sent, in order, across datagrams. */
  get messages(): NlMessage[] {
    return this.sent.flatMap((b) => parseMessages(b));
  }

  async exchange(buf: Buffer, x: Exchange): Promise<Map<number, Reply>> {
    this.sent.push(Buffer.from(buf));
    const out: Buffer[] = [];
    parseMessages(buf).forEach((m, i) => {
      const a = this.answer(m, i);
      if (a === undefined) return;
      if (typeof a === 'number') { out.push(errorMessage(m, a)); return; }
      for (const d of a.data) out.push(encodeMessage(m.type, 0, m.seq, d));
      out.push(a.errno === undefined ? encodeMessage(NLMSG_DONE, 0, m.seq, Buffer.alloc(4)) : errorMessage(m, a.errno));
    });
    const open = new Set(x.wait);
    const replies = new Map<number, Reply>();
    fileReplies(parseMessages(Buffer.concat(out)), open, replies, x.abortOn);
    if (open.size && !replies.has(x.abortOn ?? -1)) throw timeoutError(x.op);
    return replies;
  }

  close(): void {
    this.closed = true;
  }
}

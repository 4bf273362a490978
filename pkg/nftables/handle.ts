/**
 * A handle on nf_tables in one network namespace: transactions, dumps and point queries over a
 * NETLINK_NETFILTER NetlinkSocket bound to that namespace (blocking in a fresh process,
 * asynchronous in a daemon that keeps the host's socket open across calls).
 *
 * Transactions: every message of one `transact()` call goes into a single
 * NFNL_MSG_BATCH_BEGIN .. NFNL_MSG_BATCH_END batch sent in one sendmsg. The kernel applies the
 * batch as one transaction: if any message fails, none of them takes effect. Each message inside
 * carries NLM_F_ACK, so the kernel answers every one of them (nfnetlink delivers all ACKs and
 * errors once the whole batch has been processed); BEGIN and END get no reply, except an error
 * on BEGIN when the batch as a whole is refused (ERESTART when the generation id given with
 * `genId` is stale). A failure is thrown as an NftError (`code`, `errno`, `extack`) whose `op` is
 * the `what` of the message the kernel blamed, with its position (`index`) and its `ref`: the
 * opaque value the caller attached to that message (the element it adds, say).
 *
 * Tests inject failures by wrapping the socket (any NetlinkSocket will do).
 */
import { constants } from 'node:os';
import { type SysError } from '../native.ts';
import { type Attr, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REQUEST, type NlMessage, attr, encodeAttrs, encodeMessage, parseAttrs } from '../netlink/message.ts';
import { BlockingNetlinkSocket, NETLINK_NETFILTER, type NetlinkSocket, netlinkError } from '../netlink/socket.ts';
import {
  NFNL_BATCH_GENID, NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END, NFNL_SUBSYS_NFTABLES, NFTA_CHAIN, NFTA_GEN_ID, NFTA_RULE,
  NFTA_SET, NFTA_SET_ELEM_LIST, NFT_MSG, NFPROTO, msgType,
} from './consts.ts';
import {
  type ChainInfo, type ElementInfo, type NftMsg, type RuleInfo, type SetInfo, type TableRef,
  decodeChain, decodeElements, decodeRule, decodeSet, encodeBody, nfgenmsg,
} from './objects.ts';

/**
 * A failed transaction: the kernel's error, naming the message that caused it among the `count`
 * sent: its `op` (the message's `what`), `index` (-1 when the batch as a whole was refused) and
 * `ref` (the message's own `ref`, undefined when it had none or the batch was refused).
 */
export interface NftError extends SysError { index: number; count: number; ref?: unknown }

/** True for the error a failed transact() throws. */
export function isNftError(err: unknown): err is NftError {
  return err instanceof Error && typeof (err as NftError).index === 'number' && typeof (err as NftError).errno === 'number';
}

const isNew = (msg: number): boolean => msg === NFT_MSG.NEWTABLE || msg === NFT_MSG.NEWCHAIN || msg === NFT_MSG.NEWRULE
  || msg === NFT_MSG.NEWSET || msg === NFT_MSG.NEWSETELEM;

/**
 * Opens an nf_tables handle on a blocking socket in the namespace at `netnsPath` (omitted = this
 * process's), for tools, tests and benchmarks; plugins get theirs from CmdArgs.kernel.
 */
export function openNftables(netnsPath?: string | null): Nftables {
  return new Nftables(BlockingNetlinkSocket.open(NETLINK_NETFILTER, netnsPath));
}

export class Nftables {
  /** The NETLINK_NETFILTER socket under the handle (conntrack requests may share it). */
  readonly sock: NetlinkSocket;
  constructor(sock: NetlinkSocket) {
    this.sock = sock;
  }

  close(): void {
    this.sock.close();
  }

  /**
   * Applies `msgs` as one atomic transaction. NEW* messages get NLM_F_CREATE (so adding an
   * existing table, chain or set is a no-op) plus their own flags (NLM_F_EXCL for elements that
   * must not exist yet, NLM_F_APPEND for rules). An empty list sends nothing.
   * Equivalent to: `nft -f file` with the same commands.
   */
  async transact(msgs: readonly NftMsg[], opts: { genId?: number } = {}): Promise<void> {
    if (!msgs.length) return;
    const beginSeq = this.sock.allocSeq();
    const beginAttrs: Attr[] = opts.genId !== undefined ? [attr.u32be(NFNL_BATCH_GENID, opts.genId)] : [];
    const parts = [encodeMessage(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, beginSeq, Buffer.concat([nfgenmsg(0, NFNL_SUBSYS_NFTABLES), encodeAttrs(beginAttrs)]))];
    const seqs: number[] = [];
    for (const m of msgs) {
      const seq = this.sock.allocSeq();
      seqs.push(seq);
      const flags = NLM_F_REQUEST | NLM_F_ACK | (isNew(m.msg) ? NLM_F_CREATE : 0) | m.flags;
      parts.push(encodeMessage(msgType(m.msg), flags, seq, encodeBody(m)));
    }
    parts.push(encodeMessage(NFNL_MSG_BATCH_END, NLM_F_REQUEST, this.sock.allocSeq(), nfgenmsg(0, NFNL_SUBSYS_NFTABLES)));
    const replies = await this.sock.exchange(Buffer.concat(parts), { wait: seqs, abortOn: beginSeq, op: msgs[0]!.what });
    const refused = replies.get(beginSeq);
    if (refused) {
      throw Object.assign(netlinkError(refused.errno, 'nftables transaction', refused.extack), { index: -1, count: msgs.length }) as NftError;
    }
    const i = seqs.findIndex((s) => replies.get(s)!.errno !== 0);
    if (i < 0) return;
    const r = replies.get(seqs[i]!)!;
    const err = Object.assign(netlinkError(r.errno, msgs[i]!.what, r.extack), { index: i, count: msgs.length }) as NftError;
    if (msgs[i]!.ref !== undefined) err.ref = msgs[i]!.ref;
    throw err;
  }

  /** Returns the ruleset generation id; pass it to transact() to fail with ERESTART if anything changed since. */
  async generation(): Promise<number> {
    const [r] = await this.request([{ msg: NFT_MSG.GETGEN, flags: 0, family: 0, attrs: [], what: 'get ruleset generation' }]);
    const id = r?.[0] ? parseAttrs(r[0].payload, 4).get(NFTA_GEN_ID) : undefined;
    if (!id || id.length < 4) throw new Error('get ruleset generation: no NFTA_GEN_ID in the reply');
    return id.readUInt32BE(0);
  }

  /**
   * Sends independent (non-batch) requests in one datagram and returns each one's reply
   * messages; a request the kernel answered with ENOENT gets `undefined`, other errors throw.
   * At most one of them may be a dump (the kernel runs one dump per socket at a time).
   */
  async request(msgs: readonly NftMsg[]): Promise<(NlMessage[] | undefined)[]> {
    if (!msgs.length) return [];
    const seqs = msgs.map(() => this.sock.allocSeq());
    const buf = Buffer.concat(msgs.map((m, i) => encodeMessage(msgType(m.msg), NLM_F_REQUEST | NLM_F_ACK | m.flags, seqs[i]!, encodeBody(m))));
    const dump = msgs.some((m) => (m.flags & NLM_F_DUMP) === NLM_F_DUMP);
    const replies = await this.sock.exchange(buf, { wait: seqs, op: msgs[0]!.what, dump });
    let err: SysError | undefined;
    const out = seqs.map((s, i) => {
      const r = replies.get(s)!;
      if (r.errno === constants.errno.ENOENT) return undefined;
      if (r.errno !== 0 && !err) err = netlinkError(r.errno, msgs[i]!.what, r.extack);
      return r.messages;
    });
    if (err) throw err;
    return out;
  }

  /** Dumps objects of one kind; a missing table or set is an empty list. */
  private async dump(msg: number, family: number, attrs: Attr[], what: string): Promise<NlMessage[]> {
    const [r] = await this.request([{ msg, flags: NLM_F_DUMP, family, attrs, what }]);
    return r ?? [];
  }

  /** Equivalent to: `nft list chains` restricted to table `t`. */
  async listChains(t: TableRef): Promise<ChainInfo[]> {
    return (await this.dump(NFT_MSG.GETCHAIN, NFPROTO[t.family], [attr.str(NFTA_CHAIN.TABLE, t.name)], `list chains of ${t.name}`))
      .map((m) => decodeChain(m.payload)).filter((c) => c.table === t.name);
  }

  /**
   * Lists every chain of every table and family in the namespace, the foreign ones included (to
   * find the base chains on a hook). Equivalent to: `nft list chains`.
   */
  async listAllChains(): Promise<ChainInfo[]> {
    return (await this.dump(NFT_MSG.GETCHAIN, 0, [], 'list chains')).map((m) => decodeChain(m.payload));
  }

  /** Lists the rules of table `t`, or of one of its chains. Equivalent to: `nft list table inet cnikit` (its rules). */
  async listRules(t: TableRef, chain?: string): Promise<RuleInfo[]> {
    const attrs: Attr[] = [attr.str(NFTA_RULE.TABLE, t.name)];
    if (chain) attrs.push(attr.str(NFTA_RULE.CHAIN, chain));
    return (await this.dump(NFT_MSG.GETRULE, NFPROTO[t.family], attrs, `list rules of ${t.name}${chain ? ` ${chain}` : ''}`))
      .map((m) => decodeRule(m.payload)).filter((r) => r.table === t.name && (!chain || r.chain === chain));
  }

  /** Equivalent to: `nft list sets` restricted to table `t`. */
  async listSets(t: TableRef): Promise<SetInfo[]> {
    return (await this.dump(NFT_MSG.GETSET, NFPROTO[t.family], [attr.str(NFTA_SET.TABLE, t.name)], `list sets of ${t.name}`))
      .map((m) => decodeSet(m.payload)).filter((s) => s.table === t.name);
  }

  /** Equivalent to: `nft list set inet cnikit SET` (its elements; none when the set is missing). */
  async listElements(t: TableRef, set: string): Promise<ElementInfo[]> {
    const attrs = [attr.str(NFTA_SET_ELEM_LIST.TABLE, t.name), attr.str(NFTA_SET_ELEM_LIST.SET, set)];
    return (await this.dump(NFT_MSG.GETSETELEM, NFPROTO[t.family], attrs, `list elements of ${set}`)).flatMap((m) => decodeElements(m.payload));
  }

  /**
   * Looks up elements by key, all in one round trip (point queries, not dumps, so the cost does
   * not depend on how many elements the sets hold). Returns, per query, the element or undefined.
   */
  async getElements(queries: readonly NftMsg[]): Promise<(ElementInfo | undefined)[]> {
    return (await this.request(queries)).map((r) => (r?.length ? decodeElements(r[0]!.payload)[0] : undefined));
  }
}

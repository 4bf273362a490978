/**
 * A handle on nf_tables in one network namespace: transactions, dumps and point queries over a
 * NETLINK_NETFILTER socket bound to that namespace when it is opened (`openNftables(netns)`).
 *
 * Transactions: every message of one `transact()` call goes into a single
 * NFNL_MSG_BATCH_BEGIN .. NFNL_MSG_BATCH_END batch sent in one sendmsg. The kernel applies the
 * batch as one transaction: if any message fails, none of them takes effect. Each message inside
 * carries NLM_F_ACK, so the kernel answers every one of them (nfnetlink delivers all ACKs and
 * errors once the whole batch has been processed); BEGIN and END get no reply, except an error
 * on BEGIN when the batch as a whole is refused (ERESTART when the generation id given with
 * `genId` is stale). A failure is thrown as a SysError (`code`, `errno`, `extack`) whose `op` is
 * the `what` of the message the kernel blamed, plus `index`, its position in the batch.
 *
 * The socket is an `NftTransport`, so tests can wrap it to inject failures.
 */
import { constants } from 'node:os';
import { type SysError } from '../native.ts';
import { type Attr, NLMSG_DONE, NLMSG_ERROR, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REQUEST, type NlMessage, attr, encodeAttrs, encodeMessage, parseAttrs, parseError } from '../netlink/message.ts';
import { NETLINK_NETFILTER, NetlinkSocket, netlinkError } from '../netlink/socket.ts';
import {
  NFNL_BATCH_GENID, NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END, NFNL_SUBSYS_NFTABLES, NFTA_CHAIN, NFTA_GEN_ID, NFTA_RULE,
  NFTA_SET, NFTA_SET_ELEM_LIST, NFT_MSG, NFPROTO, msgType,
} from './consts.ts';
import {
  type ChainInfo, type ElementInfo, type NftMsg, type RuleInfo, type SetInfo, type TableInfo, type TableRef,
  decodeChain, decodeElements, decodeRule, decodeSet, decodeTable, encodeBody, nfgenmsg,
} from './objects.ts';

/** The part of NetlinkSocket a handle needs. */
export interface NftTransport {
  allocSeq(): number;
  sendRaw(buf: Buffer): void;
  receive(op: string): NlMessage[];
  close(): void;
}

/**
 * A failed transaction: the kernel's error, naming the message that caused it (`op`, `index`;
 * -1 when the batch as a whole was refused) among the `count` messages sent.
 */
export interface NftError extends SysError { index: number; count: number }

export function isNftError(err: unknown): err is NftError {
  return err instanceof Error && typeof (err as NftError).index === 'number' && typeof (err as NftError).errno === 'number';
}

const isNew = (msg: number): boolean => msg === NFT_MSG.NEWTABLE || msg === NFT_MSG.NEWCHAIN || msg === NFT_MSG.NEWRULE
  || msg === NFT_MSG.NEWSET || msg === NFT_MSG.NEWSETELEM;

/** Opens an nf_tables handle in the namespace at `netnsPath` (omitted = this process's). */
export function openNftables(netnsPath?: string | null): Nftables {
  return new Nftables(NetlinkSocket.open(NETLINK_NETFILTER, netnsPath));
}

export class Nftables {
  private readonly sock: NftTransport;
  constructor(sock: NftTransport) {
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
  transact(msgs: readonly NftMsg[], opts: { genId?: number } = {}): void {
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
    this.sock.sendRaw(Buffer.concat(parts));

    const index = new Map(seqs.map((s, i) => [s, i]));
    const pending = new Set(seqs);
    let first: NftError | undefined;
    while (pending.size) {
      for (const r of this.sock.receive(msgs[0]!.what)) {
        if (r.type !== NLMSG_ERROR) continue;
        if (r.seq === beginSeq) {
          const { errno, extack } = parseError(r);
          throw Object.assign(netlinkError(errno, 'nftables transaction', extack), { index: -1, count: msgs.length }) as NftError;
        }
        const i = index.get(r.seq);
        if (i === undefined || !pending.delete(r.seq)) continue;
        const { errno, extack } = parseError(r);
        if (errno !== 0 && (!first || i < first.index)) first = Object.assign(netlinkError(errno, msgs[i]!.what, extack), { index: i, count: msgs.length }) as NftError;
      }
    }
    if (first) throw first;
  }

  /** Returns the ruleset generation id; pass it to transact() to fail with ERESTART if anything changed since. */
  generation(): number {
    const [r] = this.request([{ msg: NFT_MSG.GETGEN, flags: 0, family: 0, attrs: [], what: 'get ruleset generation' }]);
    const id = r?.[0] ? parseAttrs(r[0].payload, 4).get(NFTA_GEN_ID) : undefined;
    if (!id || id.length < 4) throw new Error('get ruleset generation: no NFTA_GEN_ID in the reply');
    return id.readUInt32BE(0);
  }

  /**
   * Sends independent (non-batch) requests in one datagram and returns each one's reply
   * messages; a request the kernel answered with ENOENT gets `undefined`, other errors throw.
   */
  request(msgs: readonly NftMsg[]): (NlMessage[] | undefined)[] {
    if (!msgs.length) return [];
    const seqs = msgs.map(() => this.sock.allocSeq());
    this.sock.sendRaw(Buffer.concat(msgs.map((m, i) => encodeMessage(msgType(m.msg), NLM_F_REQUEST | NLM_F_ACK | m.flags, seqs[i]!, encodeBody(m)))));
    const index = new Map(seqs.map((s, i) => [s, i]));
    const out: (NlMessage[] | undefined)[] = msgs.map(() => []);
    const pending = new Set(seqs);
    let err: SysError | undefined;
    while (pending.size) {
      for (const r of this.sock.receive(msgs[0]!.what)) {
        const i = index.get(r.seq);
        if (i === undefined || !pending.has(r.seq)) continue;
        if (r.type === NLMSG_ERROR || r.type === NLMSG_DONE) {
          pending.delete(r.seq);
          if (r.type === NLMSG_ERROR) {
            const { errno, extack } = parseError(r);
            if (errno === constants.errno.ENOENT) out[i] = undefined;
            else if (errno !== 0 && !err) err = netlinkError(errno, msgs[i]!.what, extack);
          }
        } else out[i]!.push(r);
      }
    }
    if (err) throw err;
    return out;
  }

  /** Dumps objects of one kind; a missing table or set is an empty list. */
  private dump(msg: number, family: number, attrs: Attr[], what: string): NlMessage[] {
    const [r] = this.request([{ msg, flags: NLM_F_DUMP, family, attrs, what }]);
    return r ?? [];
  }

  /** Equivalent to: `nft list tables` (all families). */
  listTables(): TableInfo[] {
    return this.dump(NFT_MSG.GETTABLE, 0, [], 'list tables').map((m) => decodeTable(m.payload));
  }

  /** Equivalent to: `nft list chains` restricted to table `t`. */
  listChains(t: TableRef): ChainInfo[] {
    return this.dump(NFT_MSG.GETCHAIN, NFPROTO[t.family], [attr.str(NFTA_CHAIN.TABLE, t.name)], `list chains of ${t.name}`)
      .map((m) => decodeChain(m.payload)).filter((c) => c.table === t.name);
  }

  /** Lists the rules of table `t`, or of one of its chains. */
  listRules(t: TableRef, chain?: string): RuleInfo[] {
    const attrs: Attr[] = [attr.str(NFTA_RULE.TABLE, t.name)];
    if (chain) attrs.push(attr.str(NFTA_RULE.CHAIN, chain));
    return this.dump(NFT_MSG.GETRULE, NFPROTO[t.family], attrs, `list rules of ${t.name}${chain ? ` ${chain}` : ''}`)
      .map((m) => decodeRule(m.payload)).filter((r) => r.table === t.name && (!chain || r.chain === chain));
  }

  /** Equivalent to: `nft list sets` restricted to table `t`. */
  listSets(t: TableRef): SetInfo[] {
    return this.dump(NFT_MSG.GETSET, NFPROTO[t.family], [attr.str(NFTA_SET.TABLE, t.name)], `list sets of ${t.name}`)
      .map((m) => decodeSet(m.payload)).filter((s) => s.table === t.name);
  }

  /** Equivalent to: `nft list set inet cnikit SET` (its elements; none when the set is missing). */
  listElements(t: TableRef, set: string): ElementInfo[] {
    const attrs = [attr.str(NFTA_SET_ELEM_LIST.TABLE, t.name), attr.str(NFTA_SET_ELEM_LIST.SET, set)];
    return this.dump(NFT_MSG.GETSETELEM, NFPROTO[t.family], attrs, `list elements of ${set}`).flatMap((m) => decodeElements(m.payload));
  }

  /**
   * Looks up elements by key, all in one round trip (point queries, not dumps, so the cost does
   * not depend on how many elements the sets hold). Returns, per query, the element or undefined.
   */
  getElements(queries: readonly NftMsg[]): (ElementInfo | undefined)[] {
    return this.request(queries).map((r) => (r?.length ? decodeElements(r[0]!.payload)[0] : undefined));
  }
}

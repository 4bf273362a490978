/**
 * Encoders and decoders for nf_tables objects: tables, chains, rules, sets and set elements.
 * Pure: each function returns the attributes of one message (an `NftMsg`) or decodes one reply,
 * so the byte layout is unit-tested against captures of `nft --debug=mnl` without root.
 * Sending is handle.ts's job. Attribute order follows nft's, so the golden captures match.
 *
 * Not here: object kinds cnikit does not use (flowtables, stateful objects, anonymous sets).
 */
import { type Attr, NLM_F_APPEND, NLM_F_EXCL, attr, attrStr, encodeAttrs, iterAttrs, parseAttrs } from '../netlink/message.ts';
import {
  DATATYPE, DATATYPE_LEN, type DataTypeName, type FamilyName, HOOK, type HookName, NFPROTO, NFTA_CHAIN,
  NFTA_DATA, NFTA_EXPR, NFTA_HOOK, NFTA_LIST_ELEM, NFTA_RULE, NFTA_SET, NFTA_SET_DESC, NFTA_SET_ELEM,
  NFTA_SET_ELEM_LIST, NFTA_SET_FIELD_LEN, NFTA_TABLE, NFTNL_UDATA_RULE_COMMENT, NFTNL_UDATA_SET_ELEM_COMMENT,
  NFTA_VERDICT, NFT_DATA_VERDICT, NFT_GOTO, NFT_JUMP, NFT_MSG, NFT_SET, NF_ACCEPT, NF_DROP,
} from './consts.ts';
import { type Expr, encodeExpr } from './expr/index.ts';

export interface TableRef { family: FamilyName; name: string }

export interface ChainSpec {
  name: string;
  /** Present for a base chain: attached to a netfilter hook. */
  base?: { type: 'nat' | 'filter' | 'route'; hook: HookName; priority: number; policy?: 'accept' | 'drop' };
  /**
   * The chain's rules are the administrator's, not the Ruleset's: it is created when missing but
   * never flushed or compared (the firewall plugin's admin chain).
   */
  userRules?: boolean;
}

export interface RuleSpec {
  chain: string;
  exprs: Expr[];
  /** Shown by `nft list` as `comment "..."`; cnikit stores a fingerprint here (see model.ts). */
  comment?: string;
}

export interface SetSpec {
  name: string;
  /** Key datatypes; more than one makes a concatenation (`ipv4_addr . inet_service`). */
  key: DataTypeName[];
  /** Data datatypes for a map; `['verdict']` makes a verdict map (`type ifname : verdict`). */
  data?: DataTypeName[];
  /** Elements are ranges (prefixes); with a concatenated key this is the pipapo backend. */
  interval?: boolean;
}

export interface ElementSpec {
  set: string;
  key: Buffer;
  /** The inclusive upper bound of the key, for interval sets. */
  keyEnd?: Buffer;
  data?: Buffer;
  /** The data of a verdict map's element (`"cnk0" : jump CNI-ADMIN`), instead of `data`. */
  verdict?: { verdict: 'jump' | 'goto'; chain: string } | { verdict: 'accept' | 'drop' };
  /** Shown by `nft list` as the element's comment; cnikit's owner tag. */
  comment?: string;
  /**
   * In a Ruleset: the element is shared by several attachments (a network's), so adding it when
   * it exists is a no-op rather than an error (no NLM_F_EXCL); the first adder's comment stays.
   */
  shared?: boolean;
}

/** One nf_tables message before framing: its NFT_MSG_* type, netlink flags, family and body. */
export interface NftMsg {
  msg: number;
  flags: number;
  family: number;
  attrs: Attr[];
  /** What the message does, for errors: `add element to map "pm_any4" (tcp . 8080)`. */
  what: string;
  /** Opaque to the nftables layer: handed back as NftError.ref when the kernel blames this message. */
  ref?: unknown;
}

/** The 4-byte nfgenmsg header: family, version 0, res_id 0 (big endian). */
export function nfgenmsg(family: number, resId = 0): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt8(family, 0);
  b.writeUInt16BE(resId, 2);
  return b;
}

/** Encodes an NftMsg body: nfgenmsg followed by the attributes. */
export function encodeBody(m: Pick<NftMsg, 'family' | 'attrs'>): Buffer {
  return Buffer.concat([nfgenmsg(m.family), encodeAttrs(m.attrs)]);
}

/** libnftnl's userdata TLV list with one comment (u8 type, u8 length, NUL-terminated text). */
export function commentUdata(type: number, comment: string): Buffer {
  const text = Buffer.from(comment + '\0');
  if (text.length > 255) throw new Error(`comment too long (${text.length} bytes): ${comment}`);
  return Buffer.concat([Buffer.from([type, text.length]), text]);
}

/** Reads the comment out of a userdata TLV list, if there is one of `type`. */
export function parseCommentUdata(b: Buffer | undefined, type: number): string | undefined {
  if (!b) return undefined;
  for (let off = 0; off + 2 <= b.length;) {
    const t = b[off]!;
    const len = b[off + 1]!;
    if (t === type) return attrStr(b.subarray(off + 2, off + 2 + len));
    off += 2 + len;
  }
  return undefined;
}

const fam = (t: TableRef): number => NFPROTO[t.family];

/** Equivalent to: `nft add table inet cnikit` (idempotent: no NLM_F_EXCL). */
export function addTable(t: TableRef): NftMsg {
  return { msg: NFT_MSG.NEWTABLE, flags: 0, family: fam(t), what: `add table ${t.family} ${t.name}`,
    attrs: [attr.str(NFTA_TABLE.NAME, t.name), attr.u32be(NFTA_TABLE.FLAGS, 0)] };
}

/** Equivalent to: `nft delete table inet cnikit` (the table and everything in it). */
export function delTable(t: TableRef): NftMsg {
  return { msg: NFT_MSG.DELTABLE, flags: 0, family: fam(t), what: `delete table ${t.family} ${t.name}`,
    attrs: [attr.str(NFTA_TABLE.NAME, t.name)] };
}

/** Equivalent to: `nft add chain inet cnikit pre { type nat hook prerouting priority dstnat; policy accept; }`. */
export function addChain(t: TableRef, c: ChainSpec): NftMsg {
  const attrs: Attr[] = [attr.str(NFTA_CHAIN.TABLE, t.name), attr.str(NFTA_CHAIN.NAME, c.name)];
  if (c.base) {
    attrs.push(
      attr.str(NFTA_CHAIN.TYPE, c.base.type),
      attr.u32be(NFTA_CHAIN.POLICY, c.base.policy === 'drop' ? NF_DROP : NF_ACCEPT),
      attr.nested(NFTA_CHAIN.HOOK, [attr.u32be(NFTA_HOOK.HOOKNUM, HOOK[c.base.hook]), attr.u32be(NFTA_HOOK.PRIORITY, c.base.priority)]),
    );
  }
  return { msg: NFT_MSG.NEWCHAIN, flags: 0, family: fam(t), what: `add chain ${c.name}`, attrs };
}

/** Equivalent to: `nft flush chain inet cnikit NAME` (delete every rule of the chain). */
export function flushChain(t: TableRef, chain: string): NftMsg {
  return { msg: NFT_MSG.DELRULE, flags: 0, family: fam(t), what: `flush chain ${chain}`,
    attrs: [attr.str(NFTA_RULE.TABLE, t.name), attr.str(NFTA_RULE.CHAIN, chain)] };
}

/** Equivalent to: `nft delete rule FAMILY TABLE CHAIN handle H`. */
export function delRule(t: TableRef, chain: string, handle: bigint): NftMsg {
  const h = Buffer.alloc(8);
  h.writeBigUInt64BE(handle);
  return { msg: NFT_MSG.DELRULE, flags: 0, family: fam(t), what: `delete rule ${handle} of ${t.family} ${t.name} ${chain}`,
    attrs: [attr.str(NFTA_RULE.TABLE, t.name), attr.str(NFTA_RULE.CHAIN, chain), attr.bytes(NFTA_RULE.HANDLE, h)] };
}

/** Equivalent to: `nft add rule inet cnikit CHAIN <exprs> [comment "..."]` (appended). */
export function addRule(t: TableRef, r: RuleSpec): NftMsg {
  const attrs: Attr[] = [
    attr.str(NFTA_RULE.TABLE, t.name), attr.str(NFTA_RULE.CHAIN, r.chain),
    attr.nested(NFTA_RULE.EXPRESSIONS, r.exprs.map(encodeExpr)),
  ];
  if (r.comment !== undefined) attrs.push(attr.bytes(NFTA_RULE.USERDATA, commentUdata(NFTNL_UDATA_RULE_COMMENT, r.comment)));
  return { msg: NFT_MSG.NEWRULE, flags: NLM_F_APPEND, family: fam(t), what: `add rule to chain ${r.chain}${r.comment ? ` (${r.comment})` : ''}`, attrs };
}

/** True for the data of a verdict map. */
export function isVerdictData(data: readonly DataTypeName[] | undefined): boolean {
  return data?.length === 1 && data[0] === 'verdict';
}

/** Returns the key type id of a (possibly concatenated) key as nft records it. */
export function concatType(types: DataTypeName[]): number {
  return types.reduce((acc, t) => (acc << 6) | DATATYPE[t], 0);
}

/** Returns the key length of a concatenation: each field padded to 4 bytes. */
export function concatLen(types: DataTypeName[]): number {
  return types.length === 1 ? DATATYPE_LEN[types[0]!] : types.reduce((n, t) => n + ((DATATYPE_LEN[t] + 3) & ~3), 0);
}

/**
 * Equivalent to: `nft add map inet cnikit NAME { type K : D; [flags interval;] }` (idempotent).
 * `id` must be unique within the transaction (the kernel requires NFTA_SET_ID on every NEWSET).
 */
export function addSet(t: TableRef, s: SetSpec, id = 1): NftMsg {
  let flags = 0;
  if (s.data) flags |= NFT_SET.MAP;
  if (s.interval) flags |= NFT_SET.INTERVAL;
  const concatInterval = s.interval && s.key.length > 1;
  if (concatInterval) flags |= NFT_SET.CONCAT;
  const attrs: Attr[] = [
    attr.str(NFTA_SET.TABLE, t.name), attr.str(NFTA_SET.NAME, s.name), attr.u32be(NFTA_SET.FLAGS, flags),
    attr.u32be(NFTA_SET.KEY_TYPE, concatType(s.key)), attr.u32be(NFTA_SET.KEY_LEN, concatLen(s.key)),
  ];
  if (s.data && isVerdictData(s.data)) attrs.push(attr.u32be(NFTA_SET.DATA_TYPE, NFT_DATA_VERDICT), attr.u32be(NFTA_SET.DATA_LEN, 0));
  else if (s.data) attrs.push(attr.u32be(NFTA_SET.DATA_TYPE, concatType(s.data)), attr.u32be(NFTA_SET.DATA_LEN, concatLen(s.data)));
  attrs.push(attr.u32be(NFTA_SET.ID, id));
  if (concatInterval) {
    // The pipapo backend needs each field's length to split a range key into its fields.
    attrs.push(attr.nested(NFTA_SET.DESC, [attr.nested(NFTA_SET_DESC.CONCAT,
      s.key.map((k) => attr.nested(NFTA_LIST_ELEM, [attr.u32be(NFTA_SET_FIELD_LEN, DATATYPE_LEN[k])])))]));
  }
  return { msg: NFT_MSG.NEWSET, flags: 0, family: fam(t), what: `add ${s.data ? 'map' : 'set'} ${s.name}`, attrs };
}

function elemAttrs(e: ElementSpec, withData: boolean): Attr {
  const a: Attr[] = [attr.nested(NFTA_SET_ELEM.KEY, [attr.bytes(NFTA_DATA.VALUE, e.key)])];
  if (e.keyEnd) a.push(attr.nested(NFTA_SET_ELEM.KEY_END, [attr.bytes(NFTA_DATA.VALUE, e.keyEnd)]));
  if (withData && e.data) a.push(attr.nested(NFTA_SET_ELEM.DATA, [attr.bytes(NFTA_DATA.VALUE, e.data)]));
  if (withData && e.verdict) a.push(attr.nested(NFTA_SET_ELEM.DATA, [verdictData(e.verdict)]));
  if (withData && e.comment !== undefined) a.push(attr.bytes(NFTA_SET_ELEM.USERDATA, commentUdata(NFTNL_UDATA_SET_ELEM_COMMENT, e.comment)));
  return attr.nested(NFTA_LIST_ELEM, a);
}

const VERDICT_CODES = { accept: NF_ACCEPT, drop: NF_DROP, jump: NFT_JUMP, goto: NFT_GOTO } as const;

/** NFTA_DATA_VERDICT { CODE, CHAIN }: a verdict as map data. */
function verdictData(v: NonNullable<ElementSpec['verdict']>): Attr {
  const a: Attr[] = [attr.u32be(NFTA_VERDICT.CODE, VERDICT_CODES[v.verdict])];
  if ('chain' in v) a.push(attr.str(NFTA_VERDICT.CHAIN, v.chain));
  return attr.nested(NFTA_DATA.VERDICT, a);
}

function describeKey(e: ElementSpec): string {
  return e.keyEnd ? `${e.key.toString('hex')}-${e.keyEnd.toString('hex')}` : e.key.toString('hex');
}

/**
 * Equivalent to: `nft add element inet cnikit SET { KEY : DATA comment "..." }`. With
 * `exclusive` (NLM_F_EXCL) an existing key is an error (EEXIST) instead of a no-op.
 */
export function addElements(t: TableRef, set: string, elems: ElementSpec[], exclusive: boolean, what?: string): NftMsg {
  return { msg: NFT_MSG.NEWSETELEM, flags: exclusive ? NLM_F_EXCL : 0, family: fam(t),
    what: what ?? `add element to ${set} (${elems.map(describeKey).join(', ')})`,
    attrs: [attr.str(NFTA_SET_ELEM_LIST.TABLE, t.name), attr.str(NFTA_SET_ELEM_LIST.SET, set),
      attr.nested(NFTA_SET_ELEM_LIST.ELEMENTS, elems.map((e) => elemAttrs(e, true)))] };
}

/** Equivalent to: `nft delete element inet cnikit SET { KEY }` (ENOENT when absent). */
export function delElements(t: TableRef, set: string, elems: ElementSpec[], what?: string): NftMsg {
  return { msg: NFT_MSG.DELSETELEM, flags: 0, family: fam(t),
    what: what ?? `delete element from ${set} (${elems.map(describeKey).join(', ')})`,
    attrs: [attr.str(NFTA_SET_ELEM_LIST.TABLE, t.name), attr.str(NFTA_SET_ELEM_LIST.SET, set),
      attr.nested(NFTA_SET_ELEM_LIST.ELEMENTS, elems.map((e) => elemAttrs(e, false)))] };
}

/** A GETSETELEM request for one key (a point query, not a dump). */
export function getElement(t: TableRef, set: string, key: Buffer, keyEnd?: Buffer): NftMsg {
  const e: ElementSpec = keyEnd ? { set, key, keyEnd } : { set, key };
  return { msg: NFT_MSG.GETSETELEM, flags: 0, family: fam(t), what: `get element of ${set} (${describeKey(e)})`,
    attrs: [attr.str(NFTA_SET_ELEM_LIST.TABLE, t.name), attr.str(NFTA_SET_ELEM_LIST.SET, set),
      attr.nested(NFTA_SET_ELEM_LIST.ELEMENTS, [elemAttrs(e, false)])] };
}

// ---- decoding of dump replies -------------------------------------------------------------

export interface ChainInfo { family: number; table: string; name: string; hook?: number; priority?: number; type?: string; policy?: number }
export interface RuleInfo {
  family: number; table: string; chain: string; handle: bigint; exprNames: string[];
  /** The rule's comment (NFTA_RULE_USERDATA), as nft and iptables write it. */
  comment?: string;
  /** The text of its x_tables comment match, as iptables-restore writes `-m comment`. */
  xtComment?: string;
}
export interface SetInfo { family: number; table: string; name: string; flags: number; keyType: number; keyLen: number; dataType?: number; dataLen?: number }
export interface ElementInfo {
  key: Buffer;
  keyEnd?: Buffer;
  data?: Buffer;
  /** A verdict map element's verdict (NF_ACCEPT, NFT_JUMP...) and chain. */
  verdict?: { code: number; chain?: string };
  flags: number;
  comment?: string;
}

const u32be = (b: Buffer | undefined): number | undefined => (b && b.length >= 4 ? b.readUInt32BE(0) : undefined);
const u64be = (b: Buffer | undefined): bigint => (b && b.length >= 8 ? b.readBigUInt64BE(0) : 0n);
const dataOf = (b: Buffer | undefined): Buffer | undefined => (b ? parseAttrs(b).get(NFTA_DATA.VALUE) : undefined);

function verdictOf(b: Buffer | undefined): { code: number; chain?: string } | undefined {
  const v = b ? parseAttrs(b).get(NFTA_DATA.VERDICT) : undefined;
  if (!v) return undefined;
  const a = parseAttrs(v);
  const code = a.get(NFTA_VERDICT.CODE);
  if (!code || code.length < 4) return undefined;
  const chain = attrStr(a.get(NFTA_VERDICT.CHAIN));
  return chain === undefined ? { code: code.readInt32BE(0) } : { code: code.readInt32BE(0), chain };
}

/** Decodes a NEWCHAIN reply. */
export function decodeChain(p: Buffer): ChainInfo {
  const a = parseAttrs(p, 4);
  const out: ChainInfo = { family: p[0]!, table: attrStr(a.get(NFTA_CHAIN.TABLE)) ?? '', name: attrStr(a.get(NFTA_CHAIN.NAME)) ?? '' };
  const hook = a.get(NFTA_CHAIN.HOOK);
  if (hook) {
    const h = parseAttrs(hook);
    out.hook = u32be(h.get(NFTA_HOOK.HOOKNUM));
    const prio = h.get(NFTA_HOOK.PRIORITY);
    if (prio) out.priority = prio.readInt32BE(0);
    out.type = attrStr(a.get(NFTA_CHAIN.TYPE));
    out.policy = u32be(a.get(NFTA_CHAIN.POLICY));
  }
  return out;
}

const NFTA_MATCH = { NAME: 1, INFO: 3 } as const;

/**
 * The text of an x_tables `comment` match (nft_compat: `[ match name comment rev 0 ]`), which is
 * what iptables-restore writes for `-m comment` where iptables itself writes a rule comment:
 * struct xt_comment_info is the NUL-terminated text in 256 bytes.
 */
function xtCommentOf(data: Buffer | undefined): string | undefined {
  const m = data ? parseAttrs(data) : undefined;
  if (!m || attrStr(m.get(NFTA_MATCH.NAME)) !== 'comment') return undefined;
  const info = m.get(NFTA_MATCH.INFO);
  return info ? attrStr(info) : undefined;
}

/** Decodes a NEWRULE reply: where it is, its handle, expression names and comment. */
export function decodeRule(p: Buffer): RuleInfo {
  const a = parseAttrs(p, 4);
  const exprNames: string[] = [];
  const exprs = a.get(NFTA_RULE.EXPRESSIONS);
  let xtComment: string | undefined;
  if (exprs) {
    for (const [, e] of iterAttrs(exprs)) {
      const ea = parseAttrs(e);
      const name = attrStr(ea.get(NFTA_EXPR.NAME)) ?? '';
      exprNames.push(name);
      if (name === 'match' && xtComment === undefined) xtComment = xtCommentOf(ea.get(NFTA_EXPR.DATA));
    }
  }
  const out: RuleInfo = { family: p[0]!, table: attrStr(a.get(NFTA_RULE.TABLE)) ?? '', chain: attrStr(a.get(NFTA_RULE.CHAIN)) ?? '',
    handle: u64be(a.get(NFTA_RULE.HANDLE)), exprNames };
  const comment = parseCommentUdata(a.get(NFTA_RULE.USERDATA), NFTNL_UDATA_RULE_COMMENT);
  if (comment !== undefined) out.comment = comment;
  if (xtComment !== undefined) out.xtComment = xtComment;
  return out;
}

/** Decodes a NEWSET reply. */
export function decodeSet(p: Buffer): SetInfo {
  const a = parseAttrs(p, 4);
  const out: SetInfo = { family: p[0]!, table: attrStr(a.get(NFTA_SET.TABLE)) ?? '', name: attrStr(a.get(NFTA_SET.NAME)) ?? '',
    flags: u32be(a.get(NFTA_SET.FLAGS)) ?? 0, keyType: u32be(a.get(NFTA_SET.KEY_TYPE)) ?? 0, keyLen: u32be(a.get(NFTA_SET.KEY_LEN)) ?? 0 };
  const dt = u32be(a.get(NFTA_SET.DATA_TYPE));
  if (dt !== undefined) { out.dataType = dt; out.dataLen = u32be(a.get(NFTA_SET.DATA_LEN)); }
  return out;
}

/** Decodes a NEWSETELEM reply into its elements. */
export function decodeElements(p: Buffer): ElementInfo[] {
  const a = parseAttrs(p, 4);
  const list = a.get(NFTA_SET_ELEM_LIST.ELEMENTS);
  const out: ElementInfo[] = [];
  if (!list) return out;
  for (const [, el] of iterAttrs(list)) {
    const e = parseAttrs(el);
    const info: ElementInfo = { key: Buffer.from(dataOf(e.get(NFTA_SET_ELEM.KEY)) ?? Buffer.alloc(0)), flags: u32be(e.get(NFTA_SET_ELEM.FLAGS)) ?? 0 };
    const keyEnd = dataOf(e.get(NFTA_SET_ELEM.KEY_END));
    if (keyEnd) info.keyEnd = Buffer.from(keyEnd);
    const data = dataOf(e.get(NFTA_SET_ELEM.DATA));
    if (data) info.data = Buffer.from(data);
    const verdict = verdictOf(e.get(NFTA_SET_ELEM.DATA));
    if (verdict) info.verdict = verdict;
    const comment = parseCommentUdata(e.get(NFTA_SET_ELEM.USERDATA), NFTNL_UDATA_SET_ELEM_COMMENT);
    if (comment !== undefined) info.comment = comment;
    out.push(info);
  }
  return out;
}


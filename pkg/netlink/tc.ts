/**
 * Traffic control over rtnetlink: qdiscs (TBF, ingress) and u32 filters with a mirred redirect,
 * the objects the bandwidth plugin shapes a veth with (docs/cni-notes.md §12), through a
 * TcHandle over the same NetlinkSocket as the namespace's RouteHandle. Methods are named after
 * the `tc` command they match; every request waits for the kernel's ACK. The encoders and
 * decoders are pure and exported for the golden tests (tc.test.ts, against what `tc` and the
 * reference plugin send: testdata/tc-capture.ts).
 *
 * Messages are `struct tcmsg {u8 family; u8 pad[3]; s32 ifindex; u32 handle; u32 parent; u32
 * info}` then attributes (<linux/rtnetlink.h>, <linux/pkt_sched.h>, <linux/pkt_cls.h>,
 * <linux/tc_act/tc_mirred.h>). Nests are encoded as `tc` encodes them (no NLA_F_NESTED but on
 * TCA_ACT_OPTIONS), so that the bytes equal the captures; the kernel accepts either.
 *
 * Not here: classful qdiscs and classes, other classifiers (this kernel has no matchall, basic
 * or flower: §12.4), actions other than mirred, rate tables (the kernel computes its own since
 * 3.x, and the TBF parameters alone are what the reference sends).
 */
import { type Attr, NLM_F_CREATE, NLM_F_EXCL, attr, attrStr, attrU32, encodeAttrs, iterAttrs, parseAttrs } from './message.ts';
import type { RouteHandle } from './route.ts';
import type { NetlinkSocket } from './socket.ts';

const RTM_NEWQDISC = 36, RTM_DELQDISC = 37, RTM_GETQDISC = 38;
const RTM_NEWTFILTER = 44, RTM_GETTFILTER = 46;

const TCA_KIND = 1, TCA_OPTIONS = 2, TCA_CHAIN = 11;
const TCA_TBF_PARMS = 1, TCA_TBF_RATE64 = 4, TCA_TBF_PRATE64 = 5;
const TCA_U32_CLASSID = 1, TCA_U32_SEL = 5, TCA_U32_ACT = 7;
const TCA_ACT_KIND = 1, TCA_ACT_OPTIONS = 2;
const TCA_MIRRED_PARMS = 2;

/** The root of a device's egress: `tc ... root`. */
export const TC_H_ROOT = 0xffffffff;
/** The parent of the ingress qdisc: `tc ... ingress`. */
export const TC_H_INGRESS = 0xfffffff1;
/** Every protocol (ETH_P_ALL), as the filter's protocol: `protocol all`. */
export const ETH_P_ALL = 0x0003;
/** mirred's eaction: redirect to the target's egress (`egress redirect`). */
export const TCA_EGRESS_REDIR = 1;
/** Action verdicts (<linux/pkt_cls.h>). */
export const TC_ACT_OK = 0, TC_ACT_STOLEN = 4;
const TC_U32_TERMINAL = 1;

/** Builds a handle from its major and minor parts: `tcHandle(1, 0)` is `1:`, `tcHandle(0xffff, 0)` is `ffff:`. */
export function tcHandle(major: number, minor: number): number {
  return (((major & 0xffff) << 16) | (minor & 0xffff)) >>> 0;
}

/** Formats a handle the way tc prints it: `1:`, `ffff:`, `1:1`. */
export function formatHandle(h: number): string {
  const major = (h >>> 16).toString(16);
  const minor = h & 0xffff;
  return minor ? `${major}:${minor.toString(16)}` : `${major}:`;
}

/**
 * A token bucket's parameters as the kernel takes them (struct tc_tbf_qopt): `rate` in bytes/s,
 * `limit` (the queue) in bytes, `buffer` (the bucket) in psched ticks of 64 ns, `mtu` (the peak
 * bucket) in ticks; `peakrate` 0 = none.
 */
export interface TbfParams {
  rate: bigint;
  limit: number;
  buffer: number;
  peakrate: bigint;
  mtu: number;
}

export interface TcQdisc {
  ifindex: number;
  handle: number;
  parent: number;
  kind: string;
  /** The parameters of a `tbf` qdisc. */
  tbf?: TbfParams;
}

/** One action of a filter, in order (`action order N`). */
export interface TcAction {
  kind: string;
  /** A `mirred` action's parameters. */
  mirred?: { index: number; action: number; eaction: number; ifindex: number };
}

export interface U32Key { mask: number; val: number; off: number; offmask: number }

export interface TcFilter {
  ifindex: number;
  handle: number;
  parent: number;
  /** Preference (`pref`, `prio`): the upper half of tcm_info. */
  prio: number;
  /** Host-order protocol (ETH_P_ALL = 3): the lower half of tcm_info, in network order. */
  protocol: number;
  kind: string;
  chain?: number;
  /** For u32: the flow id (TCA_U32_CLASSID), the selector's flags and keys, the actions. */
  classid?: number;
  sel?: { flags: number; keys: U32Key[] };
  actions: TcAction[];
}

/** Encodes a tcmsg. */
export function tcmsg(ifindex: number, handle: number, parent: number, info = 0): Buffer {
  const b = Buffer.alloc(20);
  b.writeInt32LE(ifindex, 4);
  b.writeUInt32LE(handle >>> 0, 8);
  b.writeUInt32LE(parent >>> 0, 12);
  b.writeUInt32LE(info >>> 0, 16);
  return b;
}

/** A nest without NLA_F_NESTED, as tc and vishvananda/netlink write most of theirs. */
function plainNest(type: number, attrs: Attr[]): Attr {
  return attr.bytes(type, encodeAttrs(attrs));
}

const U32_MAX = 0xffffffffn;

/** struct tc_ratespec: all zero but the rate (u32; larger rates go in the *_RATE64 attribute). */
function ratespec(rate: bigint): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt32LE(Number(rate > U32_MAX ? rate & U32_MAX : rate), 8);
  return b;
}

/**
 * Encodes a TBF's TCA_OPTIONS content: TCA_TBF_PARMS (struct tc_tbf_qopt, 36 bytes), plus
 * TCA_TBF_RATE64 / TCA_TBF_PRATE64 for rates of 2^32 B/s and more, as the reference does (its
 * u32 fields then carry the rate modulo 2^32, ignored by the kernel when RATE64 is there).
 */
export function encodeTbfOptions(t: TbfParams): Attr[] {
  const q = Buffer.alloc(36);
  ratespec(t.rate).copy(q, 0);
  ratespec(t.peakrate).copy(q, 12);
  q.writeUInt32LE(t.limit >>> 0, 24);
  q.writeUInt32LE(t.buffer >>> 0, 28);
  q.writeUInt32LE(t.mtu >>> 0, 32);
  const out: Attr[] = [attr.bytes(TCA_TBF_PARMS, q)];
  const u64 = (type: number, v: bigint): Attr => { const b = Buffer.alloc(8); b.writeBigUInt64LE(v); return attr.bytes(type, b); };
  if (t.rate > U32_MAX) out.push(u64(TCA_TBF_RATE64, t.rate));
  if (t.peakrate > U32_MAX) out.push(u64(TCA_TBF_PRATE64, t.peakrate));
  return out;
}

/** Encodes struct tc_mirred: index 0 (a new action), the verdict, the redirect kind and target. */
function mirredParms(action: number, eaction: number, ifindex: number): Buffer {
  const b = Buffer.alloc(28);
  b.writeInt32LE(action, 8);
  b.writeInt32LE(eaction, 20);
  b.writeUInt32LE(ifindex, 24);
  return b;
}

/** Encodes a match-everything u32 selector: TC_U32_TERMINAL, one key of mask 0 at offset 0. */
function matchAllSel(): Buffer {
  const b = Buffer.alloc(32);
  b.writeUInt8(TC_U32_TERMINAL, 0);
  b.writeUInt8(1, 2); // nkeys
  return b;
}

function decodeRate(spec: Buffer, off: number, wide: Buffer | undefined): bigint {
  return wide && wide.length >= 8 ? wide.readBigUInt64LE(0) : BigInt(spec.readUInt32LE(off + 8));
}

/** Decodes an RTM_NEWQDISC payload (a dump reply), with the parameters of a TBF. */
export function decodeQdisc(payload: Buffer): TcQdisc {
  const attrs = parseAttrs(payload, 20);
  const q: TcQdisc = {
    ifindex: payload.readInt32LE(4), handle: payload.readUInt32LE(8), parent: payload.readUInt32LE(12),
    kind: attrStr(attrs.get(TCA_KIND)) ?? '',
  };
  const opts = attrs.get(TCA_OPTIONS);
  if (q.kind === 'tbf' && opts) {
    const o = parseAttrs(opts);
    const p = o.get(TCA_TBF_PARMS);
    if (p && p.length >= 36) {
      q.tbf = {
        rate: decodeRate(p, 0, o.get(TCA_TBF_RATE64)), peakrate: decodeRate(p, 12, o.get(TCA_TBF_PRATE64)),
        limit: p.readUInt32LE(24), buffer: p.readUInt32LE(28), mtu: p.readUInt32LE(32),
      };
    }
  }
  return q;
}

function decodeAction(b: Buffer): TcAction {
  const a = parseAttrs(b);
  const out: TcAction = { kind: attrStr(a.get(TCA_ACT_KIND)) ?? '' };
  const opts = a.get(TCA_ACT_OPTIONS);
  const parms = out.kind === 'mirred' && opts ? parseAttrs(opts).get(TCA_MIRRED_PARMS) : undefined;
  if (parms && parms.length >= 28) {
    out.mirred = { index: parms.readUInt32LE(0), action: parms.readInt32LE(8), eaction: parms.readInt32LE(20), ifindex: parms.readUInt32LE(24) };
  }
  return out;
}

/** Decodes an RTM_NEWTFILTER payload (a dump reply or a request), with a u32 filter's selector and actions. */
export function decodeFilter(payload: Buffer): TcFilter {
  const attrs = parseAttrs(payload, 20);
  const info = payload.readUInt32LE(16);
  const f: TcFilter = {
    ifindex: payload.readInt32LE(4), handle: payload.readUInt32LE(8), parent: payload.readUInt32LE(12),
    prio: info >>> 16, protocol: ((info & 0xff) << 8) | ((info >>> 8) & 0xff),
    kind: attrStr(attrs.get(TCA_KIND)) ?? '', actions: [],
  };
  const chain = attrU32(attrs.get(TCA_CHAIN));
  if (chain !== undefined) f.chain = chain;
  const opts = attrs.get(TCA_OPTIONS);
  if (f.kind !== 'u32' || !opts) return f;
  const o = parseAttrs(opts);
  const classid = attrU32(o.get(TCA_U32_CLASSID));
  if (classid !== undefined) f.classid = classid;
  const sel = o.get(TCA_U32_SEL);
  if (sel && sel.length >= 16) {
    const keys: U32Key[] = [];
    for (let i = 0, off = 16; i < sel[2]! && off + 16 <= sel.length; i++, off += 16) {
      keys.push({ mask: sel.readUInt32BE(off), val: sel.readUInt32BE(off + 4), off: sel.readInt32LE(off + 8), offmask: sel.readInt32LE(off + 12) });
    }
    f.sel = { flags: sel[0]!, keys };
  }
  const acts = o.get(TCA_U32_ACT);
  if (acts) {
    // Nested by order: attribute type N is `action order N`.
    f.actions = [...iterAttrs(acts)].sort((a, b) => a[0] - b[0]).map(([, b]) => decodeAction(b));
  }
  return f;
}

/** Where a u32 redirect filter goes and what it matches. */
export interface U32RedirectSpec {
  /** The qdisc the filter hangs off (`parent ffff:`). */
  parent: number;
  prio: number;
  /** The flow id (`flowid 1:1`). */
  classid: number;
  /** ifindex whose egress gets every packet (`mirred egress redirect dev TARGET`). */
  target: number;
}

/** Traffic control in one namespace, over the NETLINK_ROUTE socket of its RouteHandle. */
export class TcHandle {
  private readonly sock: NetlinkSocket;
  /** A handle over `sock`, a NETLINK_ROUTE socket. */
  constructor(sock: NetlinkSocket) {
    this.sock = sock;
  }

  /** Returns a handle on the same socket (and so the same namespace) as `rt`. */
  static of(rt: RouteHandle): TcHandle {
    return new TcHandle(rt.socket);
  }

  /**
   * Adds a TBF qdisc; throws EEXIST when the parent already has one that is not the default.
   * Equivalent to: `tc qdisc add dev IDX root handle 1: tbf rate RATE burst BURST limit LIMIT`
   */
  async qdiscAddTbf(ifindex: number, t: TbfParams, opts: { handle?: number; parent?: number } = {}): Promise<void> {
    const body = Buffer.concat([
      tcmsg(ifindex, opts.handle ?? tcHandle(1, 0), opts.parent ?? TC_H_ROOT),
      encodeAttrs([attr.str(TCA_KIND, 'tbf'), plainNest(TCA_OPTIONS, encodeTbfOptions(t))]),
    ]);
    await this.sock.request(RTM_NEWQDISC, NLM_F_CREATE | NLM_F_EXCL, body, `RTM_NEWQDISC tbf #${ifindex}`);
  }

  /** Adds the ingress qdisc (handle ffff:). Equivalent to: `tc qdisc add dev IDX handle ffff: ingress` */
  async qdiscAddIngress(ifindex: number): Promise<void> {
    const body = Buffer.concat([tcmsg(ifindex, tcHandle(0xffff, 0), TC_H_INGRESS), encodeAttrs([attr.str(TCA_KIND, 'ingress')])]);
    await this.sock.request(RTM_NEWQDISC, NLM_F_CREATE | NLM_F_EXCL, body, `RTM_NEWQDISC ingress #${ifindex}`);
  }

  /**
   * Deletes the root qdisc (the device falls back to its default); its filters and classes go
   * with it. Throws ENOENT when only the default is there. Equivalent to: `tc qdisc del dev IDX root`
   */
  async qdiscDelRoot(ifindex: number): Promise<void> {
    await this.sock.request(RTM_DELQDISC, 0, tcmsg(ifindex, 0, TC_H_ROOT), `RTM_DELQDISC root #${ifindex}`);
  }

  /**
   * Deletes the ingress qdisc and every filter on it; throws EINVAL/ENOENT when there is none.
   * Equivalent to: `tc qdisc del dev IDX ingress`
   */
  async qdiscDelIngress(ifindex: number): Promise<void> {
    const body = Buffer.concat([tcmsg(ifindex, tcHandle(0xffff, 0), TC_H_INGRESS), encodeAttrs([attr.str(TCA_KIND, 'ingress')])]);
    await this.sock.request(RTM_DELQDISC, 0, body, `RTM_DELQDISC ingress #${ifindex}`);
  }

  /**
   * Lists the qdiscs of one device (the kernel dumps every device's; the others are dropped
   * here, as tc does). Equivalent to: `tc qdisc show dev IDX`
   */
  async qdiscList(ifindex: number): Promise<TcQdisc[]> {
    const msgs = await this.sock.dump(RTM_GETQDISC, tcmsg(ifindex, 0, 0), `RTM_GETQDISC dump #${ifindex}`);
    return msgs.map((m) => decodeQdisc(m.payload)).filter((q) => q.ifindex === ifindex);
  }

  /**
   * Adds a u32 filter that matches every packet of every protocol and redirects it to the
   * egress of `target` (stolen: it does not continue on this device).
   * Equivalent to: `tc filter add dev IDX parent ffff: protocol all prio 1 u32 match u32 0 0 flowid 1:1 action mirred egress redirect dev TARGET`
   */
  async filterAddU32Redirect(ifindex: number, s: U32RedirectSpec): Promise<void> {
    const info = ((s.prio << 16) | (((ETH_P_ALL & 0xff) << 8) | (ETH_P_ALL >>> 8))) >>> 0;
    const mirred: Attr[] = [
      attr.str(TCA_ACT_KIND, 'mirred'),
      { type: TCA_ACT_OPTIONS, value: [attr.bytes(TCA_MIRRED_PARMS, mirredParms(TC_ACT_STOLEN, TCA_EGRESS_REDIR, s.target))] },
    ];
    const options = plainNest(TCA_OPTIONS, [
      attr.u32(TCA_U32_CLASSID, s.classid),
      plainNest(TCA_U32_ACT, [plainNest(1, mirred)]),
      attr.bytes(TCA_U32_SEL, matchAllSel()),
    ]);
    const body = Buffer.concat([tcmsg(ifindex, 0, s.parent, info), encodeAttrs([attr.str(TCA_KIND, 'u32'), options])]);
    await this.sock.request(RTM_NEWTFILTER, NLM_F_CREATE | NLM_F_EXCL, body, `RTM_NEWTFILTER u32 #${ifindex}`);
  }

  /**
   * Lists the filters under `parent` of one device: for u32, the hash table entries come
   * first and carry no selector. Equivalent to: `tc filter show dev IDX parent PARENT`
   */
  async filterList(ifindex: number, parent: number): Promise<TcFilter[]> {
    const msgs = await this.sock.dump(RTM_GETTFILTER, tcmsg(ifindex, 0, parent), `RTM_GETTFILTER dump #${ifindex}`);
    return msgs.map((m) => decodeFilter(m.payload));
  }
}

/**
 * Small builders that turn nft statements into expression lists, picking registers the way nft
 * does so that our rules encode to the same bytes as `nft add rule ...`. Each helper's doc names
 * the nft syntax it stands for. Also the byte layouts of key fields for set elements.
 */
import { type Cidr, type Family, ipToBytes, networkOf } from '../ip/cidr.ts';
import { NFPROTO_IPV4, NFPROTO_IPV6, NFT_REG_1, NFT_REG_VERDICT } from './consts.ts';
import { regAt } from './expr/common.ts';
import { IPS_DST_NAT } from './expr/ct.ts';
import { RTN_LOCAL } from './expr/fib.ts';
import type { Expr } from './expr/index.ts';

export type L4Proto = 'tcp' | 'udp' | 'sctp';
export const L4PROTO_NUM: Record<L4Proto, number> = { tcp: 6, udp: 17, sctp: 132 };

/** Bytes of an interface name in a key (IFNAMSIZ, NUL padded). */
export const IFNAMSIZ = 16;

/** A field of a concatenated key, as nft writes it. */
export type KeyField = 'ip saddr' | 'ip daddr' | 'ip6 saddr' | 'ip6 daddr' | 'meta l4proto' | 'th dport' | 'iifname' | 'oifname';

const FIELD: Record<KeyField, { len: number; load: (dreg: number) => Expr }> = {
  'ip saddr': { len: 4, load: (dreg) => ({ type: 'payload', base: 'network', offset: 12, len: 4, dreg }) },
  'ip daddr': { len: 4, load: (dreg) => ({ type: 'payload', base: 'network', offset: 16, len: 4, dreg }) },
  'ip6 saddr': { len: 16, load: (dreg) => ({ type: 'payload', base: 'network', offset: 8, len: 16, dreg }) },
  'ip6 daddr': { len: 16, load: (dreg) => ({ type: 'payload', base: 'network', offset: 24, len: 16, dreg }) },
  'meta l4proto': { len: 1, load: (dreg) => ({ type: 'meta', key: 'l4proto', dreg }) },
  'th dport': { len: 2, load: (dreg) => ({ type: 'payload', base: 'transport', offset: 2, len: 2, dreg }) },
  iifname: { len: IFNAMSIZ, load: (dreg) => ({ type: 'meta', key: 'iifname', dreg }) },
  oifname: { len: IFNAMSIZ, load: (dreg) => ({ type: 'meta', key: 'oifname', dreg }) },
};

/** `ip saddr`, `ip6 daddr`...: the address field of family `f` in direction `dir`. */
export function addrField(f: Family, dir: 'saddr' | 'daddr'): 'ip saddr' | 'ip daddr' | 'ip6 saddr' | 'ip6 daddr' {
  return `${f === 4 ? 'ip' : 'ip6'} ${dir}`;
}

/** The set key type of an address of family `f`. */
export function addrType(f: Family): 'ipv4_addr' | 'ipv6_addr' {
  return f === 4 ? 'ipv4_addr' : 'ipv6_addr';
}

const u8 = (v: number): Buffer => Buffer.from([v]);

/** `meta nfproto ipv4` / `meta nfproto ipv6`: restricts an inet-table rule to one family. */
export function nfproto(f: Family): Expr[] {
  return [{ type: 'meta', key: 'nfproto', dreg: NFT_REG_1 }, { type: 'cmp', op: 'eq', sreg: NFT_REG_1, data: u8(f === 4 ? NFPROTO_IPV4 : NFPROTO_IPV6) }];
}

/** `ct status dnat`: the connection's destination was translated. */
export function ctStatusDnat(): Expr[] {
  const mask = Buffer.alloc(4);
  mask.writeUInt32LE(IPS_DST_NAT); // ct status is a host-order u32
  return [
    { type: 'ct', key: 'status', dreg: NFT_REG_1 },
    { type: 'bitwise', sreg: NFT_REG_1, dreg: NFT_REG_1, mask, xor: Buffer.alloc(4) },
    { type: 'cmp', op: 'neq', sreg: NFT_REG_1, data: Buffer.alloc(4) },
  ];
}

/**
 * `fib daddr type local` (the destination is one of this host's addresses), `fib saddr type !=
 * local` with op 'neq' (the source is not: the packet was not sent by the host itself).
 */
export function fibTypeLocal(dir: 'saddr' | 'daddr', op: 'eq' | 'neq' = 'eq'): Expr[] {
  const local = Buffer.alloc(4);
  local.writeUInt32LE(RTN_LOCAL);
  return [{ type: 'fib', result: 'addrtype', flags: [dir], dreg: NFT_REG_1 }, { type: 'cmp', op, sreg: NFT_REG_1, data: local }];
}

/**
 * `ip saddr 127.0.0.0/8`, `ip6 daddr ff00::/8`...: loads only the bytes the prefix covers and
 * masks the last one when the prefix is not byte aligned, as nft does. Needs the family guard
 * (`nfproto`) before it in an inet table.
 */
export function addrInPrefix(dir: 'saddr' | 'daddr', c: Cidr, op: 'eq' | 'neq' = 'eq'): Expr[] {
  const field = FIELD[addrField(c.family, dir)];
  const load = field.load(NFT_REG_1) as Extract<Expr, { type: 'payload' }>;
  const bytes = Math.ceil(c.prefix / 8);
  const net = ipToBytes(networkOf(c)).subarray(0, bytes);
  const out: Expr[] = [{ ...load, len: bytes }];
  if (c.prefix % 8) {
    const mask = Buffer.alloc(bytes, 0xff);
    mask[bytes - 1] = (0xff << (8 - (c.prefix % 8))) & 0xff;
    out.push({ type: 'bitwise', sreg: NFT_REG_1, dreg: NFT_REG_1, mask, xor: Buffer.alloc(bytes) });
  }
  out.push({ type: 'cmp', op, sreg: NFT_REG_1, data: net });
  return out;
}

/** Loads the fields of a concatenation into consecutive registers; returns the first register. */
function loadConcat(fields: KeyField[]): Expr[] {
  let off = 0;
  const out: Expr[] = [];
  for (const f of fields) {
    out.push(FIELD[f].load(off === 0 ? NFT_REG_1 : regAt(off)));
    off += (FIELD[f].len + 3) & ~3;
  }
  return out;
}

/** `ip saddr . ip daddr @set` (or `!= @set` with `invert`): the concatenation is (not) in the named set. */
export function inSet(fields: KeyField[], set: string, invert = false): Expr[] {
  return [...loadConcat(fields), invert ? { type: 'lookup', set, sreg: NFT_REG_1, invert: true } : { type: 'lookup', set, sreg: NFT_REG_1 }];
}

/** `iifname vmap @map`: the verdict the key maps to (a jump, say); no match, no verdict. */
export function vmap(fields: KeyField[], map: string): Expr[] {
  return [...loadConcat(fields), { type: 'lookup', set: map, sreg: NFT_REG_1, dreg: NFT_REG_VERDICT }];
}

/** The packet mark is a host-order u32. */
function u32host(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b;
}

function markMangle(mask: number, xor: number): Expr[] {
  return [
    { type: 'meta', key: 'mark', dreg: NFT_REG_1 },
    { type: 'bitwise', sreg: NFT_REG_1, dreg: NFT_REG_1, mask: u32host(mask), xor: u32host(xor), explicitOp: true },
    { type: 'metaSet', key: 'mark', sreg: NFT_REG_1 },
  ];
}

/** `meta mark set meta mark | BITS`: sets `bits` in the packet mark, keeping the others. */
export function markSetBits(bits: number): Expr[] {
  return markMangle(~bits, bits);
}

/** `meta mark set meta mark & ~BITS`: clears `bits` in the packet mark, keeping the others. */
export function markClearBits(bits: number): Expr[] {
  return markMangle(~bits, 0);
}

/** `meta mark and BITS == BITS`: every bit of `bits` is set (iptables shows `-m mark --mark BITS/BITS`). */
export function markHasBits(bits: number): Expr[] {
  return [
    { type: 'meta', key: 'mark', dreg: NFT_REG_1 },
    { type: 'bitwise', sreg: NFT_REG_1, dreg: NFT_REG_1, mask: u32host(bits), xor: u32host(0), explicitOp: true },
    { type: 'cmp', op: 'eq', sreg: NFT_REG_1, data: u32host(bits) },
  ];
}

/** Conntrack state bits as `ct state` tests them (nf_conntrack_common.h: 1 << (ctinfo + 1)). */
export const CT_STATE = { invalid: 1, established: 2, related: 4, new: 8, untracked: 64 } as const;

/** `ct state established,related`: the connection is in one of `states`. */
export function ctStateIn(states: (keyof typeof CT_STATE)[]): Expr[] {
  const mask = states.reduce((m, s) => m | CT_STATE[s], 0);
  return [
    { type: 'ct', key: 'state', dreg: NFT_REG_1 },
    { type: 'bitwise', sreg: NFT_REG_1, dreg: NFT_REG_1, mask: u32host(mask), xor: Buffer.alloc(4) },
    { type: 'cmp', op: 'neq', sreg: NFT_REG_1, data: Buffer.alloc(4) },
  ];
}

/**
 * `dnat ip to ip daddr . meta l4proto . th dport map @map`: looks the key up in a map whose data is
 * `address . port` and translates the destination to it. No match: the rule does nothing.
 */
export function dnatMap(f: Family, fields: KeyField[], map: string): Expr[] {
  return [
    ...loadConcat(fields),
    { type: 'lookup', set: map, sreg: NFT_REG_1, dreg: NFT_REG_1 },
    { type: 'nat', nat: 'dnat', family: f === 4 ? 'ip' : 'ip6', addrReg: NFT_REG_1, protoReg: regAt(f === 4 ? 4 : 16) },
  ];
}

/** `masquerade`. */
export function masquerade(): Expr[] {
  return [{ type: 'masq' }];
}

/** `counter`. */
export function counter(): Expr[] {
  return [{ type: 'counter' }];
}

/** `jump CHAIN`. */
export function jump(chain: string): Expr[] {
  return [{ type: 'verdict', verdict: 'jump', chain }];
}

/** `return`. */
export function ret(): Expr[] {
  return [{ type: 'verdict', verdict: 'return' }];
}

/** `accept`. */
export function accept(): Expr[] {
  return [{ type: 'verdict', verdict: 'accept' }];
}

/** `drop`. */
export function drop(): Expr[] {
  return [{ type: 'verdict', verdict: 'drop' }];
}

// ---- key bytes for set elements ---------------------------------------------------------------

/** Concatenates key fields, padding each to 4 bytes as the kernel lays out registers. */
export function concatKey(...fields: Buffer[]): Buffer {
  if (fields.length === 1) return fields[0]!;
  return Buffer.concat(fields.map((f) => (f.length % 4 ? Buffer.concat([f, Buffer.alloc(4 - (f.length % 4))]) : f)));
}

/** An inet_proto key field. */
export function protoBytes(p: L4Proto): Buffer {
  return Buffer.from([L4PROTO_NUM[p]]);
}

/** An ifname key field: the name NUL padded to IFNAMSIZ (longer names are the caller's error). */
export function ifnameBytes(name: string): Buffer {
  const b = Buffer.alloc(IFNAMSIZ);
  if (Buffer.byteLength(name) >= IFNAMSIZ) throw new Error(`interface name too long: ${name}`);
  b.write(name);
  return b;
}

/** An inet_service key field (network byte order). */
export function portBytes(port: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(port);
  return b;
}

export { ipToBytes };

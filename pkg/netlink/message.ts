/**
 * Netlink wire format: message headers and attributes (TLVs), encoded and decoded as plain
 * Buffers. Pure; shared by rtnetlink (route.ts) and nf_tables. Layout per <linux/netlink.h>:
 * nlmsghdr = u32 len, u16 type, u16 flags, u32 seq, u32 pid; nlattr = u16 len, u16 type, payload
 * padded to 4 bytes. Everything is host byte order (little-endian here) unless an attribute says
 * otherwise (addresses, nftables' NLA_F_NET_BYTEORDER values).
 */

export const NLMSG_NOOP = 1;
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;

export const NLM_F_REQUEST = 0x1;
export const NLM_F_MULTI = 0x2;
export const NLM_F_ACK = 0x4;
export const NLM_F_ECHO = 0x8;
export const NLM_F_DUMP_INTR = 0x10;
export const NLM_F_ROOT = 0x100;
export const NLM_F_MATCH = 0x200;
export const NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH;
export const NLM_F_REPLACE = 0x100;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;
export const NLM_F_APPEND = 0x800;
/** In an ACK: the kernel appended extended-ack TLVs. */
export const NLM_F_ACK_TLVS = 0x200;
export const NLM_F_CAPPED = 0x100;
export const NLMSGERR_ATTR_MSG = 1;

export const NLA_F_NESTED = 0x8000;
export const NLA_F_NET_BYTEORDER = 0x4000;
const NLA_TYPE_MASK = 0x3fff;

export const NLMSG_HDRLEN = 16;

export interface NlMessage { type: number; flags: number; seq: number; pid: number; payload: Buffer }

/** An attribute to encode: raw bytes or nested attributes (NLA_F_NESTED is set for those). */
export interface Attr { type: number; value: Buffer | Attr[] }

const align4 = (n: number): number => (n + 3) & ~3;

export function encodeAttrs(attrs: readonly Attr[]): Buffer {
  const parts: Buffer[] = [];
  for (const a of attrs) {
    const nested = Array.isArray(a.value);
    const body = nested ? encodeAttrs(a.value as Attr[]) : (a.value as Buffer);
    const hdr = Buffer.alloc(4);
    hdr.writeUInt16LE(4 + body.length, 0);
    hdr.writeUInt16LE(a.type | (nested ? NLA_F_NESTED : 0), 2);
    parts.push(hdr, body);
    const pad = align4(body.length) - body.length;
    if (pad) parts.push(Buffer.alloc(pad));
  }
  return Buffer.concat(parts);
}

/** Decodes attributes into type -> payload (type flags masked off; the last one of a type wins). */
export function parseAttrs(buf: Buffer, offset = 0): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  for (const [type, val] of iterAttrs(buf, offset)) out.set(type, val);
  return out;
}

/** Yields every attribute in order, repeated types included (lists such as nft expressions). */
export function* iterAttrs(buf: Buffer, offset = 0): Generator<[number, Buffer]> {
  let off = offset;
  while (off + 4 <= buf.length) {
    const len = buf.readUInt16LE(off);
    const type = buf.readUInt16LE(off + 2) & NLA_TYPE_MASK;
    if (len < 4 || off + len > buf.length) break;
    yield [type, buf.subarray(off + 4, off + len)];
    off += align4(len);
  }
}

export const attr = {
  bytes: (type: number, value: Buffer): Attr => ({ type, value }),
  u8: (type: number, v: number): Attr => ({ type, value: Buffer.from([v & 0xff]) }),
  u16: (type: number, v: number): Attr => { const b = Buffer.alloc(2); b.writeUInt16LE(v); return { type, value: b }; },
  u32: (type: number, v: number): Attr => { const b = Buffer.alloc(4); b.writeUInt32LE(v >>> 0); return { type, value: b }; },
  s32: (type: number, v: number): Attr => { const b = Buffer.alloc(4); b.writeInt32LE(v); return { type, value: b }; },
  u16be: (type: number, v: number): Attr => { const b = Buffer.alloc(2); b.writeUInt16BE(v); return { type, value: b }; },
  u32be: (type: number, v: number): Attr => { const b = Buffer.alloc(4); b.writeUInt32BE(v >>> 0); return { type, value: b }; },
  u64be: (type: number, v: bigint): Attr => { const b = Buffer.alloc(8); b.writeBigUInt64BE(v); return { type, value: b }; },
  /** NUL-terminated string, as the kernel expects for names. */
  str: (type: number, s: string): Attr => ({ type, value: Buffer.from(s + '\0') }),
  nested: (type: number, attrs: Attr[]): Attr => ({ type, value: attrs }),
  flag: (type: number): Attr => ({ type, value: Buffer.alloc(0) }),
};

export function attrStr(b: Buffer | undefined): string | undefined {
  if (!b) return undefined;
  const nul = b.indexOf(0);
  return b.toString('utf8', 0, nul < 0 ? b.length : nul);
}

export function attrU32(b: Buffer | undefined): number | undefined {
  return b && b.length >= 4 ? b.readUInt32LE(0) : undefined;
}

export function attrU8(b: Buffer | undefined): number | undefined {
  return b && b.length >= 1 ? b[0] : undefined;
}

/** Encodes one netlink message (header + fixed payload + attributes). */
export function encodeMessage(type: number, flags: number, seq: number, body: Buffer): Buffer {
  const hdr = Buffer.alloc(NLMSG_HDRLEN);
  const len = NLMSG_HDRLEN + body.length;
  hdr.writeUInt32LE(len, 0);
  hdr.writeUInt16LE(type, 4);
  hdr.writeUInt16LE(flags, 6);
  hdr.writeUInt32LE(seq, 8);
  hdr.writeUInt32LE(0, 12);
  const pad = align4(len) - len;
  return Buffer.concat(pad ? [hdr, body, Buffer.alloc(pad)] : [hdr, body]);
}

/** Splits a datagram into messages. */
export function parseMessages(buf: Buffer): NlMessage[] {
  const out: NlMessage[] = [];
  let off = 0;
  while (off + NLMSG_HDRLEN <= buf.length) {
    const len = buf.readUInt32LE(off);
    if (len < NLMSG_HDRLEN || off + len > buf.length) break;
    out.push({
      type: buf.readUInt16LE(off + 4), flags: buf.readUInt16LE(off + 6), seq: buf.readUInt32LE(off + 8),
      pid: buf.readUInt32LE(off + 12), payload: buf.subarray(off + NLMSG_HDRLEN, off + len),
    });
    off += align4(len);
  }
  return out;
}

/** Decodes an NLMSG_ERROR payload: the errno (0 = ACK) and the kernel's extended-ack text. */
export function parseError(m: NlMessage): { errno: number; extack?: string } {
  const errno = 0 - m.payload.readInt32LE(0); // not `-x`: an ACK would give -0
  let extack: string | undefined;
  if (m.flags & NLM_F_ACK_TLVS) {
    // After the error code comes the offending request: just its header when CAPPED.
    const origLen = m.flags & NLM_F_CAPPED ? NLMSG_HDRLEN : m.payload.readUInt32LE(4);
    const attrs = parseAttrs(m.payload, 4 + align4(origLen));
    extack = attrStr(attrs.get(NLMSGERR_ATTR_MSG));
  }
  return extack ? { errno, extack } : { errno };
}

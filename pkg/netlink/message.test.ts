/**
 * Netlink wire format against bytes written out by hand from <linux/netlink.h> and
 * <linux/rtnetlink.h>: attributes (padding, nesting, flags), message framing, NLMSG_ERROR with
 * and without extended-ack TLVs (the kernel's netlink_ack() layout), and one RTM_NEWADDR.
 */
import test from 'ava';
import {
  type Attr, NLA_F_NESTED, NLA_F_NET_BYTEORDER, NLMSG_DONE, NLMSG_ERROR, NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_CAPPED,
  NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_MULTI, NLM_F_REQUEST, attr, attrStr, attrU32, attrU8, encodeAttrs,
  encodeMessage, iterAttrs, parseAttrs, parseError, parseMessages,
} from './message.ts';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

// ---- attributes ----

const golden: [string, Attr, string][] = [
  // nlattr: u16 len (header + payload, without padding), u16 type, payload padded to 4.
  ['u8 is padded with 3 zero bytes', attr.u8(1, 7), '0500 0100 07 000000'],
  ['u16', attr.u16(2, 0x1234), '0600 0200 3412 0000'],
  ['u32 is little-endian', attr.u32(4, 1500), '0800 0400 dc050000'],
  ['u32 takes values above 2^31', attr.u32(4, 0xfffffffe), '0800 0400 feffffff'],
  ['s32 negative', attr.s32(3, -1), '0800 0300 ffffffff'],
  ['u16be (ports)', attr.u16be(1, 8080), '0600 0100 1f90 0000'],
  ['u32be', attr.u32be(1, 0x0a4d0005), '0800 0100 0a4d0005'],
  ['u64be', attr.u64be(2, 0x0102030405060708n), '0c00 0200 0102030405060708'],
  ['str is NUL-terminated and padded', attr.str(3, 'eth0'), '0900 0300 6574683000 000000'],
  ['str of 3 characters fills 4 bytes exactly', attr.str(3, 'br0'), '0800 0300 62723000'],
  ['flag has no payload', attr.flag(9), '0400 0900'],
  ['bytes', attr.bytes(1, Buffer.from([0x0a, 0x58, 0x0a, 0x4d, 0x00, 0x05])), '0a00 0100 0a580a4d0005 0000'],
  ['nested sets NLA_F_NESTED and its length covers the padded children',
    attr.nested(18, [attr.str(1, 'veth'), attr.u8(7, 1)]),
    '1800 1280  0900 0100 7665746800 000000  0500 0700 01 000000'],
  ['empty nested', attr.nested(2, []), '0400 0280'],
];
for (const [title, a, bytes] of golden) {
  test(`encodeAttrs: ${title}`, (t) => {
    const enc = encodeAttrs([a]);
    t.deepEqual(enc, hex(bytes));
    t.is(enc.length % 4, 0);
  });
}

/** Decodes attributes into Attr values, recursing where the raw type has NLA_F_NESTED. */
function decodeTree(buf: Buffer): Attr[] {
  const out: Attr[] = [];
  for (let off = 0; off + 4 <= buf.length;) {
    const len = buf.readUInt16LE(off);
    const rawType = buf.readUInt16LE(off + 2);
    const value = buf.subarray(off + 4, off + len);
    out.push({ type: rawType & 0x3fff, value: rawType & NLA_F_NESTED ? decodeTree(value) : Buffer.from(value) });
    off += (len + 3) & ~3;
  }
  return out;
}

test('attributes round trip: encode, decode, re-encode, decode at an offset', (t) => {
  const attrs: Attr[] = [
    attr.str(3, 'veth5c2e91aa'),
    attr.u32(4, 1500),
    attr.u8(16, 6),
    attr.nested(18, [attr.str(1, 'veth'), attr.nested(2, [attr.nested(1, [attr.str(3, 'eth0'), attr.u32(4, 1400)])])]),
    attr.flag(30),
    attr.bytes(1, Buffer.from('0a580a4d0005', 'hex')),
  ];
  const enc = encodeAttrs(attrs);
  const tree = decodeTree(enc);
  t.deepEqual(tree, attrs, 'decoding gives back the same tree');
  t.deepEqual(encodeAttrs(tree), enc, 're-encoding gives the same bytes');
  // The same attributes after a fixed header (as in every rtnetlink message).
  const withHeader = Buffer.concat([Buffer.alloc(16, 0xee), enc]);
  const m = parseAttrs(withHeader, 16);
  t.is(attrStr(m.get(3)), 'veth5c2e91aa');
  t.is(attrU32(m.get(4)), 1500);
  t.is(attrU8(m.get(16)), 6);
  t.deepEqual(m.get(30), Buffer.alloc(0));
  t.deepEqual(m.get(1), Buffer.from('0a580a4d0005', 'hex'), 'padding is not part of the payload');
  const info = parseAttrs(m.get(18)!);
  t.is(attrStr(info.get(1)), 'veth');
  const peer = parseAttrs(parseAttrs(info.get(2)!).get(1)!);
  t.is(attrStr(peer.get(3)), 'eth0');
  t.is(attrU32(peer.get(4)), 1400);
});

test('iterAttrs keeps repeated types in order; parseAttrs keeps the last', (t) => {
  const enc = encodeAttrs([attr.u32(1, 1), attr.u32(2, 2), attr.u32(1, 3)]);
  t.deepEqual([...iterAttrs(enc)].map(([type, v]) => [type, v.readUInt32LE(0)]), [[1, 1], [2, 2], [1, 3]]);
  t.is(attrU32(parseAttrs(enc).get(1)), 3);
});

test('type flags (NESTED, NET_BYTEORDER) are masked off when decoding', (t) => {
  const enc = hex('0800 0140 0000 1f90  0800 0580 0400 0100');
  t.deepEqual([...iterAttrs(enc)].map(([type]) => type), [1, 5]);
  t.is(NLA_F_NET_BYTEORDER, 0x4000);
  t.is(NLA_F_NESTED, 0x8000);
});

test('decoding stops at a malformed or truncated attribute', (t) => {
  const ok = encodeAttrs([attr.u32(1, 1)]);
  t.deepEqual([...iterAttrs(Buffer.concat([ok, hex('0200 0200')]))].map(([type]) => type), [1], 'length below 4');
  t.deepEqual([...iterAttrs(Buffer.concat([ok, hex('1000 0300 0000')]))].map(([type]) => type), [1], 'length beyond the buffer');
  t.deepEqual([...iterAttrs(Buffer.concat([ok, hex('08')]))].map(([type]) => type), [1], 'trailing bytes shorter than a header');
  t.is(parseAttrs(Buffer.alloc(0)).size, 0);
});

test('the last attribute may omit its trailing padding', (t) => {
  // The kernel aligns every attribute, but a buffer cut right after the payload still decodes.
  const m = parseAttrs(hex('0500 0100 07'));
  t.deepEqual(m.get(1), Buffer.from([7]));
});

test('attribute readers', (t) => {
  t.is(attrStr(Buffer.from('eth0\0junk')), 'eth0');
  t.is(attrStr(Buffer.from('eth0')), 'eth0', 'no NUL');
  t.is(attrStr(undefined), undefined);
  t.is(attrU32(Buffer.from([1, 2, 3])), undefined, 'too short');
  t.is(attrU32(hex('dc050000')), 1500);
  t.is(attrU8(Buffer.alloc(0)), undefined);
  t.is(attrU8(undefined), undefined);
});

// ---- messages ----

test('encodeMessage: nlmsghdr layout and padding', (t) => {
  const m = encodeMessage(18, NLM_F_REQUEST | NLM_F_DUMP, 0x01020304, Buffer.from([1, 2, 3, 4, 5]));
  // len 21 (header + body, without padding), type 18, flags 0x301, seq, pid 0, body, 3 pad bytes.
  t.deepEqual(m, hex('15000000 1200 0103 04030201 00000000 0102030405 000000'));
});

test('parseMessages splits a datagram and honours each message\'s padding', (t) => {
  const a = encodeMessage(16, NLM_F_MULTI, 7, Buffer.from([1, 2, 3, 4, 5]));
  const b = encodeMessage(16, NLM_F_MULTI, 7, Buffer.alloc(16, 0xab));
  const done = encodeMessage(NLMSG_DONE, NLM_F_MULTI, 7, Buffer.alloc(4));
  const msgs = parseMessages(Buffer.concat([a, b, done]));
  t.deepEqual(msgs.map((m) => [m.type, m.flags, m.seq, m.pid, m.payload.length]), [[16, 2, 7, 0, 5], [16, 2, 7, 0, 16], [3, 2, 7, 0, 4]]);
  t.deepEqual(msgs[0]!.payload, Buffer.from([1, 2, 3, 4, 5]));
  t.deepEqual(msgs[1]!.payload, Buffer.alloc(16, 0xab));
});

test('parseMessages reads pid and ignores a truncated tail', (t) => {
  const m = hex('14000000 0300 0200 2a000000 39300000 00000000');
  const msgs = parseMessages(Buffer.concat([m, hex('40000000 1000')]));
  t.is(msgs.length, 1);
  t.like(msgs[0], { type: NLMSG_DONE, seq: 42, pid: 12345 });
  t.deepEqual(parseMessages(hex('ff000000 1000 0000 00000000 00000000')), [], 'length past the end');
  t.deepEqual(parseMessages(hex('08000000 1000 0000 00000000 00000000')), [], 'length below the header');
});

// ---- NLMSG_ERROR (netlink_ack in net/netlink/af_netlink.c) ----

// The request that failed: RTM_NEWLINK, 32 bytes (header + ifinfomsg).
const request = hex('20000000 1000 0506 0a000000 00000000  00 00 0000 00000000 01000000 01000000');
const errPayload = (errno: number, orig: Buffer, tlvs: Buffer = Buffer.alloc(0)) => {
  const e = Buffer.alloc(4);
  e.writeInt32LE(-errno);
  return Buffer.concat([e, orig, tlvs]);
};
const extack = (msg: string) => encodeAttrs([attr.u32(2 /* NLMSGERR_ATTR_OFFS */, 20), attr.str(1 /* NLMSGERR_ATTR_MSG */, msg), attr.u32(2, 24)]);
const errMsg = (flags: number, payload: Buffer) => parseMessages(encodeMessage(NLMSG_ERROR, flags, 10, payload))[0]!;

test('parseError: an ACK (errno 0) carries only the request header (CAPPED)', (t) => {
  t.deepEqual(parseError(errMsg(NLM_F_CAPPED, errPayload(0, request.subarray(0, 16)))), { errno: 0 });
});

test('parseError: an error with the whole request echoed and no TLVs', (t) => {
  t.deepEqual(parseError(errMsg(0, errPayload(17, request))), { errno: 17 });
});

test('parseError: extended ACK after the whole echoed request', (t) => {
  const m = errMsg(NLM_F_ACK_TLVS, errPayload(17, request, extack('Device already exists')));
  t.deepEqual(parseError(m), { errno: 17, extack: 'Device already exists' });
});

test('parseError: extended ACK after a CAPPED request (header only, whose len still says 32)', (t) => {
  const m = errMsg(NLM_F_ACK_TLVS | NLM_F_CAPPED, errPayload(22, request.subarray(0, 16), extack('Unknown device type')));
  t.deepEqual(parseError(m), { errno: 22, extack: 'Unknown device type' });
});

test('parseError: an echoed request of unaligned length is padded before the TLVs', (t) => {
  const odd = encodeMessage(16, NLM_F_REQUEST, 1, Buffer.alloc(17)).subarray(0, 33); // nlmsg_len 33
  t.is(odd.readUInt32LE(0), 33);
  const padded = Buffer.concat([odd, Buffer.alloc(3)]);
  const m = errMsg(NLM_F_ACK_TLVS, errPayload(1, padded, encodeAttrs([attr.str(1, 'Operation not permitted here')])));
  t.deepEqual(parseError(m), { errno: 1, extack: 'Operation not permitted here' });
});

test('parseError: ACK_TLVS with TLVs but no message attribute', (t) => {
  const m = errMsg(NLM_F_ACK_TLVS | NLM_F_CAPPED, errPayload(22, request.subarray(0, 16), encodeAttrs([attr.u32(2, 20)])));
  t.deepEqual(parseError(m), { errno: 22 });
});

// ---- a whole rtnetlink request, by hand ----

test('golden RTM_NEWADDR: 10.77.0.5/24 on ifindex 5', (t) => {
  const RTM_NEWADDR = 20, AF_INET = 2, IFA_ADDRESS = 1, IFA_LOCAL = 2;
  const ifaddrmsg = hex('02 18 00 00 05000000'); // family, prefixlen, flags, scope, index
  t.is(ifaddrmsg[0], AF_INET);
  const addr = Buffer.from([10, 77, 0, 5]);
  const msg = encodeMessage(RTM_NEWADDR, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, 1,
    Buffer.concat([ifaddrmsg, encodeAttrs([attr.bytes(IFA_LOCAL, addr), attr.bytes(IFA_ADDRESS, addr)])]));
  t.deepEqual(msg, hex(`
    28000000 1400 0506 01000000 00000000
    02 18 00 00 05000000
    0800 0200 0a4d0005
    0800 0100 0a4d0005`));
  const [m] = parseMessages(msg);
  t.like(m, { type: RTM_NEWADDR, flags: 0x605, seq: 1 });
  const attrs = parseAttrs(m!.payload, 8);
  t.deepEqual(attrs.get(IFA_LOCAL), addr);
  t.deepEqual(attrs.get(IFA_ADDRESS), addr);
});

test('golden RTM_NEWADDR: fd77::5/64 nodad on ifindex 3', (t) => {
  const addr = hex('fd770000000000000000000000000005');
  const msg = encodeMessage(20, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, 2,
    Buffer.concat([hex('0a 40 02 00 03000000'), encodeAttrs([attr.bytes(2, addr), attr.bytes(1, addr), attr.u32(8 /* IFA_FLAGS */, 0x82)])]));
  t.deepEqual(msg, hex(`
    48000000 1400 0506 02000000 00000000
    0a 40 02 00 03000000
    1400 0200 fd770000000000000000000000000005
    1400 0100 fd770000000000000000000000000005
    0800 0800 82000000`));
});

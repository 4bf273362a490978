/**
 * Golden bytes of every rtnetlink request RouteHandle sends, through a fake socket that records
 * them (mdlayher nltest style; no root, no kernel). Each expected payload is written out field by
 * field after <linux/rtnetlink.h> and <linux/if_link.h>: ifinfomsg = u8 family, u8 pad, u16 type,
 * s32 index, u32 flags, u32 change; ifaddrmsg = u8 family, prefix, flags, scope, u32 index;
 * rtmsg = u8 family, dst_len, src_len, tos, table, protocol, scope, type, u32 flags; then
 * attributes as u16 len, u16 type (0x8000 = nested), payload padded to 4 bytes. All little-endian
 * except addresses. The kernel side of the same requests is checked in netns-tests/netlink.test.ts.
 */
import test from 'ava';
import { parseCidr, parseIP } from '../ip/cidr.ts';
import { FakeNetlinkSocket } from './fake-socket.ts';
import { NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST, attr, encodeAttrs } from './message.ts';
import { RouteHandle } from './route.ts';

const REQ = NLM_F_REQUEST | NLM_F_ACK;
const DUMP = NLM_F_REQUEST | NLM_F_DUMP;

/** Joins annotated hex pieces (spaces are for the reader). */
const hex = (...parts: string[]): string => parts.join('').replace(/\s+/g, '');

/** Runs `call` on a handle over a fake socket and returns what it sent, one message. */
async function sent(call: (h: RouteHandle) => Promise<unknown>, answer?: ConstructorParameters<typeof FakeNetlinkSocket>[0]) {
  const fake = new FakeNetlinkSocket(answer);
  await call(new RouteHandle(fake));
  const [m, ...rest] = fake.messages;
  return { type: m!.type, flags: m!.flags, payload: m!.payload.toString('hex'), more: rest.length };
}

const golden = test.macro(async (t, call: (h: RouteHandle) => Promise<unknown>, type: number, flags: number, payload: string) => {
  t.deepEqual(await sent(call), { type, flags, payload, more: 0 });
});

// ---- links ----

test('linkGet: RTM_GETLINK by IFLA_IFNAME', golden, (h) => h.linkGet('eth0'), 18, REQ, hex(
  '00 00 0000 00000000 00000000 00000000', // ifinfomsg: AF_UNSPEC, index 0
  '0900 0300 65746830 00 000000', //          IFLA_IFNAME "eth0\0"
));

test('linkGetByIndex: RTM_GETLINK by index', golden, (h) => h.linkGetByIndex(7), 18, REQ, hex('00 00 0000 07000000 00000000 00000000'));

test('linkList: RTM_GETLINK dump, no ACK', golden, (h) => h.linkList(), 18, DUMP, hex('00 00 0000 00000000 00000000 00000000'));

test('linkAddBridge: RTM_NEWLINK create-exclusive, up, kind bridge with vlan_filtering', golden,
  (h) => h.linkAddBridge('br0', { mtu: 1400, mac: '02:00:00:00:00:01', vlanFiltering: true, up: true }),
  16, REQ | NLM_F_CREATE | NLM_F_EXCL, hex(
    '00 00 0000 00000000 01000000 01000000', // ifinfomsg: flags IFF_UP, change IFF_UP
    '0800 0300 62723000', //                    IFLA_IFNAME "br0\0"
    '0800 0400 78050000', //                    IFLA_MTU 1400
    '0a00 0100 020000000001 0000', //           IFLA_ADDRESS
    '1c00 1280', //                             IFLA_LINKINFO (nested)
    '  0b00 0100 62726964676500 00', //           IFLA_INFO_KIND "bridge\0"
    '  0c00 0280', //                             IFLA_INFO_DATA (nested)
    '    0500 0700 01 000000', //                   IFLA_BR_VLAN_FILTERING 1
  ));

test('linkAddVeth: one RTM_NEWLINK with the peer (its own ifinfomsg and attributes) placed by IFLA_NET_NS_FD', golden,
  (h) => h.linkAddVeth({ name: 'veth0', peerName: 'eth0', peerNetnsFd: 9, mtu: 1400, mac: '02:00:00:00:00:02', peerMac: '0a:58:0a:4d:00:05', master: 5, up: true }),
  16, REQ | NLM_F_CREATE | NLM_F_EXCL, hex(
    '00 00 0000 00000000 01000000 01000000', // ifinfomsg: up
    '0a00 0300 7665746830 00 0000', //          IFLA_IFNAME "veth0\0"
    '0800 0400 78050000', //                    IFLA_MTU 1400
    '0a00 0100 020000000002 0000', //           IFLA_ADDRESS
    '0800 0a00 05000000', //                    IFLA_MASTER 5
    '5000 1280', //                             IFLA_LINKINFO
    '  0900 0100 7665746800 000000', //           IFLA_INFO_KIND "veth\0"
    '  4000 0280', //                             IFLA_INFO_DATA
    '    3c00 0100', //                             VETH_INFO_PEER: ifinfomsg + attributes, not up (see route.ts)
    '      00 00 0000 00000000 00000000 00000000',
    '      0900 0300 65746830 00 000000', //          IFLA_IFNAME "eth0\0"
    '      0800 1c00 09000000', //                    IFLA_NET_NS_FD 9
    '      0800 0400 78050000', //                    IFLA_MTU 1400
    '      0a00 0100 0a580a4d0005 0000', //           IFLA_ADDRESS
  ));

test('linkDel: RTM_DELLINK by index', golden, (h) => h.linkDel(7), 17, REQ, hex('00 00 0000 07000000 00000000 00000000'));

test('linkSetUp: RTM_NEWLINK flags IFF_UP under change mask IFF_UP', golden, (h) => h.linkSetUp(7), 16, REQ,
  hex('00 00 0000 07000000 01000000 01000000'));

test('linkSetDown: RTM_NEWLINK flags 0 under change mask IFF_UP', golden, (h) => h.linkSetDown(7), 16, REQ,
  hex('00 00 0000 07000000 00000000 01000000'));

test('linkSetPromisc: RTM_NEWLINK flags IFF_PROMISC under mask IFF_PROMISC', golden, (h) => h.linkSetPromisc(7, true), 16, REQ,
  hex('00 00 0000 07000000 00010000 00010000'));

test('linkSetMaster: RTM_NEWLINK with IFLA_MASTER', golden, (h) => h.linkSetMaster(7, 5), 16, REQ, hex(
  '00 00 0000 07000000 00000000 00000000',
  '0800 0a00 05000000',
));

test('linkSetMac: RTM_NEWLINK with IFLA_ADDRESS', golden, (h) => h.linkSetMac(7, '0a:58:0a:4d:00:99'), 16, REQ, hex(
  '00 00 0000 07000000 00000000 00000000',
  '0a00 0100 0a580a4d0099 0000',
));

test('linkSetIsolated: RTM_SETLINK AF_BRIDGE with IFLA_PROTINFO { IFLA_BRPORT_ISOLATED 1 }', golden, (h) => h.linkSetIsolated(7, true), 19, REQ, hex(
  '07 00 0000 07000000 00000000 00000000', // AF_BRIDGE
  '0c00 0c80', //                             IFLA_PROTINFO (nested)
  '  0500 2100 01 000000', //                   IFLA_BRPORT_ISOLATED (33) 1
));

test('linkSetHairpin: RTM_SETLINK AF_BRIDGE with IFLA_PROTINFO { IFLA_BRPORT_MODE 1 }', golden, (h) => h.linkSetHairpin(7, true), 19, REQ, hex(
  '07 00 0000 07000000 00000000 00000000', // AF_BRIDGE
  '0c00 0c80', //                             IFLA_PROTINFO (nested)
  '  0500 0400 01 000000', //                   IFLA_BRPORT_MODE 1
));

test('bridgeVlanAdd on the bridge itself: IFLA_AF_SPEC { IFLA_BRIDGE_FLAGS SELF, IFLA_BRIDGE_VLAN_INFO }', golden,
  (h) => h.bridgeVlanAdd(5, 42, { pvid: false, untagged: false, self: true }), 19, REQ, hex(
    '07 00 0000 05000000 00000000 00000000',
    '1400 1a80', //                             IFLA_AF_SPEC (nested)
    '  0600 0000 0200 0000', //                   IFLA_BRIDGE_FLAGS BRIDGE_FLAGS_SELF
    '  0800 0200 0000 2a00', //                   IFLA_BRIDGE_VLAN_INFO flags 0, vid 42
  ));

test('bridgeVlanAdd on a port: PVID | UNTAGGED', golden, (h) => h.bridgeVlanAdd(7, 42, { pvid: true, untagged: true }), 19, REQ, hex(
  '07 00 0000 07000000 00000000 00000000',
  '0c00 1a80',
  '  0800 0200 0600 2a00', //                   flags BRIDGE_VLAN_INFO_PVID | BRIDGE_VLAN_INFO_UNTAGGED, vid 42
));

test('bridgeVlanDel: RTM_DELLINK AF_BRIDGE with the VLAN info', golden, (h) => h.bridgeVlanDel(7, 1), 17, REQ, hex(
  '07 00 0000 07000000 00000000 00000000',
  '0c00 1a80',
  '  0800 0200 0000 0100',
));

// ---- addresses ----

test('addrAdd IPv6 nodad: IFA_F_NODAD in ifaddrmsg and IFA_FLAGS (with PERMANENT)', golden,
  (h) => h.addrAdd(7, parseCidr('fd77::5/64'), { nodad: true }), 20, REQ | NLM_F_CREATE | NLM_F_EXCL, hex(
    '0a 40 02 00 07000000', //                  AF_INET6, /64, IFA_F_NODAD, scope 0, index 7
    '1400 0200 fd770000000000000000000000000005', // IFA_LOCAL
    '1400 0100 fd770000000000000000000000000005', // IFA_ADDRESS
    '0800 0800 82000000', //                    IFA_FLAGS NODAD | PERMANENT
  ));

test('addrAdd IPv4', golden, (h) => h.addrAdd(7, parseCidr('10.77.0.5/24')), 20, REQ | NLM_F_CREATE | NLM_F_EXCL, hex(
  '02 18 00 00 07000000',
  '0800 0200 0a4d0005',
  '0800 0100 0a4d0005',
));

test('addrDel', golden, (h) => h.addrDel(7, parseCidr('10.77.0.5/24')), 21, REQ, hex(
  '02 18 00 00 07000000',
  '0800 0200 0a4d0005',
  '0800 0100 0a4d0005',
));

test('addrList: RTM_GETADDR dump of every family', golden, (h) => h.addrList(), 22, DUMP, hex('00 00 00 00 00000000'));

// ---- routes ----

test('routeAdd: table > 255 goes in RTA_TABLE (rtm_table RT_TABLE_COMPAT), metrics nested', golden,
  (h) => h.routeAdd({ dst: parseCidr('192.0.2.0/24'), gw: parseIP('10.77.0.1'), oif: 7, priority: 50, table: 1000, mtu: 1300, advmss: 1260 }),
  24, REQ | NLM_F_CREATE | NLM_F_EXCL, hex(
    '02 18 00 00 fc 03 00 01 00000000', //      AF_INET, /24, table COMPAT, proto boot, scope universe (via gw), unicast
    '0800 0100 c0000200', //                    RTA_DST
    '0800 0500 0a4d0001', //                    RTA_GATEWAY
    '0800 0400 07000000', //                    RTA_OIF
    '0800 0600 32000000', //                    RTA_PRIORITY 50
    '0800 0f00 e8030000', //                    RTA_TABLE 1000
    '1400 0880', //                             RTA_METRICS (nested)
    '  0800 0200 14050000', //                    RTAX_MTU 1300
    '  0800 0800 ec040000', //                    RTAX_ADVMSS 1260
  ));

test('routeReplace: a default route has no RTA_DST; link scope without a gateway', async (t) => {
  t.deepEqual(await sent((h) => h.routeReplace({ dst: parseCidr('0.0.0.0/0'), gw: parseIP('10.77.0.1') })), {
    type: 24, flags: REQ | NLM_F_CREATE | NLM_F_REPLACE, more: 0,
    payload: hex('02 00 00 00 fe 03 00 01 00000000', '0800 0500 0a4d0001'),
  });
  t.is((await sent((h) => h.routeReplace({ dst: parseCidr('fd77::/64'), oif: 7 }))).payload, hex(
    '0a 40 00 00 fe 03 fd 01 00000000', //      AF_INET6, /64, main, boot, scope link, unicast
    '1400 0100 fd770000000000000000000000000000',
    '0800 0400 07000000',
  ));
});

test('routeDel matches any protocol, scope and type, as `ip route del` does', golden,
  (h) => h.routeDel({ dst: parseCidr('10.77.0.0/24'), oif: 7 }), 25, REQ, hex(
    '02 18 00 00 fe 00 ff 00 00000000', //      proto unspec, scope nowhere, type unspec
    '0800 0100 0a4d0000',
    '0800 0400 07000000',
  ));

test('routeList: RTM_GETROUTE dump of one family', golden, (h) => h.routeList(6), 26, DUMP, hex('0a 00 00 00 00 00 00 00 00000000'));

// ---- decoding what came back, and the errors ----

test('linkGet decodes the reply and maps ENODEV to undefined', async (t) => {
  const reply = Buffer.concat([
    Buffer.from(hex('00 00 0100 07000000 43100100 00000000'), 'hex'), // index 7, flags UP|BROADCAST|RUNNING|MULTICAST|LOWER_UP
    encodeAttrs([
      attr.str(3, 'eth0'), attr.u32(4, 1400), attr.bytes(1, Buffer.from('0a580a4d0005', 'hex')), attr.u32(10, 5), attr.u8(16, 6),
      attr.nested(18, [attr.str(1, 'veth'), attr.str(4, 'bridge')]),
    ]),
  ]);
  const h = new RouteHandle(new FakeNetlinkSocket((m) => (m.payload.includes(Buffer.from('eth0')) ? { data: [reply], errno: 0 } : 19)));
  t.deepEqual(await h.linkGet('eth0'), {
    index: 7, flags: 0x11043, name: 'eth0', kind: 'veth', slaveKind: 'bridge', mac: '0a:58:0a:4d:00:05', mtu: 1400, master: 5, operState: 6,
  });
  t.is(await h.linkGet('nope0'), undefined);
  const err = await t.throwsAsync(h.linkDel(9));
  t.like(err, { code: 'ENODEV', errno: 19, op: 'RTM_DELLINK #9' });
});

test('linkIsolated reads IFLA_BRPORT_ISOLATED from the bridge_slave data; undefined for a missing link or no port', async (t) => {
  const port = (isolated: number | undefined) => Buffer.concat([
    Buffer.from(hex('00 00 0100 07000000 43100100 00000000'), 'hex'),
    encodeAttrs([attr.str(3, 'veth1'), attr.nested(18, [
      attr.str(1, 'veth'), attr.str(4, 'bridge'), ...(isolated === undefined ? [] : [attr.nested(5, [attr.u8(4, 1), attr.u8(33, isolated)])]),
    ])]),
  ]);
  const replies: Record<string, Buffer> = { veth1: port(1), veth2: port(0), lone0: port(undefined) };
  const h = new RouteHandle(new FakeNetlinkSocket((m) => {
    const name = Object.keys(replies).find((n) => m.payload.includes(Buffer.from(`${n}\0`)));
    return name ? { data: [replies[name]!], errno: 0 } : 19;
  }));
  t.is(await h.linkIsolated('veth1'), true);
  t.is(await h.linkIsolated('veth2'), false);
  t.is(await h.linkIsolated('lone0'), undefined);
  t.is(await h.linkIsolated('nope0'), undefined);
});

test('peerUp in another namespace without its handle fails and deletes the pair again', async (t) => {
  const fake = new FakeNetlinkSocket((m) => (m.type === 18 ? { data: [Buffer.from(hex('00 00 0100 0b000000 00000000 00000000'), 'hex')], errno: 0 } : 0));
  const err = await t.throwsAsync(new RouteHandle(fake).linkAddVeth({ name: 'veth0', peerName: 'eth0', peerNetnsFd: 9, peerUp: true }));
  t.regex(err!.message, /needs peerHandle/);
  t.deepEqual(fake.messages.map((m) => m.type), [16, 18, 17], 'NEWLINK, GETLINK veth0, DELLINK');
  t.is(fake.messages[2]!.payload.readInt32LE(4), 11, 'the pair is deleted by the index the kernel reported');
});

// ---- link attributes set and read by the tuning plugin ----

test('linkSetMtu: RTM_NEWLINK with IFLA_MTU', golden, (h) => h.linkSetMtu(7, 1300), 16, REQ, hex(
  '00 00 0000 07000000 00000000 00000000',
  '0800 0400 14050000', //                    IFLA_MTU 1300
));

test('linkSetAllmulti: RTM_NEWLINK flags IFF_ALLMULTI under mask IFF_ALLMULTI (on), 0 under the mask (off)', async (t) => {
  t.deepEqual(await sent((h) => h.linkSetAllmulti(7, true)), { type: 16, flags: REQ, more: 0, payload: hex('00 00 0000 07000000 00020000 00020000') });
  t.deepEqual(await sent((h) => h.linkSetAllmulti(7, false)), { type: 16, flags: REQ, more: 0, payload: hex('00 00 0000 07000000 00000000 00020000') });
});

test('linkSetTxQLen: RTM_NEWLINK with IFLA_TXQLEN', golden, (h) => h.linkSetTxQLen(7, 5000), 16, REQ, hex(
  '00 00 0000 07000000 00000000 00000000',
  '0800 0d00 88130000', //                    IFLA_TXQLEN 5000
));

test('linkGetDetails: the RTM_GETLINK of linkGet; decodes IFLA_TXQLEN and the MTU bounds, ENODEV is undefined', async (t) => {
  t.deepEqual(await sent((h) => h.linkGetDetails('eth0')), await sent((h) => h.linkGet('eth0')));
  const reply = Buffer.concat([
    Buffer.from(hex('00 00 0100 07000000 03130100 00000000'), 'hex'), // flags UP|BROADCAST|PROMISC|ALLMULTI|MULTICAST|LOWER_UP
    encodeAttrs([attr.str(3, 'eth0'), attr.u32(4, 1500), attr.u32(13, 1000), attr.u32(50, 68), attr.u32(51, 65535), attr.bytes(1, Buffer.from('0a580a4d0005', 'hex'))]),
  ]);
  const h = new RouteHandle(new FakeNetlinkSocket((m) => (m.payload.includes(Buffer.from('eth0')) ? { data: [reply], errno: 0 } : 19)));
  t.deepEqual(await h.linkGetDetails('eth0'), {
    index: 7, flags: 0x11303, name: 'eth0', kind: '', slaveKind: '', mac: '0a:58:0a:4d:00:05', mtu: 1500, master: 0, operState: 0,
    txQLen: 1000, minMtu: 68, maxMtu: 65535,
  });
  t.is(await h.linkGetDetails('nope0'), undefined);
});

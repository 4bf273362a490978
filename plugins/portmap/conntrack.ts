/**
 * Flushing stale UDP conntrack entries of newly mapped host ports (ctnetlink, NETLINK_NETFILTER
 * subsystem 1), as the reference portmap does after adding its rules: NAT is decided on the first
 * packet of a flow, so a UDP "flow" that began before the mapping existed (a client already
 * sending to hostPort) would keep bypassing the DNAT until its entry times out.
 *
 * Two steps, both bounded by the number of entries on that port (not the whole table): a dump
 * filtered in the kernel by protocol and original destination port (CTA_FILTER, Linux 5.8+), then
 * one delete per entry by its exact original tuple. Failures are informative only, as upstream:
 * the mapping works for every new flow whatever happens here.
 */
import { constants } from 'node:os';
import { type Attr, NLA_F_NESTED, attr, encodeAttrs, parseAttrs } from '../../pkg/netlink/message.ts';
import type { NetlinkSocket } from '../../pkg/netlink/socket.ts';
import { nfgenmsg } from '../../pkg/nftables/objects.ts';

const NFNL_SUBSYS_CTNETLINK = 1;
const IPCTNL_MSG_CT_GET = 1;
const IPCTNL_MSG_CT_DELETE = 2;
const CTA_TUPLE_ORIG = 1;
const CTA_FILTER = 25;
const CTA_FILTER_ORIG_FLAGS = 1;
const CTA_TUPLE_PROTO = 2;
const CTA_PROTO_NUM = 1;
const CTA_PROTO_DST_PORT = 3;
/** CTA_FILTER_F_CTA_PROTO_NUM | CTA_FILTER_F_CTA_PROTO_DST_PORT (<linux/netfilter/nf_conntrack_common.h>). */
const FILTER_PROTO_NUM_DST_PORT = (1 << 3) | (1 << 5);
const IPPROTO_UDP = 17;
const AF = { 4: 2, 6: 10 } as const;

const ct = (msg: number): number => (NFNL_SUBSYS_CTNETLINK << 8) | msg;

/** The body of a dump of the conntrack entries of one UDP destination port. */
export function udpPortDumpBody(family: 4 | 6, port: number): Buffer {
  const attrs: Attr[] = [
    attr.nested(CTA_TUPLE_ORIG, [attr.nested(CTA_TUPLE_PROTO, [attr.u8(CTA_PROTO_NUM, IPPROTO_UDP), attr.u16be(CTA_PROTO_DST_PORT, port)])]),
    attr.nested(CTA_FILTER, [attr.u32(CTA_FILTER_ORIG_FLAGS, FILTER_PROTO_NUM_DST_PORT)]),
  ];
  return Buffer.concat([nfgenmsg(AF[family]), encodeAttrs(attrs)]);
}

/**
 * Deletes the conntrack entries of UDP flows to `port` (original direction) through `sock`, a
 * NETLINK_NETFILTER socket in the host namespace. Returns how many were deleted.
 * Equivalent to: `conntrack -D -p udp --orig-port-dst PORT`.
 */
export async function flushUdpPort(sock: NetlinkSocket, family: 4 | 6, port: number): Promise<number> {
  const entries = await sock.dump(ct(IPCTNL_MSG_CT_GET), udpPortDumpBody(family, port), `dump conntrack udp dport ${port}`);
  let deleted = 0;
  for (const e of entries) {
    const orig = parseAttrs(e.payload, 4).get(CTA_TUPLE_ORIG);
    if (!orig) continue;
    // The original tuple exactly as the kernel gave it (address, protocol, ports, zone).
    const tuple = attr.bytes(CTA_TUPLE_ORIG | NLA_F_NESTED, Buffer.from(orig));
    try {
      await sock.request(ct(IPCTNL_MSG_CT_DELETE), 0, Buffer.concat([nfgenmsg(AF[family]), encodeAttrs([tuple])]), 'delete conntrack entry');
      deleted++;
    } catch (err) {
      if ((err as { errno?: number }).errno !== constants.errno.ENOENT) throw err;
    }
  }
  return deleted;
}

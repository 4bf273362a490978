/**
 * rtnetlink: links, addresses and routes in one network namespace, through a RouteHandle over a
 * NetlinkSocket bound to that namespace (blocking in a fresh process, asynchronous in a daemon:
 * the handle does not care). Methods are named after the iproute2 command they match. Only what
 * the plugins need is here; every request waits for the kernel's ACK, so a method resolves once
 * the change is made or rejects with the kernel's error (SysError with code/op/extack).
 * Plugins get their handles from the call (CmdArgs.kernel), never by opening sockets.
 */
import { type Cidr, type Family, type IP, ipFromBytes, ipToBytes } from '../ip/cidr.ts';
import {
  type Attr, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, attr, attrStr, attrU32, attrU8, encodeAttrs, parseAttrs,
} from './message.ts';
import { BlockingNetlinkSocket, NETLINK_ROUTE, type NetlinkSocket } from './socket.ts';

const RTM_NEWLINK = 16, RTM_DELLINK = 17, RTM_GETLINK = 18, RTM_SETLINK = 19;
const RTM_NEWADDR = 20, RTM_DELADDR = 21, RTM_GETADDR = 22;
const RTM_NEWROUTE = 24, RTM_DELROUTE = 25, RTM_GETROUTE = 26;

const AF_UNSPEC = 0, AF_INET = 2, AF_BRIDGE = 7, AF_INET6 = 10;
const IFLA_ADDRESS = 1, IFLA_IFNAME = 3, IFLA_MTU = 4, IFLA_MASTER = 10, IFLA_PROTINFO = 12;
const IFLA_OPERSTATE = 16, IFLA_LINKINFO = 18, IFLA_NET_NS_FD = 28, IFLA_AF_SPEC = 26;
const IFLA_INFO_KIND = 1, IFLA_INFO_DATA = 2, IFLA_INFO_SLAVE_KIND = 4, IFLA_INFO_SLAVE_DATA = 5;
const IFLA_BR_VLAN_FILTERING = 7;
const IFLA_BRPORT_MODE = 4, IFLA_BRPORT_ISOLATED = 33;
const IFLA_BRIDGE_FLAGS = 0, IFLA_BRIDGE_VLAN_INFO = 2;
const BRIDGE_FLAGS_SELF = 2;
const BRIDGE_VLAN_INFO_PVID = 2, BRIDGE_VLAN_INFO_UNTAGGED = 4;
const VETH_INFO_PEER = 1;
export const IFF_UP = 0x1;
export const IFF_PROMISC = 0x100;
export const IF_OPER_UP = 6;
export const OPER_STATES = ['unknown', 'notpresent', 'down', 'lowerlayerdown', 'testing', 'dormant', 'up'] as const;

const IFA_ADDRESS = 1, IFA_LOCAL = 2, IFA_FLAGS = 8;
export const IFA_F_NODAD = 0x02;
const IFA_F_PERMANENT = 0x80;

const RTA_DST = 1, RTA_OIF = 4, RTA_GATEWAY = 5, RTA_PRIORITY = 6, RTA_METRICS = 8, RTA_TABLE = 15;
const RTAX_MTU = 2, RTAX_ADVMSS = 8;
export const RT_TABLE_MAIN = 254;
/** What rtm_table says when the real table id (> 255) is in RTA_TABLE. */
const RT_TABLE_COMPAT = 252;
const RTPROT_UNSPEC = 0, RTPROT_BOOT = 3, RTN_UNSPEC = 0, RTN_UNICAST = 1;
const RT_SCOPE_NOWHERE = 255;
export const RT_SCOPE_UNIVERSE = 0, RT_SCOPE_LINK = 253, RT_SCOPE_HOST = 254;

export interface Link {
  index: number;
  name: string;
  /** IFLA_INFO_KIND: "bridge", "veth"...; "" for devices without one (lo, physical). */
  kind: string;
  /** Enslaving kind ("bridge" for a bridge port). */
  slaveKind: string;
  mac: string;
  mtu: number;
  flags: number;
  master: number;
  operState: number;
}

export interface Address { index: number; family: Family; cidr: Cidr; scope: number; flags: number }

export interface RouteSpec {
  dst: Cidr;
  gw?: IP;
  oif?: number;
  priority?: number;
  table?: number;
  scope?: number;
  mtu?: number;
  advmss?: number;
}

export interface RouteEntry extends RouteSpec { type: number; protocol: number }

export function macToBytes(mac: string): Buffer {
  return Buffer.from(mac.split(':').map((h) => parseInt(h, 16)));
}

export function macFromBytes(b: Buffer | undefined): string {
  return b ? [...b].map((x) => x.toString(16).padStart(2, '0')).join(':') : '';
}

function ifinfomsg(family: number, index: number, flags = 0, change = 0): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt8(family, 0);
  b.writeInt32LE(index, 4);
  b.writeUInt32LE(flags, 8);
  b.writeUInt32LE(change, 12);
  return b;
}

/** What a route lookup answers when nothing leads to the address. */
const NO_ROUTE = new Set(['ENETUNREACH', 'EHOSTUNREACH', 'ENETDOWN']);

function afOf(f: Family): number {
  return f === 4 ? AF_INET : AF_INET6;
}

function decodeLink(payload: Buffer): Link {
  const attrs = parseAttrs(payload, 16);
  const info = attrs.get(IFLA_LINKINFO);
  const infoAttrs = info ? parseAttrs(info) : undefined;
  return {
    index: payload.readInt32LE(4),
    flags: payload.readUInt32LE(8),
    name: attrStr(attrs.get(IFLA_IFNAME)) ?? '',
    kind: attrStr(infoAttrs?.get(IFLA_INFO_KIND)) ?? '',
    slaveKind: attrStr(infoAttrs?.get(IFLA_INFO_SLAVE_KIND)) ?? '',
    mac: macFromBytes(attrs.get(IFLA_ADDRESS)),
    mtu: attrU32(attrs.get(IFLA_MTU)) ?? 0,
    master: attrU32(attrs.get(IFLA_MASTER)) ?? 0,
    operState: attrU8(attrs.get(IFLA_OPERSTATE)) ?? 0,
  };
}

export interface VethSpec {
  /** Name of the end created in this handle's namespace. */
  name: string;
  /** Name of the other end. */
  peerName: string;
  /** fd of the namespace the peer goes into (opened by the caller); omitted = same namespace. */
  peerNetnsFd?: number;
  mtu?: number;
  mac?: string;
  peerMac?: string;
  /** ifindex of a bridge to enslave this end to at creation. */
  master?: number;
  /** Bring this end up at creation. */
  up?: boolean;
  /** Bring the peer up too (a second request, made in the peer's namespace, once the pair exists). */
  peerUp?: boolean;
  /** A handle on the peer's namespace, for peerUp when `peerNetnsFd` puts the peer elsewhere. */
  peerHandle?: RouteHandle;
}

export class RouteHandle {
  private readonly sock: NetlinkSocket;
  /** A handle over `sock`, a NETLINK_ROUTE socket (any implementation). */
  constructor(sock: NetlinkSocket) {
    this.sock = sock;
  }

  /**
   * Opens a handle on a blocking socket bound to the namespace at `netnsPath` (omitted = the
   * caller's own), for tools and tests; plugins get theirs from CmdArgs.kernel.
   */
  static open(netnsPath?: string | null): RouteHandle {
    return new RouteHandle(BlockingNetlinkSocket.open(NETLINK_ROUTE, netnsPath));
  }

  /** The namespace path the socket was opened in (null: the opener's own). */
  get netns(): string | null {
    return this.sock.netns;
  }

  close(): void {
    this.sock.close();
  }

  /** Returns the link called `name`, or undefined. Equivalent to: `ip link show NAME` */
  async linkGet(name: string): Promise<Link | undefined> {
    try {
      const [m] = await this.sock.request(RTM_GETLINK, 0, Buffer.concat([ifinfomsg(AF_UNSPEC, 0), encodeAttrs([attr.str(IFLA_IFNAME, name)])]), `RTM_GETLINK ${name}`);
      return m ? decodeLink(m.payload) : undefined;
    } catch (err) {
      if ((err as { code?: string }).code === 'ENODEV') return undefined;
      throw err;
    }
  }

  /** Returns the link with ifindex `index`, or undefined. Equivalent to: `ip link show dev IDX` */
  async linkGetByIndex(index: number): Promise<Link | undefined> {
    try {
      const [m] = await this.sock.request(RTM_GETLINK, 0, ifinfomsg(AF_UNSPEC, index), `RTM_GETLINK #${index}`);
      return m ? decodeLink(m.payload) : undefined;
    } catch (err) {
      if ((err as { code?: string }).code === 'ENODEV') return undefined;
      throw err;
    }
  }

  /** Equivalent to: `ip link show` */
  async linkList(): Promise<Link[]> {
    return (await this.sock.dump(RTM_GETLINK, ifinfomsg(AF_UNSPEC, 0), 'RTM_GETLINK dump')).map((m) => decodeLink(m.payload));
  }

  /** Creates a bridge; throws EEXIST if a link of that name exists. Equivalent to: `ip link add NAME type bridge` */
  async linkAddBridge(name: string, opts: { mtu?: number; mac?: string; vlanFiltering?: boolean; up?: boolean } = {}): Promise<void> {
    const attrs: Attr[] = [attr.str(IFLA_IFNAME, name)];
    if (opts.mtu) attrs.push(attr.u32(IFLA_MTU, opts.mtu));
    if (opts.mac) attrs.push(attr.bytes(IFLA_ADDRESS, macToBytes(opts.mac)));
    const data: Attr[] = opts.vlanFiltering ? [attr.u8(IFLA_BR_VLAN_FILTERING, 1)] : [];
    attrs.push(attr.nested(IFLA_LINKINFO, [attr.str(IFLA_INFO_KIND, 'bridge'), ...(data.length ? [attr.nested(IFLA_INFO_DATA, data)] : [])]));
    const up = opts.up ? IFF_UP : 0;
    await this.sock.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, Buffer.concat([ifinfomsg(AF_UNSPEC, 0, up, up), encodeAttrs(attrs)]), `RTM_NEWLINK bridge ${name}`);
  }

  /**
   * Creates a veth pair: `name` here, `peerName` in the namespace of `peerNetnsFd`, both in one
   * request so no half-made pair is ever visible. Throws EEXIST when either name is taken.
   * Equivalent to: `ip link add NAME type veth peer name PEER netns NS`
   */
  async linkAddVeth(v: VethSpec): Promise<void> {
    const peerAttrs: Attr[] = [attr.str(IFLA_IFNAME, v.peerName)];
    if (v.peerNetnsFd !== undefined) peerAttrs.push(attr.u32(IFLA_NET_NS_FD, v.peerNetnsFd));
    if (v.mtu) peerAttrs.push(attr.u32(IFLA_MTU, v.mtu));
    if (v.peerMac) peerAttrs.push(attr.bytes(IFLA_ADDRESS, macToBytes(v.peerMac)));
    // Why no IFF_UP here: veth_newlink() configures the peer before the two ends are linked, so
    // opening it fails with ENOTCONN (veth_open). peerUp is applied once the pair exists.
    const peer = Buffer.concat([ifinfomsg(AF_UNSPEC, 0), encodeAttrs(peerAttrs)]);
    const attrs: Attr[] = [attr.str(IFLA_IFNAME, v.name)];
    if (v.mtu) attrs.push(attr.u32(IFLA_MTU, v.mtu));
    if (v.mac) attrs.push(attr.bytes(IFLA_ADDRESS, macToBytes(v.mac)));
    if (v.master) attrs.push(attr.u32(IFLA_MASTER, v.master));
    attrs.push(attr.nested(IFLA_LINKINFO, [
      attr.str(IFLA_INFO_KIND, 'veth'),
      attr.nested(IFLA_INFO_DATA, [attr.bytes(VETH_INFO_PEER, peer)]),
    ]));
    const up = v.up ? IFF_UP : 0;
    await this.sock.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, Buffer.concat([ifinfomsg(AF_UNSPEC, 0, up, up), encodeAttrs(attrs)]), `RTM_NEWLINK veth ${v.name}`);
    if (v.peerUp) await this.vethPeerUp(v);
  }

  /** Brings up the peer of a veth just made (through the peer's namespace); on failure deletes the pair. */
  private async vethPeerUp(v: VethSpec): Promise<void> {
    const peerNs = v.peerNetnsFd === undefined ? this : v.peerHandle;
    try {
      if (!peerNs) throw new Error(`peerUp for "${v.peerName}" in another namespace needs peerHandle`);
      const peer = await peerNs.linkGet(v.peerName);
      if (!peer) throw new Error(`veth peer "${v.peerName}" vanished after creation`);
      await peerNs.linkSetUp(peer.index);
    } catch (err) {
      const me = await this.linkGet(v.name);
      if (me) await this.linkDel(me.index);
      throw err;
    }
  }

  /** Deletes a link (a veth takes its peer with it). Equivalent to: `ip link del dev IDX` */
  async linkDel(index: number): Promise<void> {
    await this.sock.request(RTM_DELLINK, 0, ifinfomsg(AF_UNSPEC, index), `RTM_DELLINK #${index}`, { slow: true });
  }

  private async setFlags(index: number, flags: number, mask: number, op: string): Promise<void> {
    await this.sock.request(RTM_NEWLINK, 0, ifinfomsg(AF_UNSPEC, index, flags, mask), op);
  }

  /** Equivalent to: `ip link set dev IDX up` */
  async linkSetUp(index: number): Promise<void> {
    await this.setFlags(index, IFF_UP, IFF_UP, `RTM_NEWLINK #${index} up`);
  }

  /** Equivalent to: `ip link set dev IDX down` */
  async linkSetDown(index: number): Promise<void> {
    await this.setFlags(index, 0, IFF_UP, `RTM_NEWLINK #${index} down`);
  }

  /** Equivalent to: `ip link set dev IDX promisc on|off` */
  async linkSetPromisc(index: number, on: boolean): Promise<void> {
    await this.setFlags(index, on ? IFF_PROMISC : 0, IFF_PROMISC, `RTM_NEWLINK #${index} promisc`);
  }

  /** Equivalent to: `ip link set dev IDX master MASTER` */
  async linkSetMaster(index: number, master: number): Promise<void> {
    await this.sock.request(RTM_NEWLINK, 0, Buffer.concat([ifinfomsg(AF_UNSPEC, index), encodeAttrs([attr.u32(IFLA_MASTER, master)])]), `RTM_NEWLINK #${index} master`);
  }

  /** Equivalent to: `ip link set dev IDX address MAC` */
  async linkSetMac(index: number, mac: string): Promise<void> {
    await this.sock.request(RTM_NEWLINK, 0, Buffer.concat([ifinfomsg(AF_UNSPEC, index), encodeAttrs([attr.bytes(IFLA_ADDRESS, macToBytes(mac))])]), `RTM_NEWLINK #${index} address`);
  }

  /** Equivalent to: `bridge link set dev IDX hairpin on|off` */
  async linkSetHairpin(index: number, on: boolean): Promise<void> {
    const protinfo = attr.nested(IFLA_PROTINFO, [attr.u8(IFLA_BRPORT_MODE, on ? 1 : 0)]);
    await this.sock.request(RTM_SETLINK, 0, Buffer.concat([ifinfomsg(AF_BRIDGE, index), encodeAttrs([protinfo])]), `RTM_SETLINK #${index} hairpin`);
  }

  /**
   * Isolates a bridge port: the bridge forwards no frame between two isolated ports (they still
   * reach the others and the bridge itself). Equivalent to: `bridge link set dev IDX isolated on|off`
   */
  async linkSetIsolated(index: number, on: boolean): Promise<void> {
    const protinfo = attr.nested(IFLA_PROTINFO, [attr.u8(IFLA_BRPORT_ISOLATED, on ? 1 : 0)]);
    await this.sock.request(RTM_SETLINK, 0, Buffer.concat([ifinfomsg(AF_BRIDGE, index), encodeAttrs([protinfo])]), `RTM_SETLINK #${index} isolated`);
  }

  /**
   * Returns whether bridge port `name` is isolated; undefined when there is no such link or it is
   * not a bridge port. Equivalent to: `ip -d link show NAME` (`bridge_slave ... isolated on`)
   */
  async linkIsolated(name: string): Promise<boolean | undefined> {
    let m;
    try {
      [m] = await this.sock.request(RTM_GETLINK, 0, Buffer.concat([ifinfomsg(AF_UNSPEC, 0), encodeAttrs([attr.str(IFLA_IFNAME, name)])]), `RTM_GETLINK ${name}`);
    } catch (err) {
      if ((err as { code?: string }).code === 'ENODEV') return undefined;
      throw err;
    }
    const info = m && parseAttrs(m.payload, 16).get(IFLA_LINKINFO);
    const slave = info && parseAttrs(info).get(IFLA_INFO_SLAVE_DATA);
    const flag = slave && parseAttrs(slave).get(IFLA_BRPORT_ISOLATED);
    return flag ? (attrU8(flag) ?? 0) !== 0 : undefined;
  }

  /** Makes `vid` the untagged PVID of a bridge port. Equivalent to: `bridge vlan add dev IDX vid VID pvid untagged` */
  async bridgeVlanAdd(index: number, vid: number, opts: { pvid: boolean; untagged: boolean; self?: boolean }): Promise<void> {
    const info = Buffer.alloc(4);
    info.writeUInt16LE((opts.pvid ? BRIDGE_VLAN_INFO_PVID : 0) | (opts.untagged ? BRIDGE_VLAN_INFO_UNTAGGED : 0), 0);
    info.writeUInt16LE(vid, 2);
    const spec: Attr[] = [attr.bytes(IFLA_BRIDGE_VLAN_INFO, info)];
    // BRIDGE_FLAGS_SELF: the VLAN goes on the bridge device itself, not on a port.
    if (opts.self) spec.unshift(attr.u16(IFLA_BRIDGE_FLAGS, BRIDGE_FLAGS_SELF));
    await this.sock.request(RTM_SETLINK, 0, Buffer.concat([ifinfomsg(AF_BRIDGE, index), encodeAttrs([attr.nested(IFLA_AF_SPEC, spec)])]), `RTM_SETLINK #${index} vlan ${vid}`);
  }

  /** Removes `vid` from a bridge port. Equivalent to: `bridge vlan del dev IDX vid VID` */
  async bridgeVlanDel(index: number, vid: number): Promise<void> {
    const info = Buffer.alloc(4);
    info.writeUInt16LE(vid, 2);
    await this.sock.request(RTM_DELLINK, 0, Buffer.concat([ifinfomsg(AF_BRIDGE, index), encodeAttrs([attr.nested(IFLA_AF_SPEC, [attr.bytes(IFLA_BRIDGE_VLAN_INFO, info)])])]), `RTM_DELLINK #${index} vlan ${vid}`);
  }

  /** Adds an address; throws EEXIST if it is there. Equivalent to: `ip addr add CIDR dev IDX` */
  async addrAdd(index: number, cidr: Cidr, opts: { nodad?: boolean } = {}): Promise<void> {
    const b = Buffer.alloc(8);
    b.writeUInt8(afOf(cidr.family), 0);
    b.writeUInt8(cidr.prefix, 1);
    b.writeUInt8(opts.nodad ? IFA_F_NODAD : 0, 2);
    b.writeUInt32LE(index, 4);
    const bytes = ipToBytes(cidr);
    const attrs: Attr[] = [attr.bytes(IFA_LOCAL, bytes), attr.bytes(IFA_ADDRESS, bytes)];
    if (opts.nodad) attrs.push(attr.u32(IFA_FLAGS, IFA_F_NODAD | IFA_F_PERMANENT));
    await this.sock.request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, Buffer.concat([b, encodeAttrs(attrs)]), `RTM_NEWADDR #${index}`);
  }

  /** Equivalent to: `ip addr del CIDR dev IDX` */
  async addrDel(index: number, cidr: Cidr): Promise<void> {
    const b = Buffer.alloc(8);
    b.writeUInt8(afOf(cidr.family), 0);
    b.writeUInt8(cidr.prefix, 1);
    b.writeUInt32LE(index, 4);
    const bytes = ipToBytes(cidr);
    await this.sock.request(RTM_DELADDR, 0, Buffer.concat([b, encodeAttrs([attr.bytes(IFA_LOCAL, bytes), attr.bytes(IFA_ADDRESS, bytes)])]), `RTM_DELADDR #${index}`);
  }

  /** Lists addresses, optionally of one link. Equivalent to: `ip addr show [dev IDX]` */
  async addrList(index?: number): Promise<Address[]> {
    const out: Address[] = [];
    // ifaddrmsg with ifa_index: the kernel filters by link on a strict-checking socket (native
    // nlOpen sets it); the filter below keeps the answer right on any other.
    const req = Buffer.alloc(8);
    if (index !== undefined) req.writeUInt32LE(index, 4);
    for (const m of await this.sock.dump(RTM_GETADDR, req, 'RTM_GETADDR dump')) {
      const p = m.payload;
      const family = p[0] === AF_INET ? 4 : p[0] === AF_INET6 ? 6 : undefined;
      const idx = p.readUInt32LE(4);
      if (!family || (index !== undefined && idx !== index)) continue;
      const attrs = parseAttrs(p, 8);
      const raw = attrs.get(IFA_LOCAL) ?? attrs.get(IFA_ADDRESS);
      if (!raw) continue;
      out.push({ index: idx, family, cidr: { ...ipFromBytes(raw), prefix: p[1]! }, scope: p[3]!, flags: attrU32(attrs.get(IFA_FLAGS)) ?? p[2]! });
    }
    return out;
  }

  private routeMsg(r: RouteSpec, type: number, del = false): Buffer {
    const b = Buffer.alloc(12);
    const table = r.table ?? RT_TABLE_MAIN;
    b.writeUInt8(afOf(r.dst.family), 0);
    b.writeUInt8(r.dst.prefix, 1);
    b.writeUInt8(table > 255 ? RT_TABLE_COMPAT : table, 4);
    // Why: on delete the kernel matches protocol, scope and type when they are set, so a route
    // made by the kernel (proto kernel) or another tool would not be found. Like `ip route del`,
    // send protocol 0, scope NOWHERE and type 0 (match any) unless a scope was asked for.
    b.writeUInt8(del ? RTPROT_UNSPEC : RTPROT_BOOT, 5);
    b.writeUInt8(r.scope ?? (del ? RT_SCOPE_NOWHERE : r.gw ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK), 6);
    b.writeUInt8(type, 7);
    const attrs: Attr[] = [];
    if (r.dst.prefix > 0) attrs.push(attr.bytes(RTA_DST, ipToBytes(r.dst)));
    if (r.gw) attrs.push(attr.bytes(RTA_GATEWAY, ipToBytes(r.gw)));
    if (r.oif) attrs.push(attr.u32(RTA_OIF, r.oif));
    if (r.priority !== undefined) attrs.push(attr.u32(RTA_PRIORITY, r.priority));
    if (table > 255) attrs.push(attr.u32(RTA_TABLE, table));
    const metrics: Attr[] = [];
    if (r.mtu) metrics.push(attr.u32(RTAX_MTU, r.mtu));
    if (r.advmss) metrics.push(attr.u32(RTAX_ADVMSS, r.advmss));
    if (metrics.length) attrs.push(attr.nested(RTA_METRICS, metrics));
    return Buffer.concat([b, encodeAttrs(attrs)]);
  }

  /** Adds a route; throws EEXIST if an equal one exists. Equivalent to: `ip route add DST [via GW] dev OIF` */
  async routeAdd(r: RouteSpec): Promise<void> {
    await this.sock.request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, this.routeMsg(r, RTN_UNICAST), 'RTM_NEWROUTE');
  }

  /** Equivalent to: `ip route replace ...` */
  async routeReplace(r: RouteSpec): Promise<void> {
    await this.sock.request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, this.routeMsg(r, RTN_UNICAST), 'RTM_NEWROUTE');
  }

  /** Equivalent to: `ip route del ...` */
  async routeDel(r: RouteSpec): Promise<void> {
    await this.sock.request(RTM_DELROUTE, 0, this.routeMsg(r, RTN_UNSPEC, true), 'RTM_DELROUTE');
  }

  /**
   * The link the kernel would send a packet to `ip` through (a FIB lookup, policy rules
   * included): its ifindex, or undefined when no route leads there.
   * Equivalent to: `ip route get IP`
   */
  async routeGetOif(ip: IP): Promise<number | undefined> {
    const b = Buffer.alloc(12);
    b.writeUInt8(afOf(ip.family), 0);
    b.writeUInt8(ip.family === 4 ? 32 : 128, 1);
    try {
      const [m] = await this.sock.request(RTM_GETROUTE, 0, Buffer.concat([b, encodeAttrs([attr.bytes(RTA_DST, ipToBytes(ip))])]), 'RTM_GETROUTE');
      return m ? attrU32(parseAttrs(m.payload, 12).get(RTA_OIF)) : undefined;
    } catch (err) {
      if (NO_ROUTE.has((err as { code?: string }).code ?? '')) return undefined;
      throw err;
    }
  }

  /** Lists routes of one family in every table. Equivalent to: `ip [-6] route show table all` */
  async routeList(family: Family): Promise<RouteEntry[]> {
    const req = Buffer.alloc(12);
    req.writeUInt8(afOf(family), 0);
    const out: RouteEntry[] = [];
    for (const m of await this.sock.dump(RTM_GETROUTE, req, 'RTM_GETROUTE dump')) {
      const p = m.payload;
      const attrs = parseAttrs(p, 12);
      const dst = attrs.get(RTA_DST);
      const gw = attrs.get(RTA_GATEWAY);
      const e: RouteEntry = {
        dst: dst ? { ...ipFromBytes(dst), prefix: p[1]! } : { family, value: 0n, prefix: 0 },
        table: attrU32(attrs.get(RTA_TABLE)) ?? p[4]!,
        protocol: p[5]!, scope: p[6]!, type: p[7]!,
      };
      if (gw) e.gw = ipFromBytes(gw);
      const oif = attrU32(attrs.get(RTA_OIF));
      if (oif !== undefined) e.oif = oif;
      const prio = attrU32(attrs.get(RTA_PRIORITY));
      if (prio !== undefined) e.priority = prio;
      const metrics = attrs.get(RTA_METRICS);
      if (metrics) {
        const m = parseAttrs(metrics);
        const mtu = attrU32(m.get(RTAX_MTU));
        const advmss = attrU32(m.get(RTAX_ADVMSS));
        if (mtu) e.mtu = mtu;
        if (advmss) e.advmss = advmss;
      }
      out.push(e);
    }
    return out;
  }

  // ---- used by the bandwidth plugin (ifb devices, veth peers, tc over the same socket) ----

  /**
   * The socket this handle speaks through, for the other rtnetlink families that travel on it
   * (pkg/netlink/tc.ts: `TcHandle.of(rt)`), so that tc requests use the call's socket too.
   */
  get socket(): NetlinkSocket {
    return this.sock;
  }

  /**
   * Returns IFLA_LINK of link `index`: for a veth, its peer's ifindex (in the peer's namespace);
   * undefined when the link has none or is gone. Equivalent to: `ip link show dev IDX` (the `@ifN`)
   */
  async linkPeerIndex(index: number): Promise<number | undefined> {
    try {
      const [m] = await this.sock.request(RTM_GETLINK, 0, ifinfomsg(AF_UNSPEC, index), `RTM_GETLINK #${index}`);
      const peer = m ? attrU32(parseAttrs(m.payload, 16).get(IFLA_LINK)) : undefined;
      // A link without a lower device reports itself (lo, dummy) or 0.
      return peer && peer !== index ? peer : undefined;
    } catch (err) {
      if ((err as { code?: string }).code === 'ENODEV') return undefined;
      throw err;
    }
  }

  /**
   * Creates an ifb device (the target of a mirred redirect, for shaping what a link receives);
   * throws EEXIST when the name is taken. The request is the reference bandwidth plugin's
   * (docs/cni-notes.md §12.4). Equivalent to: `ip link add NAME mtu MTU txqueuelen 0 up type ifb`
   */
  async linkAddIfb(name: string, opts: { mtu?: number; txqlen?: number; up?: boolean } = {}): Promise<void> {
    const attrs: Attr[] = [attr.str(IFLA_IFNAME, name)];
    if (opts.mtu) attrs.push(attr.u32(IFLA_MTU, opts.mtu));
    if (opts.txqlen !== undefined) attrs.push(attr.u32(IFLA_TXQLEN, opts.txqlen));
    // As `ip` and the reference send it (the bytes equal the capture): no NLA_F_NESTED on
    // IFLA_LINKINFO, the kind without its NUL.
    attrs.push(attr.bytes(IFLA_LINKINFO, encodeAttrs([attr.bytes(IFLA_INFO_KIND, Buffer.from('ifb'))])));
    const up = opts.up ? IFF_UP : 0;
    await this.sock.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, Buffer.concat([ifinfomsg(AF_UNSPEC, 0, up, up), encodeAttrs(attrs)]), `RTM_NEWLINK ifb ${name}`);
  }

  // ---- link attributes the tuning plugin sets and reads back ----

  /** Sets the link's MTU; the kernel refuses one outside the device's bounds (EINVAL). Equivalent to: `ip link set dev IDX mtu MTU` */
  async linkSetMtu(index: number, mtu: number): Promise<void> {
    await this.sock.request(RTM_NEWLINK, 0, Buffer.concat([ifinfomsg(AF_UNSPEC, index), encodeAttrs([attr.u32(IFLA_MTU, mtu)])]), `RTM_NEWLINK #${index} mtu`);
  }

  /** Turns all-multicast mode on or off. Equivalent to: `ip link set dev IDX allmulticast on|off` */
  async linkSetAllmulti(index: number, on: boolean): Promise<void> {
    await this.setFlags(index, on ? IFF_ALLMULTI : 0, IFF_ALLMULTI, `RTM_NEWLINK #${index} allmulticast`);
  }

  /** Sets the length of the link's transmit queue. Equivalent to: `ip link set dev IDX txqueuelen N` */
  async linkSetTxQLen(index: number, txQLen: number): Promise<void> {
    await this.sock.request(RTM_NEWLINK, 0, Buffer.concat([ifinfomsg(AF_UNSPEC, index), encodeAttrs([attr.u32(IFLA_TXQLEN, txQLen)])]), `RTM_NEWLINK #${index} txqueuelen`);
  }

  /**
   * Returns the link called `name` with the attributes Link leaves out (transmit queue length,
   * the device's MTU bounds), or undefined. One RTM_GETLINK, like linkGet.
   * Equivalent to: `ip -d link show NAME`
   */
  async linkGetDetails(name: string): Promise<LinkDetails | undefined> {
    try {
      const [m] = await this.sock.request(RTM_GETLINK, 0, Buffer.concat([ifinfomsg(AF_UNSPEC, 0), encodeAttrs([attr.str(IFLA_IFNAME, name)])]), `RTM_GETLINK ${name}`);
      if (!m) return undefined;
      const attrs = parseAttrs(m.payload, 16);
      const d: LinkDetails = { ...decodeLink(m.payload), txQLen: attrU32(attrs.get(IFLA_TXQLEN)) ?? 0 };
      const min = attrU32(attrs.get(IFLA_MIN_MTU));
      const max = attrU32(attrs.get(IFLA_MAX_MTU));
      if (min !== undefined) d.minMtu = min;
      if (max !== undefined) d.maxMtu = max;
      return d;
    } catch (err) {
      if ((err as { code?: string }).code === 'ENODEV') return undefined;
      throw err;
    }
  }
}

const IFLA_LINK = 5, IFLA_TXQLEN = 13;

export const IFF_ALLMULTI = 0x200;
const IFLA_MIN_MTU = 50, IFLA_MAX_MTU = 51;

/** A link with the attributes linkGetDetails() adds. */
export interface LinkDetails extends Link {
  /** IFLA_TXQLEN: the transmit queue length (`qlen` in `ip link`). */
  txQLen: number;
  /** IFLA_MIN_MTU / IFLA_MAX_MTU, when the kernel reports them (4.19+). */
  minMtu?: number;
  maxMtu?: number;
}

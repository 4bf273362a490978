/**
 * Link setup for the bridge plugin: the shared host bridge (created once, never removed), the
 * veth pair of one attachment (created in one request with the container end placed straight
 * into the container namespace), and the VLAN gateway interface.
 */
import { CniCode, CniError, wrap } from '../../pkg/cni/errors.ts';
import type { Kernel } from '../../pkg/kernel.ts';
import { isExists } from '../../pkg/native.ts';
import { IFF_PROMISC, IFF_UP, IF_OPER_UP, OPER_STATES, type Link, type RouteHandle } from '../../pkg/netlink/route.ts';
import type { BridgeConf } from './config.ts';

// Why Math.random and not node:crypto: loading node:crypto costs ~5-10 ms of start-up in every
// call, and nothing here is a secret: a clash on a name or MAC is detected (EEXIST) and retried.
function randomBytes(n: number): number[] {
  return Array.from({ length: n }, () => Math.floor(Math.random() * 256));
}

function hex(bytes: number[]): string {
  return bytes.map((x) => x.toString(16).padStart(2, '0')).join('');
}

/** A random locally administered unicast MAC, as the kernel picks for new veths. */
export function randomMac(): string {
  const b = randomBytes(6);
  b[0] = (b[0]! & 0xfe) | 0x02;
  return b.map((x) => x.toString(16).padStart(2, '0')).join(':');
}

/**
 * Returns the bridge, creating it (up, with a fixed MAC so it never changes as ports come and
 * go) when absent. Safe to call concurrently: a lost creation race just reads the winner's.
 * Throws when a link of that name exists but is not a bridge.
 */
export async function ensureBridge(k: Kernel, host: RouteHandle, conf: BridgeConf): Promise<Link> {
  let br = await host.linkGet(conf.bridge);
  if (!br) {
    try {
      await host.linkAddBridge(conf.bridge, { mtu: conf.mtu, mac: randomMac(), vlanFiltering: conf.vlan > 0, up: true });
    } catch (err) {
      if (conf.vlan > 0 && (err as { code?: string }).code === 'EOPNOTSUPP') throw noVlanSupport(err);
      if (!isExists(err)) throw wrap(err, `failed to create bridge "${conf.bridge}"`);
    }
    br = await host.linkGet(conf.bridge);
    if (!br) throw new CniError(CniCode.Internal, `failed to create bridge "${conf.bridge}"`, 'it vanished right after creation');
    // Why: a bridge must not accept router advertisements from its containers.
    await trySysctl(k, null, `net/ipv6/conf/${conf.bridge}/accept_ra`, '0');
  }
  if (br.kind !== 'bridge') throw new CniError(CniCode.Internal, `"${conf.bridge}" already exists but is not a bridge`, `it is a ${br.kind || 'plain'} device; choose another "bridge" name`);
  if (conf.promiscMode && !(br.flags & IFF_PROMISC)) await host.linkSetPromisc(br.index, true);
  if (!(br.flags & IFF_UP)) await host.linkSetUp(br.index);
  return (await host.linkGetByIndex(br.index)) ?? br;
}

/** Writes a sysctl (netns null: the host) whose absence is harmless (IPv6 disabled on the host, say). */
export async function trySysctl(k: Kernel, netns: string | null, key: string, value: string): Promise<void> {
  try {
    await k.sysctlWrite(netns, key, value);
  } catch { /* the knob does not exist here (no IPv6): nothing to set */ }
}

export interface VethPair { hostName: string; hostMac: string; ctrMac: string }

/**
 * Creates the attachment's veth pair: `ifName` inside the container namespace (fd
 * `ctrNetnsFd`) and `veth<8 hex>` on the host, enslaved to the bridge and up. A clash on the
 * random host name is retried with a new name (at most 10 tries).
 * Equivalent to: `ip link add vethXXXX master BR up type veth peer name IFNAME netns NS`
 */
export async function createVeth(host: RouteHandle, ctr: RouteHandle, br: Link, ctrNetnsFd: number, ifName: string, conf: BridgeConf): Promise<VethPair> {
  if (await ctr.linkGet(ifName)) throw new CniError(CniCode.Internal, `container veth name provided (${ifName}) already exists`, 'choose another CNI_IFNAME or DEL the earlier attachment');
  const ctrMac = conf.mac ?? randomMac();
  const hostMac = randomMac();
  for (let attempt = 0; ; attempt++) {
    const hostName = `veth${hex(randomBytes(4))}`;
    try {
      await host.linkAddVeth({
        name: hostName, peerName: ifName, peerNetnsFd: ctrNetnsFd, mtu: conf.mtu ?? (br.mtu || undefined),
        mac: hostMac, peerMac: ctrMac, master: br.index, up: true,
      });
      return { hostName, hostMac, ctrMac };
    } catch (err) {
      if (isExists(err) && attempt < 9 && !(await ctr.linkGet(ifName))) continue;
      throw wrap(err, `failed to create veth pair for "${ifName}"`);
    }
  }
}

function noVlanSupport(cause: unknown): CniError {
  return new CniError(CniCode.Internal, 'this kernel does not support bridge VLAN filtering', 'vlan needs CONFIG_BRIDGE_VLAN_FILTERING; remove "vlan" from the config or use a kernel that has it', { cause });
}

/** Sets per-port options on the host end: hairpin, VLAN membership. */
export async function configurePort(host: RouteHandle, index: number, conf: BridgeConf): Promise<void> {
  if (conf.hairpinMode) await host.linkSetHairpin(index, true);
  if (conf.vlan > 0) {
    try {
      await host.bridgeVlanAdd(index, conf.vlan, { pvid: true, untagged: true });
    } catch (err) {
      throw (err as { code?: string }).code === 'EOPNOTSUPP' ? noVlanSupport(err) : wrap(err, `failed to put the port in VLAN ${conf.vlan}`);
    }
    if (!conf.preserveDefaultVlan) {
      try { await host.bridgeVlanDel(index, 1); } catch { /* VLAN 1 was not on the port */ }
    }
  }
}

/**
 * Returns the interface that carries the gateway address: the bridge, or with a VLAN a veth
 * `<bridge>.<vlan>` whose peer is a bridge port untagged in that VLAN (as the reference does).
 */
export async function ensureGatewayLink(host: RouteHandle, br: Link, conf: BridgeConf): Promise<Link> {
  if (conf.vlan === 0) return br;
  const name = `${conf.bridge}.${conf.vlan}`;
  let gw = await host.linkGet(name);
  if (!gw) {
    const peer = `veth${hex(randomBytes(4))}`;
    try {
      await host.linkAddVeth({ name, peerName: peer, mac: randomMac(), peerMac: randomMac(), up: true, peerUp: true });
      const p = await host.linkGet(peer);
      if (!p) throw new Error(`peer ${peer} vanished`);
      await host.linkSetMaster(p.index, br.index);
      await configurePort(host, p.index, { ...conf, hairpinMode: false });
    } catch (err) {
      if (!isExists(err)) throw wrap(err, `failed to create VLAN gateway interface "${name}"`);
    }
    gw = await host.linkGet(name);
    if (!gw) throw new CniError(CniCode.Internal, `failed to create VLAN gateway interface "${name}"`);
  }
  return gw;
}

/**
 * Waits until the host end is operationally up, as the reference does (within ~2.5 s). The
 * kernel reports the carrier through linkwatch a moment after both ends are up, so the first
 * look usually misses it; polling in short steps finds it after a millisecond or two where the
 * reference's fixed 50 ms first sleep would spend 50.
 */
export async function waitOperUp(host: RouteHandle, name: string): Promise<Link> {
  let last: Link | undefined;
  for (const ms of [0, 1, 1, 2, 4, 8, 16, 32, 64, 128, 250, 500, 500, 1000]) {
    if (ms) await new Promise((r) => setTimeout(r, ms));
    last = await host.linkGet(name);
    if (last && last.operState === IF_OPER_UP) return last;
  }
  throw new CniError(CniCode.Internal, `bridge port in error state: ${OPER_STATES[last?.operState ?? 0] ?? last?.operState}`, `host veth ${name} did not come up`);
}

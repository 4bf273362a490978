/**
 * Layer 3 for the bridge plugin: turning IPAM's answer into the attachment's result, putting
 * addresses and routes on the container interface, and the gateway address on the bridge.
 */
import { CniCode, CniError, wrap } from '../../pkg/cni/errors.ts';
import type { IPConfig, Result, Route } from '../../pkg/cni/result.ts';
import { type Cidr, type Family, addToIP, cidrOf, formatIP, ipEquals, networkOf, overlaps, parseCidr, parseIP, tryParseIP } from '../../pkg/ip/cidr.ts';
import type { Kernel } from '../../pkg/kernel.ts';
import { isExists } from '../../pkg/native.ts';
import type { Link, RouteHandle } from '../../pkg/netlink/route.ts';
import type { BridgeConf } from './config.ts';
import { trySysctl } from './link.ts';

/** One IP of the attachment with its gateway resolved. */
export interface AttachedIP { cidr: Cidr; gateway: { family: Family; value: bigint } | undefined }

/**
 * Completes IPAM's IPs as the reference does: `interface` points at the container entry (index
 * 2), a missing gateway becomes network+1 when the bridge is the gateway, and
 * isDefaultGateway adds a default route via it per family unless one with a gateway exists.
 */
export function completeIpam(ipam: Result, conf: BridgeConf): { ips: IPConfig[]; routes: Route[]; attached: AttachedIP[] } {
  if (!ipam.ips?.length) throw new CniError(CniCode.Internal, 'IPAM plugin returned missing IP config', `the "${conf.ipamType}" plugin gave no address`);
  const routes = [...(ipam.routes ?? [])];
  const attached: AttachedIP[] = [];
  const ips = ipam.ips.map((ip) => {
    const cidr = parseCidr(ip.address);
    let gw = ip.gateway !== undefined ? tryParseIP(ip.gateway) : undefined;
    if (ip.gateway !== undefined && !gw) throw new CniError(CniCode.Internal, `IPAM returned an invalid gateway "${ip.gateway}"`);
    if (!gw && conf.isGateway) gw = addToIP(networkOf(cidr), 1n);
    attached.push({ cidr, gateway: gw });
    const out: IPConfig = { address: ip.address, interface: 2 };
    if (gw) out.gateway = formatIP(gw);
    return out;
  });
  if (conf.isDefaultGateway) {
    for (const fam of [4, 6] as const) {
      const gw = attached.find((a) => a.cidr.family === fam && a.gateway)?.gateway;
      if (!gw) continue;
      const hasDefault = routes.some((r) => r.gw && cidrOf(r.dst).family === fam && cidrOf(r.dst).prefix === 0);
      if (!hasDefault) routes.push({ dst: fam === 4 ? '0.0.0.0/0' : '::/0', gw: formatIP(gw) });
    }
  }
  return { ips, routes, attached };
}

/**
 * Configures the container interface: sysctls, addresses (IPv6 without DAD), link up, routes
 * (a route without `gw` goes via its family's gateway, as the reference does).
 */
export async function configureContainer(k: Kernel, ctr: RouteHandle, netnsPath: string, ifName: string, attached: AttachedIP[], routes: Route[]): Promise<number> {
  const link = await ctr.linkGet(ifName);
  if (!link) throw new CniError(CniCode.Internal, `failed to find "${ifName}" in the container after creating it`);
  if (attached.some((a) => a.cidr.family === 4)) await trySysctl(k, netnsPath, `net/ipv4/conf/${ifName}/arp_notify`, '1');
  if (attached.some((a) => a.cidr.family === 6)) {
    // Why: a runtime or the host default may have IPv6 off in new namespaces; the reference
    // turns it on for lo and the interface before the first IPv6 address.
    await trySysctl(k, netnsPath, 'net/ipv6/conf/lo/disable_ipv6', '0');
    await trySysctl(k, netnsPath, `net/ipv6/conf/${ifName}/disable_ipv6`, '0');
    await trySysctl(k, netnsPath, `net/ipv6/conf/${ifName}/accept_dad`, '0');
    await trySysctl(k, netnsPath, `net/ipv6/conf/${ifName}/keep_addr_on_down`, '1');
  }
  for (const a of attached) {
    try {
      await ctr.addrAdd(link.index, a.cidr, { nodad: a.cidr.family === 6 });
    } catch (err) {
      throw wrap(err, `failed to add IP addr ${formatIP(a.cidr)}/${a.cidr.prefix} to "${ifName}"`);
    }
  }
  await ctr.linkSetUp(link.index);
  for (const r of routes) {
    const dst = networkOf(cidrOf(r.dst));
    const gw = r.gw ? parseIP(r.gw) : attached.find((a) => a.cidr.family === dst.family && a.gateway)?.gateway;
    try {
      await ctr.routeAdd({ dst, gw, oif: link.index, priority: r.priority, table: r.table, scope: r.scope, mtu: r.mtu, advmss: r.advmss });
    } catch (err) {
      if (isExists(err)) continue; // the same route listed twice: it is there, which is what was asked
      throw wrap(err, `failed to add route ${r.dst}${gw ? ` via ${formatIP(gw)}` : ''} in the container`);
    }
  }
  return link.index;
}

/**
 * Puts each gateway (with its subnet's prefix) on the gateway link, as the reference's
 * ensureAddr: IPv4 allows one address (another one is an error unless forceAddress, which
 * replaces it); IPv6 allows several that do not overlap. Returns what was added, for rollback.
 */
export async function ensureGatewayAddrs(k: Kernel, host: RouteHandle, gwLink: Link, attached: AttachedIP[], conf: BridgeConf): Promise<Cidr[]> {
  const added: Cidr[] = [];
  const seen = new Set<string>();
  for (const a of attached) {
    if (!a.gateway) continue;
    const want: Cidr = { ...a.gateway, prefix: a.cidr.prefix };
    const key = `${formatIP(want)}/${want.prefix}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const existing = (await host.addrList(gwLink.index)).filter((x) => x.family === want.family);
    if (existing.some((x) => ipEquals(x.cidr, want) && x.cidr.prefix === want.prefix)) continue;
    for (const x of existing) {
      const conflict = want.family === 4 || (overlaps(x.cidr, want) && !isLinkLocal6(x.cidr));
      if (!conflict) continue;
      if (!conf.forceAddress) {
        throw new CniError(CniCode.Internal, `"${gwLink.name}" already has an IP address different from ${key}`, `it has ${formatIP(x.cidr)}/${x.cidr.prefix}; set forceAddress to replace it, or use another bridge`);
      }
      await host.addrDel(gwLink.index, x.cidr);
    }
    try {
      await host.addrAdd(gwLink.index, want, { nodad: want.family === 6 });
      added.push(want);
    } catch (err) {
      if (!isExists(err)) throw wrap(err, `could not add IP address to "${gwLink.name}"`);
    }
  }
  if (attached.some((a) => a.gateway?.family === 4)) await trySysctl(k, null, 'net/ipv4/ip_forward', '1');
  if (attached.some((a) => a.gateway?.family === 6)) await trySysctl(k, null, 'net/ipv6/conf/all/forwarding', '1');
  return added;
}

function isLinkLocal6(c: Cidr): boolean {
  return c.family === 6 && (c.value >> 118n) === 0x3fan;
}

/**
 * The bridge plugin: connects a container to a host bridge through a veth pair, with an address
 * from the IPAM plugin, routes inside the container and (isGateway) the gateway on the bridge.
 * Reference-compatible (docs/cni-notes.md §3), with one deliberate difference: a failed ADD removes the
 * veth it made and releases the lease before it returns (the reference leaks the veth there).
 * The bridge itself is shared by every attachment and never removed.
 *
 * The IPAM plugin is delegated to as the spec says (CNI_PATH), in-process when it is one of ours
 * passed to `makeBridgePlugin` (main.ts passes host-local) and CNI_PATH resolves it to our own
 * executable. Netlink handles and sysctls come from the call (`a.kernel`).
 */
import { aboutOf } from '../../executables.ts';
import { CniCode, CniError, errorText, wrap } from '../../pkg/cni/errors.ts';
import { type InProcessPlugins, delegate } from '../../pkg/cni/invoke.ts';
import { type Interface, type Result, containerIPs, parseResult } from '../../pkg/cni/result.ts';
import type { Attachment, CmdArgs, Plugin } from '../../pkg/cni/skel.ts';
import { type Cidr, type IP, cidrOf, formatIP, ipEquals, networkOf, parseCidr, parseIP } from '../../pkg/ip/cidr.ts';
import { isNotFound } from '../../pkg/native.ts';
import { Netns, netnsExists } from '../../pkg/netlink/netns.ts';
import { IFF_PROMISC, type RouteHandle } from '../../pkg/netlink/route.ts';
import { Rollback } from '../../pkg/rollback.ts';
import { type BridgeConf, parseBridgeConf } from './config.ts';
import { completeIpam, configureContainer, ensureGatewayAddrs } from './addressing.ts';
import { configurePort, createVeth, ensureBridge, ensureGatewayLink, trySysctl, waitOperUp } from './link.ts';

/** The nftables side of ipMasq, loaded only by the calls that use it (~4 ms of start-up else). */
const loadIpMasq = () => import('./ipmasq.ts');

/** The addresses of the container interface in a result (for ipMasq teardown and CHECK). */
function containerCidrs(r: Result | undefined, ifName: string): Cidr[] {
  return containerIPs(r, ifName).map((ip) => parseCidr(ip.address));
}

/** What the bridge plugin is built from. */
export interface BridgeDeps {
  /** IPAM plugins that may run in-process (when CNI_PATH resolves their type to our own executable). */
  ipam?: InProcessPlugins;
}

/** Creates the bridge Plugin; main.ts passes `{ ipam: { 'host-local': hostLocalPlugin } }`. */
export function makeBridgePlugin(deps: BridgeDeps = {}): Plugin {
  const ipam = deps.ipam ?? {};
  const ipamCall = (command: 'ADD' | 'DEL' | 'CHECK' | 'STATUS' | 'GC', conf: BridgeConf, a: CmdArgs) => delegate(conf.ipamType!, command, a, ipam);

  async function cmdAdd(a: CmdArgs): Promise<Result> {
    const conf = parseBridgeConf(a);
    const netns = Netns.open(a.netns, a.env);
    const undo = new Rollback(a.log);
    try {
      const host = await a.kernel.route();
      const ctr = await a.kernel.route(netns.path);
      const br = await ensureBridge(a.kernel, host, conf);
      const veth = await createVeth(host, ctr, br, netns.fd, a.ifName, conf);
      undo.push(`delete veth ${veth.hostName}`, async () => {
        const l = await host.linkGet(veth.hostName);
        if (l) await host.linkDel(l.index);
      });
      const hostLink = await host.linkGet(veth.hostName);
      if (!hostLink) throw new CniError(CniCode.Internal, `host veth ${veth.hostName} vanished after creation`);
      // Ours (the reference sets accept_ra=0): no IPv6 on the host end at all. A bridge port
      // switches frames and needs no address; with IPv6 on, each port gets a link-local address
      // and an fe80::/64 route once its peer is up, and the kernel keeps those routes of every
      // port as siblings of one node, so each ADD cost more the more containers a host has.
      await trySysctl(a.kernel, null, `net/ipv6/conf/${veth.hostName}/disable_ipv6`, '1');
      await configurePort(host, hostLink.index, conf);
      const interfaces: Interface[] = [
        { name: br.name, mac: br.mac },
        { name: veth.hostName, mac: veth.hostMac },
        { name: a.ifName, mac: veth.ctrMac, sandbox: a.netns },
      ];
      const result: Result = { cniVersion: conf.cniVersion, interfaces };
      if (conf.mtu) for (const i of interfaces) i.mtu = conf.mtu;
      if (conf.ipamType) {
        const lease = await ipamCall('ADD', conf, a);
        undo.push(`release the IPAM lease (${conf.ipamType} DEL)`, () => ipamCall('DEL', conf, a));
        if (!lease) throw new CniError(CniCode.Internal, 'IPAM plugin returned missing IP config');
        const { ips, routes, attached } = completeIpam(lease, conf);
        result.ips = ips;
        result.routes = routes;
        if (lease.dns) result.dns = lease.dns;
        await configureContainer(a.kernel, ctr, netns.path, a.ifName, attached, routes);
        if (conf.isGateway) await ensureGatewayAddrs(a.kernel, host, await ensureGatewayLink(host, br, conf), attached, conf);
        if (conf.ipMasq) {
          const masq = { network: conf.name, containerId: a.containerId, ifName: a.ifName, addrs: attached.map((x) => x.cidr), link: conf.bridge };
          const [{ setupIpMasq, teardownIpMasq }, nft] = await Promise.all([loadIpMasq(), a.kernel.nftables()]);
          try {
            await setupIpMasq(nft, masq);
          } catch (err) {
            throw wrap(err, 'failed to set up IP masquerade');
          }
          undo.push('remove IP masquerade', () => teardownIpMasq(nft, masq));
        }
      } else {
        const l = await ctr.linkGet(a.ifName);
        if (l) await ctr.linkSetUp(l.index);
      }
      await waitOperUp(host, veth.hostName);
      if (conf.dns && (conf.dns.nameservers?.length || conf.dns.domain || conf.dns.search?.length || conf.dns.options?.length)) {
        result.dns = conf.dns;
      }
      return result;
    } catch (err) {
      await undo.run();
      throw err;
    } finally {
      netns.close();
    }
  }

  async function cmdDel(a: CmdArgs): Promise<void> {
    const conf = parseBridgeConf(a, false);
    // Per the spec, DEL succeeds when the namespace or the interface is already gone; IPAM is
    // released whatever happened to the link.
    if (a.netns && netnsExists(a.netns)) {
      try {
        const ctr = await a.kernel.route(a.netns);
        const link = await ctr.linkGet(a.ifName);
        if (link) await ctr.linkDel(link.index);
      } catch (err) {
        if (!isNotFound(err)) throw wrap(err, `failed to delete "${a.ifName}" in ${a.netns}`);
      }
    }
    if (conf.ipamType) await ipamCall('DEL', conf, a);
    if (conf.ipMasq) {
      // Addresses from the cached result when there is one (point lookups), else a scan by owner.
      let addrs: Cidr[] = [];
      try {
        if (a.conf.prevResult) addrs = containerCidrs(parseResult(a.conf.prevResult, a.conf.cniVersion, 'prevResult'), a.ifName);
      } catch {
        addrs = []; // DEL must not fail on an unreadable cached result: the scan finds our elements anyway
      }
      const [{ teardownIpMasq }, nft] = await Promise.all([loadIpMasq(), a.kernel.nftables()]);
      try {
        await teardownIpMasq(nft, { network: conf.name, containerId: a.containerId, ifName: a.ifName, addrs, link: conf.bridge });
      } catch (err) {
        throw wrap(err, 'failed to remove IP masquerade');
      }
    }
  }

  async function cmdCheck(a: CmdArgs): Promise<void> {
    const conf = parseBridgeConf(a);
    if (conf.ipamType) await ipamCall('CHECK', conf, a);
    const prev = requirePrevResult(a);
    const netns = Netns.open(a.netns, a.env);
    try {
      await checkAttachment(a, conf, prev, await a.kernel.route(), await a.kernel.route(netns.path));
    } finally {
      netns.close();
    }
  }

  async function cmdStatus(a: CmdArgs): Promise<void> {
    const conf = parseBridgeConf(a, false);
    if (conf.ipamType) await ipamCall('STATUS', conf, a);
  }

  async function cmdGc(a: CmdArgs, valid: Attachment[]): Promise<void> {
    const conf = parseBridgeConf(a, false);
    // docs/cni-notes.md §1.5: GC continues past errors and reports them, so a failing IPAM GC
    // does not keep the masquerade elements of dead attachments.
    const errors: CniError[] = [];
    if (conf.ipamType) {
      try { await ipamCall('GC', conf, a); } catch (err) { errors.push(wrap(err, `failed to garbage-collect the IPAM leases (${conf.ipamType} GC)`)); }
    }
    // Any network may have used ipMasq before its config changed, so GC always looks.
    try {
      const [{ gcIpMasq }, nft] = await Promise.all([loadIpMasq(), a.kernel.nftables()]);
      await gcIpMasq(nft, conf.name, valid);
    } catch (err) {
      errors.push(wrap(err, 'failed to remove stale IP masquerade elements'));
    }
    if (errors.length === 1) throw errors[0];
    if (errors.length) throw new CniError(errors[0]!.code, 'bridge GC failed', errors.map((e) => errorText(e)).join('; '));
  }

  return { about: aboutOf('bridge'), add: cmdAdd, del: cmdDel, check: cmdCheck, status: cmdStatus, gc: cmdGc };
}

function requirePrevResult(a: CmdArgs): Result {
  if (a.conf.prevResult === undefined) throw new CniError(CniCode.InvalidConfig, 'Required prevResult missing', 'CHECK needs the result of the ADD as prevResult');
  return parseResult(a.conf.prevResult, a.conf.cniVersion, 'prevResult');
}

function checkFailed(msg: string, details?: string): CniError {
  return new CniError(CniCode.Internal, msg, details);
}

/** CHECK proper: the bridge, both veth ends, the container's addresses and routes, and ipMasq are as the result says. */
async function checkAttachment(a: CmdArgs, conf: BridgeConf, prev: Result, host: RouteHandle, ctr: RouteHandle): Promise<void> {
  const ifs = prev.interfaces ?? [];
  const brEntry = ifs.find((i) => i.name === conf.bridge && !i.sandbox);
  const br = await host.linkGet(conf.bridge);
  if (!br || br.kind !== 'bridge') throw checkFailed(`bridge "${conf.bridge}" is missing or not a bridge`);
  if (brEntry?.mac && brEntry.mac !== br.mac) throw checkFailed(`bridge "${conf.bridge}" has MAC ${br.mac}, the result says ${brEntry.mac}`);
  if (conf.promiscMode !== Boolean(br.flags & IFF_PROMISC)) throw checkFailed(`bridge "${conf.bridge}" promiscuous mode is not ${conf.promiscMode ? 'on' : 'off'}`);
  const ctrIdx = ifs.findIndex((i) => i.name === a.ifName && i.sandbox === a.netns);
  if (ctrIdx < 0) throw checkFailed(`the result has no interface "${a.ifName}" in ${a.netns}`);
  const link = await ctr.linkGet(a.ifName);
  if (!link) throw checkFailed(`interface "${a.ifName}" is missing in ${a.netns}`);
  if (link.kind !== 'veth') throw checkFailed(`interface "${a.ifName}" is a ${link.kind || 'plain'} device, not a veth`);
  const want = ifs[ctrIdx]!;
  if (want.mac && want.mac !== link.mac) throw checkFailed(`interface "${a.ifName}" has MAC ${link.mac}, the result says ${want.mac}`);
  const hostEntry = ifs.find((i, n) => n !== ctrIdx && !i.sandbox && i.name !== conf.bridge);
  const hostLink = hostEntry ? await host.linkGet(hostEntry.name) : undefined;
  if (!hostEntry || !hostLink || hostLink.master !== br.index) throw checkFailed(`the host end of "${a.ifName}" (${hostEntry?.name ?? 'unknown'}) is missing or not on "${conf.bridge}"`);
  const [addrs, routes4, routes6] = await Promise.all([ctr.addrList(link.index), ctr.routeList(4), ctr.routeList(6)]);
  for (const ip of containerIPs(prev, a.ifName)) {
    const c = parseCidr(ip.address);
    if (!addrs.some((x) => ipEquals(x.cidr, c) && x.cidr.prefix === c.prefix)) throw checkFailed(`address ${ip.address} is missing on "${a.ifName}"`);
    const net = networkOf(c);
    const rs = c.family === 4 ? routes4 : routes6;
    if (!rs.some((r) => r.oif === link.index && r.dst.prefix === net.prefix && r.dst.value === net.value)) throw checkFailed(`route to ${formatIP(net)}/${net.prefix} is missing on "${a.ifName}"`);
  }
  for (const r of prev.routes ?? []) {
    const dst = networkOf(cidrOf(r.dst));
    const rs = dst.family === 4 ? routes4 : routes6;
    const gw: IP | undefined = r.gw ? parseIP(r.gw) : undefined;
    const found = rs.some((x) => x.dst.prefix === dst.prefix && x.dst.value === dst.value && (!gw || (x.gw !== undefined && ipEquals(x.gw, gw))));
    if (!found) throw checkFailed(`route ${r.dst}${r.gw ? ` via ${r.gw}` : ''} is missing in ${a.netns}`);
  }
  if (conf.ipMasq) {
    const [{ checkIpMasq }, nft] = await Promise.all([loadIpMasq(), a.kernel.nftables()]);
    const problems = await checkIpMasq(nft, { network: conf.name, containerId: a.containerId, ifName: a.ifName, addrs: containerCidrs(prev, a.ifName), link: conf.bridge });
    if (problems.length) throw checkFailed('IP masquerade is not in place', problems.join('; '));
  }
}

export type { BridgeConf };

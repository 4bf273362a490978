/**
 * The loopback plugin (type `loopback`): sets `lo` up in the container's namespace, which
 * containerd's CRI asks of every pod through its `cni-loopback` network (docs/cni-notes.md §9).
 * The reference's keys and behaviour, with two deliberate differences (§9.5):
 *
 * ADD   sets lo up and lists its addresses; an address that is not a loopback one fails the ADD
 *       with the reference's message, after setting lo down again if this call brought it up (the
 *       reference leaves it up). With a prevResult, prints it (converted to cniVersion); without,
 *       a result naming lo with its first IPv4 and first IPv6 address, in the shape of the
 *       config's version (the reference prints the 1.0.0 shape at every version).
 * DEL   sets lo down (the kernel then drops ::1, as with the reference); no CNI_NETNS, a vanished
 *       namespace or a path that is no namespace of a container is success. Reads no config.
 * CHECK lo exists and is up (addresses are not checked, as in the reference). Reads no config.
 * GC and STATUS have nothing to do (the reference has no handler either).
 *
 * CNI_IFNAME is ignored, as in the reference: the plugin always works on lo.
 */
import { aboutOf } from '../../executables.ts';
import { CniCode, CniError, describe, wrap } from '../../pkg/cni/errors.ts';
import type { Result } from '../../pkg/cni/result.ts';
import type { CmdArgs, Plugin } from '../../pkg/cni/skel.ts';
import { type Cidr, formatCidr, formatIP } from '../../pkg/ip/cidr.ts';
import { isNotFound } from '../../pkg/native.ts';
import { Netns } from '../../pkg/netlink/netns.ts';
import { IFF_UP, type Link, type RouteHandle } from '../../pkg/netlink/route.ts';
import { parseLoopbackConf } from './config.ts';

const LO = 'lo';

/** Go's net.IP.IsLoopback: 127.0.0.0/8 (also as an IPv4-mapped IPv6 address) and ::1. */
export function isLoopbackAddress(c: Cidr): boolean {
  if (c.family === 4) return c.value >> 24n === 127n;
  if (c.value === 1n) return true;
  return c.value >> 32n === 0xffffn && (c.value >> 24n & 0xffn) === 127n;
}

async function loLink(rt: RouteHandle, netns: string): Promise<Link> {
  const lo = await rt.linkGet(LO);
  if (!lo) throw new CniError(CniCode.Internal, `no "${LO}" interface in ${netns}`);
  return lo;
}

async function cmdAdd(a: CmdArgs): Promise<Result> {
  const conf = parseLoopbackConf(a.conf);
  Netns.open(a.netns, a.env).close(); // code 3 for a missing namespace, 8 for one that is no container's
  const rt = await a.kernel.route(a.netns);
  const lo = await loLink(rt, a.netns);
  const wasUp = (lo.flags & IFF_UP) !== 0;
  try {
    await rt.linkSetUp(lo.index);
  } catch (err) {
    throw wrap(err, `failed to set ${LO} up in ${a.netns}`);
  }
  const addrs = await rt.addrList(lo.index);
  const v4 = addrs.filter((x) => x.family === 4);
  const v6 = addrs.filter((x) => x.family === 6);
  const bad = [...v4, ...v6].find((x) => !isLoopbackAddress(x.cidr));
  if (bad) {
    if (!wasUp) {
      try {
        await rt.linkSetDown(lo.index);
      } catch (err) {
        a.log.warn(`rollback: failed to set ${LO} down again`, { error: describe(err) });
      }
    }
    throw new CniError(CniCode.Internal, `loopback interface found with non-loopback address "${formatIP(bad.cidr)}"`,
      `${LO} in ${a.netns} holds ${formatCidr(bad.cidr)}; a loopback interface may only hold 127.0.0.0/8 and ::1`);
  }
  if (conf.prevResult) return { ...conf.prevResult, cniVersion: conf.cniVersion };
  const result: Result = { cniVersion: conf.cniVersion, interfaces: [{ name: LO, mac: '00:00:00:00:00:00', sandbox: a.netns }] };
  const ips = [v4[0], v6[0]].flatMap((x) => (x ? [{ address: formatCidr(x.cidr), interface: 0 }] : []));
  if (ips.length) result.ips = ips;
  return result;
}

/** Opens CNI_NETNS for DEL: undefined when there is nothing to undo in it (no path, gone, or no container's). */
function delNetns(a: CmdArgs): string | undefined {
  if (!a.netns) return undefined;
  try {
    Netns.open(a.netns, a.env).close();
    return a.netns;
  } catch (err) {
    // Gone (3): the spec's idempotent DEL. Not a namespace, or the plugin's own (8): ADD refuses
    // such a path, so nothing of ours is there, and lo of the plugin's own namespace must stay up.
    if (err instanceof CniError && (err.code === CniCode.UnknownContainer || err.code === CniCode.InvalidNetns)) {
      if (err.code === CniCode.InvalidNetns) a.log.warn(`loopback DEL: nothing to do in ${a.netns}`, { error: describe(err) });
      return undefined;
    }
    throw err;
  }
}

async function cmdDel(a: CmdArgs): Promise<void> {
  const netns = delNetns(a);
  if (!netns) return;
  try {
    const rt = await a.kernel.route(netns);
    const lo = await rt.linkGet(LO);
    if (lo) await rt.linkSetDown(lo.index);
  } catch (err) {
    if (!isNotFound(err)) throw wrap(err, `failed to set ${LO} down in ${netns}`);
  }
}

async function cmdCheck(a: CmdArgs): Promise<void> {
  Netns.open(a.netns, a.env).close();
  const rt = await a.kernel.route(a.netns);
  const lo = await loLink(rt, a.netns);
  if (!(lo.flags & IFF_UP)) throw new CniError(CniCode.Internal, 'loopback interface is down', `${LO} in ${a.netns} is not up`);
}

/** The loopback plugin's handlers. */
export const loopbackPlugin: Plugin = {
  about: aboutOf('loopback'),
  add: cmdAdd,
  del: cmdDel,
  check: cmdCheck,
};

/**
 * The bandwidth plugin (type `bandwidth`, chained after a main plugin that made a veth, such as
 * bridge): shapes the container's traffic in both directions on the host end of its veth, with
 * tc over netlink only (docs/cni-notes.md §12).
 *
 * ingress (to the container)   a TBF as the root qdisc of the host veth (handle 1:): what the
 *                               host veth sends is what the container receives.
 * egress (from the container)  what the host veth receives is redirected, by a match-all u32
 *                               filter (prio 1, protocol all, flowid 1:1) with a mirred egress
 *                               redirect on its ingress qdisc (ffff:), to an ifb device in the
 *                               host namespace, whose root qdisc is a TBF. (This kernel has no
 *                               matchall, basic or flower classifier: u32 as the reference.)
 *
 * The host veth is the peer of CNI_IFNAME: its ifindex is read in the container namespace, the
 * link is looked up by index on the host, must be a veth pointing back at the container's
 * interface, and must be in prevResult.interfaces without sandbox (the reference's rule).
 *
 * ADD   validate everything (config.ts), find the host veth, then: the host veth's TBF; the ifb
 *       (MTU of the host veth, txqlen 0, up), its TBF, the ingress qdisc and the filter, in that
 *       order, so that nothing is redirected to an ifb that does not shape yet. Any failure
 *       undoes what was made. The result is prevResult plus the ifb as `{name, mac}`.
 * DEL   reads no bandwidth key (it never fails on a config it cannot use): removes the ingress
 *       qdisc of the host veth (with its filter) when every action on it redirects to a bandwidth
 *       ifb, the ifbs it redirected to and the one named for this attachment, and the root TBF
 *       1: of the host veth. A missing namespace, veth, qdisc or ifb is success; so is DEL twice.
 * CHECK the configured TBFs are there with the rate, limit and bucket ADD would set, the ifb
 *       exists, and the host veth's ingress redirects to it.
 *
 * Differences from the reference (1.1.1): DEL removes the qdiscs too (the reference leaves the
 * veth's TBF and a redirect to a deleted ifb until the veth goes); a failed ADD rolls back; the
 * ifb name includes the interface (ifb-name.ts); the TBF arithmetic saturates instead of wrapping
 * (tbf.ts); a runtime's "no burst" is not a 512 MiB bucket (config.ts); no prevResult is an
 * error, not a panic; CHECK also checks the ifb's redirect.
 */
import { aboutOf } from '../../executables.ts';
import { CniCode, CniError, describe, invalidConfig, wrap } from '../../pkg/cni/errors.ts';
import type { Result } from '../../pkg/cni/result.ts';
import type { CmdArgs, Plugin } from '../../pkg/cni/skel.ts';
import { hasCode, isExists, isNotFound } from '../../pkg/native.ts';
import { Netns, netnsExists } from '../../pkg/netlink/netns.ts';
import type { Link, RouteHandle } from '../../pkg/netlink/route.ts';
import { TCA_EGRESS_REDIR, TC_H_INGRESS, TC_H_ROOT, type TcFilter, TcHandle, type TcQdisc, tcHandle } from '../../pkg/netlink/tc.ts';
import { Rollback } from '../../pkg/rollback.ts';
import { type BandwidthConf, type Shaping, parseBandwidthConf } from './config.ts';
import { ifbName } from './ifb-name.ts';
import { type TbfPlan, bucketSeconds, tbfFor } from './tbf.ts';

const TBF_HANDLE = tcHandle(1, 0);
const INGRESS_HANDLE = tcHandle(0xffff, 0);
const FILTER = { parent: INGRESS_HANDLE, prio: 1, classid: tcHandle(1, 1) };
/** The reference's ifb prefix: DEL removes such ifbs when this veth redirects to them. */
const IFB_PREFIX = 'bwp';
/** Ethernet header: a frame is the MTU plus this. */
const ETH_HLEN = 14;

interface HostSide { host: RouteHandle; tc: TcHandle; veth: Link }

/**
 * Finds the host end of the container's veth `a.ifName` (see the module header); throws with the
 * reference's reasons. Nothing is changed.
 */
async function findHostVeth(a: CmdArgs): Promise<HostSide> {
  const ctr = await a.kernel.route(a.netns);
  const link = await ctr.linkGet(a.ifName);
  if (!link) throw new CniError(CniCode.Internal, `container interface ${a.ifName} not found`, `no link "${a.ifName}" in ${a.netns}`);
  const peer = link.kind === 'veth' ? await ctr.linkPeerIndex(link.index) : undefined;
  if (!peer) throw new CniError(CniCode.Internal, `container interface ${a.ifName} has no veth peer`, `"${a.ifName}" is a ${link.kind || 'device'} link, not a veth`);
  const host = await a.kernel.route();
  const veth = await host.linkGetByIndex(peer);
  if (!veth || veth.kind !== 'veth' || (await host.linkPeerIndex(veth.index)) !== link.index) {
    throw new CniError(CniCode.Internal, `veth peer with index ${peer} is not in host ns`, `the peer of "${a.ifName}" is in another namespace than the plugin's`);
  }
  return { host, tc: TcHandle.of(host), veth };
}

/** Finds the host veth and checks that prevResult names it as the reference does. */
async function hostSideOf(a: CmdArgs, prev: Result): Promise<HostSide> {
  if (!prev.interfaces?.length) throw invalidConfig('prevResult has no interfaces (no interfaces provided)');
  Netns.open(a.netns, a.env).close(); // code 3 for a missing namespace, 8 for a bad one
  const side = await findHostVeth(a);
  if (!prev.interfaces.some((i) => !i.sandbox && i.name === side.veth.name)) {
    throw new CniError(CniCode.Internal, 'no veth peer of container interface found in host ns',
      `the host end "${side.veth.name}" of "${a.ifName}" is not among prevResult.interfaces without a sandbox`);
  }
  return side;
}

/** Plans one direction's TBF and says on stderr what the kernel will make of an extreme one. */
function plan(a: CmdArgs, dir: 'ingress' | 'egress', s: Shaping, mtu: number): TbfPlan {
  const p = tbfFor(s.rate, s.burst);
  if (s.runtimeDefaultBurst) a.log.debug(`bandwidth: ${dir}: the runtime's burst means none was given; using ${s.burst} bits`);
  if (p.clamped.length) {
    a.log.warn(`bandwidth: ${dir}: a burst of ${s.burst} bits at ${s.rate} bit/s is more than tbf holds; clamped ${p.clamped.join(' and ')} to the maximum`,
      { bucketSeconds: bucketSeconds(p.buffer), limit: p.limit });
  }
  if (p.maxSize < mtu + ETH_HLEN) a.log.warn(`bandwidth: ${dir}: the bucket (${p.maxSize} bytes) is smaller than a full frame (${mtu + ETH_HLEN}): such packets are dropped unless they can be segmented`);
  return p;
}

function failure(err: unknown, what: string): CniError {
  const e = wrap(err, `failed to ${what}`);
  return isExists(err) ? new CniError(e.code, e.message, `${e.details ?? ''} (already there: an ADD repeated without DEL, or another tool's)`, { cause: err }) : e;
}

async function cmdAdd(a: CmdArgs): Promise<Result> {
  const conf = parseBandwidthConf(a.conf);
  if (!conf.prevResult) throw invalidConfig('must be called as chained plugin: prevResult is missing');
  if (!conf.ingress && !conf.egress) return conf.prevResult;
  const result: Result = { ...conf.prevResult, interfaces: [...(conf.prevResult.interfaces ?? [])] };
  const { host, tc, veth } = await hostSideOf(a, conf.prevResult);
  const ingress = conf.ingress && plan(a, 'ingress', conf.ingress, veth.mtu);
  const egress = conf.egress && plan(a, 'egress', conf.egress, veth.mtu);
  const undo = new Rollback(a.log);
  let step = '';
  try {
    if (ingress) {
      step = `add the TBF qdisc of ${veth.name}`;
      await tc.qdiscAddTbf(veth.index, ingress);
      undo.push(`delete the TBF qdisc of ${veth.name}`, () => tc.qdiscDelRoot(veth.index));
    }
    if (egress) {
      const name = ifbName(conf.name, a.containerId, a.ifName);
      step = `create ifb device ${name}`;
      await host.linkAddIfb(name, { mtu: veth.mtu, txqlen: 0, up: true });
      undo.push(`delete ifb device ${name}`, async () => { const l = await host.linkGet(name); if (l?.kind === 'ifb') await host.linkDel(l.index); });
      const ifb = await host.linkGet(name);
      if (!ifb) throw new Error(`ifb device ${name} vanished after creation`);
      step = `add the TBF qdisc of ${name}`;
      await tc.qdiscAddTbf(ifb.index, egress);
      step = `add the ingress qdisc of ${veth.name}`;
      await tc.qdiscAddIngress(veth.index);
      undo.push(`delete the ingress qdisc of ${veth.name}`, () => tc.qdiscDelIngress(veth.index));
      step = `redirect what ${veth.name} receives to ${name}`;
      await tc.filterAddU32Redirect(veth.index, { ...FILTER, target: ifb.index });
      result.interfaces!.push({ name, mac: ifb.mac });
    }
  } catch (err) {
    await undo.run();
    throw failure(err, step);
  }
  return result;
}

// ---- DEL ----

/** A delete whose object was already gone is success (a concurrent DEL, the veth going away). */
function gone(err: unknown): boolean {
  return isNotFound(err) || hasCode(err, 'EINVAL', 'ENODEV', 'ENOENT');
}

/** The host veth for DEL, or undefined when the namespace, the interface or its peer is gone. */
async function hostSideForDel(a: CmdArgs): Promise<HostSide | undefined> {
  if (!a.netns || !netnsExists(a.netns)) return undefined;
  try {
    return await findHostVeth(a);
  } catch (err) {
    a.log.debug('bandwidth del: no host veth to clean up', { error: describe(err) });
    return undefined;
  }
}

/**
 * The ifbs the veth's ingress filters redirect to, or undefined when some action there is not a
 * bandwidth redirect (then the ingress qdisc is someone else's and stays). A redirect to a device
 * that is gone (index 0 or unknown) still counts as ours.
 */
async function redirectTargets(host: RouteHandle, filters: TcFilter[]): Promise<Link[] | undefined> {
  const out: Link[] = [];
  for (const act of filters.flatMap((f) => f.actions)) {
    if (act.kind !== 'mirred' || act.mirred?.eaction !== TCA_EGRESS_REDIR) return undefined;
    const target = act.mirred.ifindex ? await host.linkGetByIndex(act.mirred.ifindex) : undefined;
    if (!target) continue;
    if (target.kind !== 'ifb' || !target.name.startsWith(IFB_PREFIX)) return undefined;
    if (!out.some((l) => l.index === target.index)) out.push(target);
  }
  return out;
}

async function cmdDel(a: CmdArgs): Promise<void> {
  const host = await a.kernel.route();
  const tc = TcHandle.of(host);
  const errors: CniError[] = [];
  const attempt = async (what: string, fn: () => Promise<unknown>): Promise<void> => {
    try {
      await fn();
    } catch (err) {
      if (!gone(err)) errors.push(wrap(err, `failed to ${what}`));
    }
  };
  const ifbs: Link[] = [];
  const own = await host.linkGet(ifbName(a.conf.name, a.containerId, a.ifName));
  if (own?.kind === 'ifb') ifbs.push(own);

  const side = await hostSideForDel(a);
  let rootTbf: TcQdisc | undefined;
  if (side) {
    const { veth } = side;
    let qdiscs: TcQdisc[] = [];
    await attempt(`list the qdiscs of ${veth.name}`, async () => { qdiscs = await tc.qdiscList(veth.index); });
    rootTbf = qdiscs.find((q) => q.parent === TC_H_ROOT && q.kind === 'tbf' && q.handle === TBF_HANDLE);
    if (qdiscs.some((q) => q.parent === TC_H_INGRESS && q.kind === 'ingress')) {
      let targets: Link[] | undefined;
      await attempt(`list the filters of ${veth.name}`, async () => { targets = await redirectTargets(host, await tc.filterList(veth.index, INGRESS_HANDLE)); });
      if (targets) {
        for (const t of targets) if (!ifbs.some((l) => l.index === t.index)) ifbs.push(t);
        // First, so that nothing is redirected to an ifb while it goes.
        await attempt(`delete the ingress qdisc of ${veth.name}`, () => tc.qdiscDelIngress(veth.index));
      } else {
        a.log.warn(`bandwidth del: left the ingress qdisc of ${veth.name}: it has filters that are not a bandwidth redirect`);
      }
    }
  }
  for (const l of ifbs) await attempt(`delete ifb device ${l.name}`, () => host.linkDel(l.index));
  if (side && rootTbf) await attempt(`delete the TBF qdisc of ${side.veth.name}`, () => side.tc.qdiscDelRoot(side.veth.index));
  if (errors.length) throw new CniError(errors[0]!.code, 'failed to remove the bandwidth shaping', errors.map((e) => describe(e)).join('; '), { cause: errors[0] });
}

// ---- CHECK ----

/** Compares a device's root qdisc with the TBF ADD would make; returns the problems. */
function tbfProblems(where: string, qdiscs: TcQdisc[], want: TbfPlan): string[] {
  const q = qdiscs.find((x) => x.parent === TC_H_ROOT);
  if (!q?.tbf) return [`${where}: no TBF qdisc (root is ${q ? q.kind : 'the default'})`];
  const out: string[] = [];
  if (q.tbf.rate !== want.rate) out.push(`${where}: rate is ${q.tbf.rate} B/s, should be ${want.rate}`);
  if (q.tbf.limit !== want.limit) out.push(`${where}: limit is ${q.tbf.limit} bytes, should be ${want.limit}`);
  if (q.tbf.buffer !== want.buffer) out.push(`${where}: buffer is ${q.tbf.buffer} ticks, should be ${want.buffer}`);
  return out;
}

async function checkEgress(a: CmdArgs, conf: BandwidthConf, s: HostSide, want: TbfPlan): Promise<string[]> {
  const name = ifbName(conf.name, a.containerId, a.ifName);
  const ifb = await s.host.linkGet(name);
  if (ifb?.kind !== 'ifb') return [`ifb device ${name} is ${ifb ? `a ${ifb.kind || 'device'} link` : 'missing'}`];
  const out = tbfProblems(`traffic from the container (ifb ${name})`, await s.tc.qdiscList(ifb.index), want);
  const qdiscs = await s.tc.qdiscList(s.veth.index);
  if (!qdiscs.some((q) => q.parent === TC_H_INGRESS && q.kind === 'ingress')) {
    out.push(`${s.veth.name} has no ingress qdisc to redirect from`);
    return out;
  }
  const redirects = (await s.tc.filterList(s.veth.index, INGRESS_HANDLE)).some((f) => f.actions.some((x) =>
    x.mirred?.eaction === TCA_EGRESS_REDIR && x.mirred.ifindex === ifb.index));
  if (!redirects) out.push(`${s.veth.name} does not redirect what it receives to ${name}`);
  return out;
}

async function cmdCheck(a: CmdArgs): Promise<void> {
  const conf = parseBandwidthConf(a.conf);
  if (!conf.prevResult) throw invalidConfig('must be called as a chained plugin: prevResult is missing');
  if (!conf.ingress && !conf.egress) return;
  const side = await hostSideOf(a, conf.prevResult);
  const problems: string[] = [];
  if (conf.ingress) problems.push(...tbfProblems(`traffic to the container (${side.veth.name})`, await side.tc.qdiscList(side.veth.index), tbfFor(conf.ingress.rate, conf.ingress.burst)));
  if (conf.egress) problems.push(...await checkEgress(a, conf, side, tbfFor(conf.egress.rate, conf.egress.burst)));
  if (problems.length) throw new CniError(CniCode.Internal, 'bandwidth: the shaping is not in place', problems.join('; '));
}

/** The bandwidth plugin's handlers. */
export const bandwidthPlugin: Plugin = {
  about: aboutOf('bandwidth'), add: cmdAdd, del: cmdDel, check: cmdCheck,
};

/**
 * host-local: an IPAM plugin that hands out addresses from configured range sets and keeps its
 * leases as files in a locked directory, compatible with the reference plugin's layout (see
 * disk-store.ts), so the two can replace each other on a live host.
 *
 * Handlers read everything from the CmdArgs they get and never print or exit, because bridge
 * runs this plugin in-process (`makeBridgePlugin({ ipam: { 'host-local': hostLocalPlugin } })`): then
 * `args.conf` is the whole bridge config, the ipam section is `args.conf.ipam`, CNI_ARGS is
 * `args.args` and runtimeConfig is `args.conf.runtimeConfig`, exactly as when exec'd.
 *
 * - ADD: one address per range set (requested ones honoured), result with `ips` (address and
 *   gateway, no `interface`), `routes` and `dns` from resolvConf. A failure releases exactly what
 *   this call reserved.
 * - DEL: releases the attachment's leases; nothing there is success (SPEC: DEL is idempotent).
 * - CHECK: the attachment holds at least one lease (the reference's check).
 * - STATUS: code 50 when some range set has no free address.
 * - GC: releases leases whose (containerId, ifname) is not among `cni.dev/valid-attachments`.
 * Upstream has no STATUS or GC for host-local; these are the natural ones (docs/cni-notes.md §4.4).
 */
import { aboutOf } from '../../executables.ts';
import { CniCode, CniError, wrap } from '../../pkg/cni/errors.ts';
import type { Result } from '../../pkg/cni/result.ts';
import type { Attachment, CmdArgs, Plugin } from '../../pkg/cni/skel.ts';
import { formatCidr, formatIP } from '../../pkg/ip/cidr.ts';
import { allocate, collectGarbage, exhaustedSets, findAttachment, releaseAttachment } from './allocator.ts';
import { formatRangeSet, loadIpamConf, loadResolvConf, loadStoreLocation, placeRequested, requestedIPs } from './config.ts';
import { DiskStore } from './disk-store.ts';

async function cmdAdd(a: CmdArgs): Promise<Result> {
  const conf = loadIpamConf(a.conf);
  const requested = placeRequested(conf.ranges, requestedIPs(a.conf, a.args));
  const dns = conf.resolvConf ? loadResolvConf(conf.resolvConf) : undefined;
  const store = new DiskStore(conf.dataDir, conf.name);
  let allocs;
  try {
    allocs = await store.withLock(() => allocate(store, conf.ranges, a.containerId, a.ifName, requested));
  } catch (err) {
    if (err instanceof CniError) throw err;
    throw wrap(err, `failed to allocate an address in ${store.dir}`);
  }
  const result: Result = {
    cniVersion: conf.cniVersion,
    ips: allocs.map((x) => ({ address: formatCidr({ ...x.ip, prefix: x.range.subnet.prefix }), gateway: formatIP(x.range.gateway) })),
  };
  if (conf.routes.length) result.routes = conf.routes;
  if (dns && Object.keys(dns).length) result.dns = dns;
  return result;
}

async function cmdDel(a: CmdArgs): Promise<void> {
  const conf = loadStoreLocation(a.conf);
  if (!conf) return;
  const store = new DiskStore(conf.dataDir, conf.name);
  if (!store.present()) return;
  try {
    await store.withLock(() => releaseAttachment(store, a.containerId, a.ifName));
  } catch (err) {
    throw wrap(err, `failed to release the addresses of ${a.containerId}/${a.ifName} in ${store.dir}`);
  }
}

async function cmdCheck(a: CmdArgs): Promise<void> {
  const conf = loadIpamConf(a.conf);
  const store = new DiskStore(conf.dataDir, conf.name);
  const found = store.present() && (await store.withLock(() => findAttachment(store, a.containerId, a.ifName))).length > 0;
  if (!found) throw new CniError(CniCode.Internal, `host-local: Failed to find address added by container ${a.containerId}`);
}

async function cmdStatus(a: CmdArgs): Promise<void> {
  const conf = loadIpamConf(a.conf);
  const store = new DiskStore(conf.dataDir, conf.name);
  if (!store.present()) return;
  const full = await store.withLock(() => exhaustedSets(store, conf.ranges));
  if (full.length) {
    throw new CniError(CniCode.NotAvailable, `no IP addresses available in range set: ${formatRangeSet(conf.ranges[full[0]!]!)}`,
      `range set${full.length > 1 ? 's' : ''} ${full.join(', ')} of network "${conf.name}" ${full.length > 1 ? 'are' : 'is'} exhausted; new containers cannot get an address`);
  }
}

async function cmdGc(a: CmdArgs, valid: Attachment[]): Promise<void> {
  const conf = loadStoreLocation(a.conf);
  if (!conf) return;
  const store = new DiskStore(conf.dataDir, conf.name);
  if (!store.present()) return;
  await store.withLock(() => collectGarbage(store, valid));
}

/** The host-local IPAM plugin's handlers, for its executable and for in-process delegation by bridge. */
export const hostLocalPlugin: Plugin = {
  about: aboutOf('host-local'),
  add: cmdAdd,
  del: cmdDel,
  check: cmdCheck,
  status: cmdStatus,
  gc: cmdGc,
};

/**
 * `cnikit network rm` and `prune`: removing a network and what it leaves on the host. A network
 * with attachments in the results cache is refused, naming them, unless forced: then each is
 * DELed first (a running `cnikit run` container is detached through its record, so its
 * resolv.conf and `ps` follow). With nothing attached, every plugin is sent GC with nothing
 * valid (releaseNetworkState), the conflist is removed, then the bridge, when no other network
 * names it and no interface is enslaved to it, and host-local's now empty lease directory.
 */
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { CniCode, CniError, errorText } from '../../pkg/cni/errors.ts';
import { RouteHandle } from '../../pkg/netlink/route.ts';
import { type NetworkConfigList, loadConfFile } from '../../runtime/conf.ts';
import type { CniRuntime } from '../../runtime/runtime.ts';
import { disconnectContainer } from '../containers/connect.ts';
import { StateDir } from '../containers/state.ts';
import { attachmentLabel, attachmentsOf } from './attachments.ts';
import type { NetworkSummary } from './conflist.ts';
import { findNetwork, networkSummaries, removeConflist, withNetconfLock } from './store.ts';

export interface RemoveOptions {
  netconfPath: string;
  stateDir: string;
  force: boolean;
  /** Notes for people (progress, what was kept and why). */
  say: (line: string) => void;
}

export interface Removed {
  name: string;
  file: string;
  /** Attachments DELed first (with -f). */
  detached: string[];
  /** What happened to the bridge: removed, kept (and why), or not there. */
  bridge: string;
}

/** host-local's default dataDir. */
const HOST_LOCAL_DIR = '/var/lib/cni/networks';

/**
 * Sends GC with nothing valid to every plugin of a network that is going away, at CNI 1.1.0
 * when all its plugins speak it (even if the list says 1.0.0: GC is how a plugin learns to
 * release what it keeps per network). This is the hook for the firewall plugin's per-network
 * state (its isolation sets and chains for the bridge, CONTRACTS.md): its GC releases it. Leases,
 * port mappings, masquerade elements and DNS records that a lost DEL leaked go the same way.
 */
export async function releaseNetworkState(rt: CniRuntime, list: NetworkConfigList, say: (l: string) => void): Promise<void> {
  const types = [...new Set(list.plugins.map((p) => p.type))];
  const versions = await Promise.all(types.map((t) => rt.pluginVersions(t, list.cniVersion).catch(() => [] as string[])));
  const lacking = types.filter((_, i) => !versions[i]!.includes('1.1.0'));
  if (lacking.length) {
    say(`not sending GC: ${lacking.join(', ')} do not speak CNI 1.1.0`);
    return;
  }
  await rt.gc({ ...list, cniVersion: '1.1.0', candidateVersions: ['1.1.0'], disableGC: false }, []);
}

async function removeBridge(net: NetworkSummary, others: NetworkSummary[]): Promise<string> {
  const br = net.bridge;
  if (!br) return 'none';
  const sharer = others.find((o) => o.bridge === br);
  if (sharer) return `kept ${br}: network "${sharer.name}" uses it too`;
  const rt = RouteHandle.open();
  try {
    const links = await rt.linkList();
    const link = links.find((l) => l.name === br);
    if (!link) return `${br} was not there`;
    if (link.kind !== 'bridge') return `kept ${br}: it is not a bridge`;
    const ports = links.filter((l) => l.master === link.index).map((l) => l.name);
    if (ports.length) return `kept ${br}: ${ports.join(', ')} still enslaved to it`;
    await rt.linkDel(link.index);
    return `removed ${br}`;
  } finally {
    rt.close();
  }
}

/** Removes host-local's lease directory of the network when no lease is left in it. */
function removeLeaseDir(list: NetworkConfigList): void {
  for (const p of list.plugins) {
    const ipam = p.ipam as { type?: unknown; dataDir?: unknown } | undefined;
    if (ipam?.type !== 'host-local') continue;
    const dir = join(typeof ipam.dataDir === 'string' ? ipam.dataDir : HOST_LOCAL_DIR, list.name);
    let files: string[];
    try { files = readdirSync(dir); } catch { continue; }
    if (files.every((f) => f === 'lock' || f.startsWith('last_reserved_ip'))) rmSync(dir, { recursive: true, force: true });
  }
}

/** Removes network `name` (see the header); throws reason `conflict` while it has attachments and not `force`. */
export async function removeNetwork(rt: CniRuntime, name: string, o: RemoveOptions): Promise<Removed> {
  const net = findNetwork(o.netconfPath, name);
  const list = loadConfFile(net.file);
  const states = new StateDir(o.stateDir);
  const attached = attachmentsOf(list.name, rt.cache.list(list.name), states.listLive().live);
  if (attached.length && !o.force) {
    throw new CniError(CniCode.InvalidConfig, `network "${name}" has ${attached.length} attachment(s): ${attached.map(attachmentLabel).join(', ')}`,
      `stop them or \`cnikit disconnect ${name} CONTAINER\`, or pass -f to DEL them first`, { reason: 'conflict' });
  }
  const detached: string[] = [];
  for (const a of attached) {
    o.say(`detaching ${attachmentLabel(a)}`);
    try {
      if (a.pid !== undefined) await disconnectContainer(rt, { stateDir: o.stateDir, netconfPath: o.netconfPath, network: list.name, container: a.containerId });
      else await rt.del(list, { containerId: a.containerId, netns: a.netns, ifName: a.ifName, args: [], capabilityArgs: {} });
    } catch (err) {
      throw new CniError(CniCode.Internal, `cannot DEL ${attachmentLabel(a)} from network "${name}"`, `${errorText(err)}; the network is kept, retry when fixed`, { cause: err });
    }
    detached.push(attachmentLabel(a));
  }
  if (!list.disableGC) await releaseNetworkState(rt, list, o.say);
  return withNetconfLock(o.netconfPath, async () => {
    removeConflist(net.file);
    const bridge = await removeBridge(net, networkSummaries(o.netconfPath).filter((n) => n.name !== name));
    removeLeaseDir(list);
    return { name, file: net.file, detached, bridge };
  });
}

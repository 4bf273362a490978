/**
 * Whether records still describe something that exists: the check behind "a network's records
 * affect only that network, and only while it exists", shared by the responder (which ignores
 * and prunes what failed) and the dnsname plugin (which binds what it writes, and prunes its own
 * network on every ADD, DEL and GC).
 *
 * A network is bound to the host netns it was written in (its inode) and to the host link that
 * carries its gateways (name and ifindex: a link re-created under the same name gets a new
 * ifindex). It is *gone* when that link no longer exists with that name, or when one of its
 * gateway addresses now sits on another link (a newer network took the address over); it is
 * *foreign* when the records come from another host netns (this process cannot tell whether
 * that network exists, so it leaves it alone). A container is bound to its netns: its line is
 * *dead* once the netns path no longer names the inode it named at ADD (deleted, or reused by
 * a new namespace). Records without bindings (hand-written) are taken as written.
 *
 * The checks read the kernel through a `HostProbe`: `stat` for namespaces, an rtnetlink handle
 * for links and addresses (the call's own in a plugin, an AsyncNetlinkSocket in the responder).
 * Nothing here writes; prune.ts applies the verdicts to disk.
 */
import { statSync } from 'node:fs';
import { formatIP, tryParseIP } from '../pkg/ip/cidr.ts';
import { RouteHandle } from '../pkg/netlink/route.ts';
import { NETLINK_ROUTE } from '../pkg/netlink/socket.ts';
import { listDiff } from './list-diff.ts';
import type { BridgeBinding, ContainerRecord, NetworkRecords } from './records.ts';

/** What the checks need to know about the host, injectable for unit tests. */
export interface HostProbe {
  /** Inode of the netns this process runs in: the host netns of the networks it serves. */
  readonly hostNetns: number;
  /** The name of the link with ifindex `index` here, or undefined when there is none. */
  linkName(index: number): Promise<string | undefined>;
  /** ifindex of the link carrying each local address here (canonical IP text). */
  addressOwners(): Promise<Map<string, number>>;
  /**
   * Inode of the netns `path` names now; undefined when it names none; UNSEEN when the path
   * exists but is no namespace here (a bind mount made in another mount namespace).
   */
  netnsIno(path: string): number | undefined;
  /** Releases what the probe opened. */
  close(): void;
}

const NSFS_DEV = (() => {
  try { return statSync('/proc/thread-self/ns/net').dev; } catch { return undefined; }
})();

/**
 * What netnsInoOf says of a path that exists but is no namespace file in this mount namespace:
 * the runtime pinned the netns with a bind mount this process cannot see (it was started from
 * another mount namespace, as `ip netns exec` makes one per command). The file under the mount
 * is still there, and goes with the pin (runtimes unmount and unlink), so such a container is
 * taken as alive until its path disappears.
 */
export const UNSEEN = -1;

/** Returns the inode of the netns at `path`: undefined when the path names none, UNSEEN when it cannot be seen from here. */
export function netnsInoOf(path: string): number | undefined {
  const st = statSync(path, { throwIfNoEntry: false });
  if (!st) return undefined;
  if (NSFS_DEV !== undefined && st.dev !== NSFS_DEV) return st.isFile() ? UNSEEN : undefined;
  return st.ino;
}

/** True when the namespace a record names is still there (or cannot be seen from here: see UNSEEN). */
export function netnsAlive(probe: Pick<HostProbe, 'netnsIno'>, ns: { ino: number; path: string }): boolean {
  const ino = probe.netnsIno(ns.path);
  return ino === ns.ino || ino === UNSEEN;
}

/** Returns the inode of this thread's netns. */
export function ownNetnsIno(): number {
  return statSync('/proc/thread-self/ns/net').ino;
}

/**
 * Makes the probe of the netns `route` talks to (the call's host handle, in a plugin: it is the
 * call's, so the probe never closes it). The address list and each link's name are read once
 * per probe, so a probe is meant for one pass of checks (a dnsname ADD lends its probe to the
 * reload it asks for in the same process: ResponderNeed.probe).
 */
export function hostProbe(route: () => Promise<RouteHandle>, hostNetns = ownNetnsIno()): HostProbe {
  let owners: Map<string, number> | undefined;
  const names = new Map<number, string | undefined>();
  return {
    hostNetns,
    async linkName(index) {
      if (names.has(index)) return names.get(index);
      const name = (await (await route()).linkGetByIndex(index))?.name;
      names.set(index, name);
      return name;
    },
    async addressOwners() {
      if (owners) return owners;
      owners = new Map();
      for (const a of await (await route()).addrList()) owners.set(formatIP(a.cidr), a.index);
      return owners;
    },
    netnsIno: netnsInoOf,
    close() {},
  };
}

/**
 * Opens a probe of this process's netns for a daemon (the responder): its rtnetlink socket is an
 * AsyncNetlinkSocket (replies come from the event loop, which never blocks), opened on first use
 * and closed by close().
 */
export function openHostProbe(): HostProbe {
  let sock: { close(): void } | undefined;
  let route: Promise<RouteHandle> | undefined;
  const open = () => (route ??= import('../pkg/netlink/async-socket.ts').then(({ AsyncNetlinkSocket }) => {
    const s = AsyncNetlinkSocket.open(NETLINK_ROUTE, null);
    sock = s;
    return new RouteHandle(s);
  }));
  const p = hostProbe(open);
  return {
    ...p,
    close() {
      sock?.close();
      sock = undefined;
      route = undefined;
    },
  };
}

/** What became of a network's records. */
export type NetworkState =
  /** Bound and verified, or unbound (taken as written). */
  | { state: 'live'; verified: boolean }
  /** Written in another host netns: ignored here, never pruned. */
  | { state: 'foreign'; why: string }
  /** Its bridge is gone or renamed, or a gateway moved to another link: ignored and pruned. */
  | { state: 'gone'; why: string };

/** The verdict on one network: its state and, when live, which containers are dead. */
export interface Judgement {
  network: NetworkState;
  dead: ContainerRecord[];
}

/** Each container record's gateways in canonical form (records are never changed once made). */
const canonicalGateways = new WeakMap<ContainerRecord, readonly string[]>();

function gatewaysOfContainer(c: ContainerRecord): readonly string[] {
  let list = canonicalGateways.get(c);
  if (!list) {
    list = c.gateways.map((g) => { const ip = tryParseIP(g); return ip ? formatIP(ip) : undefined; }).filter((g): g is string => g !== undefined);
    canonicalGateways.set(c, list);
  }
  return list;
}

/** How many of a list's containers have each gateway, for the lists seen lately (the versions being changed). */
const recentCounts: { list: readonly ContainerRecord[]; length: number; counts: Map<string, number> }[] = [];
const RECENT_LISTS = 8;

function countGateways(counts: Map<string, number>, c: ContainerRecord, by: 1 | -1): void {
  for (const g of gatewaysOfContainer(c)) {
    const n = (counts.get(g) ?? 0) + by;
    if (n > 0) counts.set(g, n);
    else counts.delete(g);
  }
}

/**
 * The gateways of a network's records (canonical, once each). Why per record: a records file's
 * new version keeps its unchanged lines' record objects (the line caches), so at 1000 containers
 * a reload parses no address again. Why counted per list: a new version of a list (one more or
 * one fewer container) is found against a recent one by comparing slots (list-diff.ts), so an
 * ADD or a DEL reads the records it changed, not all of them (this runs on every ADD, DEL and
 * reload). A list is only ever appended to while it is built; one whose length changed since is
 * counted again.
 */
export function gatewaysOf(r: NetworkRecords): string[] {
  const list = r.containers;
  let counts: Map<string, number> | undefined;
  for (const e of recentCounts) {
    if (e.list.length !== e.length) continue; // appended to since: no longer what was counted
    if (e.list === list) return [...e.counts.keys()];
    const d = listDiff(e.list, list);
    if (!d) continue;
    counts = new Map(e.counts);
    for (const c of d.added) countGateways(counts, c, 1);
    for (const c of d.removed) countGateways(counts, c, -1);
    break;
  }
  if (!counts) {
    counts = new Map();
    for (const c of list) countGateways(counts, c, 1);
  }
  const i = recentCounts.findIndex((e) => e.list === list);
  if (i >= 0) recentCounts.splice(i, 1);
  recentCounts.unshift({ list, length: list.length, counts });
  if (recentCounts.length > RECENT_LISTS) recentCounts.pop();
  return [...counts.keys()];
}

/** Judges the network's binding only (no container is checked). */
export async function judgeBinding(r: NetworkRecords, probe: HostProbe): Promise<NetworkState> {
  if (r.hostNetns === undefined) return { state: 'live', verified: false };
  if (r.hostNetns !== probe.hostNetns) return { state: 'foreign', why: `written in host netns ${r.hostNetns}, this is ${probe.hostNetns}` };
  const b = r.bridge;
  if (!b) return { state: 'live', verified: false };
  const name = await probe.linkName(b.index);
  if (name === undefined) return { state: 'gone', why: `its bridge ${b.name} (#${b.index}) is gone` };
  if (name !== b.name) return { state: 'gone', why: `its bridge ${b.name} (#${b.index}) is gone (ifindex ${b.index} is now ${name})` };
  const owners = await probe.addressOwners();
  let onBridge = 0;
  for (const g of gatewaysOf(r)) {
    const at = owners.get(g);
    if (at === undefined) continue; // not up (yet): not listened on, not a reason to prune
    if (at !== b.index) return { state: 'gone', why: `its gateway ${g} is now on another link (#${at})` };
    onBridge++;
  }
  return { state: 'live', verified: onBridge > 0 };
}

/** Returns the containers whose netns binding no longer holds. */
export function deadContainers(containers: readonly ContainerRecord[], probe: Pick<HostProbe, 'netnsIno'>): ContainerRecord[] {
  return containers.filter((c) => c.netns !== undefined && !netnsAlive(probe, c.netns));
}

/** Judges a network and its containers. */
export async function judgeNetwork(r: NetworkRecords, probe: HostProbe): Promise<Judgement> {
  const network = await judgeBinding(r, probe);
  return { network, dead: network.state === 'live' ? deadContainers(r.containers, probe) : [] };
}

/** The binding of a network whose gateways are `gateways`, as it is now: host netns, and the link carrying the first gateway found. */
export async function currentBinding(gateways: readonly string[], probe: HostProbe): Promise<{ hostNetns: number; bridge?: BridgeBinding }> {
  const owners = await probe.addressOwners();
  for (const g of gateways) {
    const ip = tryParseIP(g);
    const index = ip && owners.get(formatIP(ip));
    if (!index) continue;
    const name = await probe.linkName(index);
    if (name !== undefined) return { hostNetns: probe.hostNetns, bridge: { name, index } };
  }
  return { hostNetns: probe.hostNetns };
}

/** True when two bindings are the same network: same host netns and the same link. */
export function sameBinding(a: { hostNetns?: number; bridge?: BridgeBinding }, b: { hostNetns?: number; bridge?: BridgeBinding }): boolean {
  return a.hostNetns === b.hostNetns && a.bridge?.name === b.bridge?.name && a.bridge?.index === b.bridge?.index;
}

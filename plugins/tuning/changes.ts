/**
 * What tuning changes in a container's namespace, as values: planned from the config and what is
 * there now (ADD), from the restore file (DEL), compared with what is there (CHECK), and applied
 * one at a time through the call's kernel handles.
 *
 * ADD's order is the reference's: sysctls, then MAC, promiscuous mode, MTU, all-multicast,
 * transmit queue length (docs/cni-notes.md §10.3). An attribute that already has the wanted value
 * is not changed and not saved, so DEL restores only what ADD really changed. DEL goes in the
 * reverse order.
 */
import type { Kernel } from '../../pkg/kernel.ts';
import { IFF_ALLMULTI, IFF_PROMISC, type LinkDetails, type RouteHandle } from '../../pkg/netlink/route.ts';
import type { TuningConf } from './config.ts';
import type { SavedState } from './state.ts';
import { sameSysctlValue } from './sysctl.ts';

export type Change =
  | { kind: 'sysctl'; path: string; value: string }
  | { kind: 'mac'; value: string }
  | { kind: 'promisc'; value: boolean }
  | { kind: 'mtu'; value: number }
  | { kind: 'allmulti'; value: boolean }
  | { kind: 'txQLen'; value: number };

/** A change ADD makes, the change that undoes it (none for a write-only sysctl), and the config key it comes from. */
export interface Planned {
  change: Change;
  undo?: Change;
  key: string;
}

/** What is in the container's namespace now: the link (absent when there is none) and the sysctls read. */
export interface Current {
  link: LinkDetails | undefined;
  /**
   * By path under /proc/sys; null for a write-only one (mode 0200, such as net/ipv4/route/flush):
   * an action rather than a setting, written but neither saved nor checked.
   */
  sysctl: Map<string, string | null>;
}

/** Returns ADD's changes, in order, and the original values to save for them. */
export function planAdd(c: TuningConf, cur: Current): { changes: Planned[]; originals: SavedState } {
  const changes: Planned[] = [];
  const originals: SavedState = {};
  const sysctl: Record<string, string> = {};
  for (const s of c.sysctls) {
    const now = cur.sysctl.get(s.path);
    if (now === null) {
      changes.push({ change: { kind: 'sysctl', path: s.path, value: s.value }, key: s.source });
      continue;
    }
    if (now === undefined || sameSysctlValue(now, s.value)) continue;
    changes.push({ change: { kind: 'sysctl', path: s.path, value: s.value }, undo: { kind: 'sysctl', path: s.path, value: now }, key: s.source });
    sysctl[s.path] = now;
  }
  if (Object.keys(sysctl).length) originals.sysctl = sysctl;
  const l = cur.link;
  if (!l) return { changes, originals };
  if (c.mac && c.mac.value !== l.mac) {
    changes.push({ change: { kind: 'mac', value: c.mac.value }, undo: { kind: 'mac', value: l.mac }, key: c.mac.key });
    originals.mac = l.mac;
  }
  const promisc = Boolean(l.flags & IFF_PROMISC);
  if (c.promisc && !promisc) {
    changes.push({ change: { kind: 'promisc', value: true }, undo: { kind: 'promisc', value: false }, key: c.promisc.key });
    originals.promisc = false;
  }
  if (c.mtu && c.mtu.value !== l.mtu) {
    changes.push({ change: { kind: 'mtu', value: c.mtu.value }, undo: { kind: 'mtu', value: l.mtu }, key: c.mtu.key });
    originals.mtu = l.mtu;
  }
  const allmulti = Boolean(l.flags & IFF_ALLMULTI);
  if (c.allmulti && c.allmulti.value !== allmulti) {
    changes.push({ change: { kind: 'allmulti', value: c.allmulti.value }, undo: { kind: 'allmulti', value: allmulti }, key: c.allmulti.key });
    originals.allmulti = allmulti;
  }
  if (c.txQLen && c.txQLen.value !== l.txQLen) {
    changes.push({ change: { kind: 'txQLen', value: c.txQLen.value }, undo: { kind: 'txQLen', value: l.txQLen }, key: c.txQLen.key });
    originals.txQLen = l.txQLen;
  }
  return { changes, originals };
}

/** Returns the changes that put back what `s` saved, in the reverse of ADD's order. */
export function planRestore(s: SavedState): Change[] {
  const out: Change[] = [];
  if (s.txQLen !== undefined) out.push({ kind: 'txQLen', value: s.txQLen });
  if (s.allmulti !== undefined) out.push({ kind: 'allmulti', value: s.allmulti });
  if (s.mtu !== undefined) out.push({ kind: 'mtu', value: s.mtu });
  if (s.promisc !== undefined) out.push({ kind: 'promisc', value: s.promisc });
  if (s.mac !== undefined) out.push({ kind: 'mac', value: s.mac });
  for (const [path, value] of Object.entries(s.sysctl ?? {}).reverse()) out.push({ kind: 'sysctl', path, value });
  return out;
}

/** Describes a change for messages: `mtu 1500`, `/proc/sys/net/ipv4/conf/eth0/arp_ignore = "0"`. */
export function describeChange(c: Change): string {
  if (c.kind === 'sysctl') return `/proc/sys/${c.path} = ${JSON.stringify(c.value)}`;
  if (c.kind === 'promisc' || c.kind === 'allmulti') return `${c.kind} ${c.value ? 'on' : 'off'}`;
  return `${c.kind} ${c.value}`;
}

/** Makes one change: sysctls through the kernel's sysctlWrite in `netns`, the rest on link `index` through `rt`. */
export async function applyChange(k: Kernel, rt: RouteHandle, netns: string, index: number, c: Change): Promise<void> {
  switch (c.kind) {
    case 'sysctl': return k.sysctlWrite(netns, c.path, c.value);
    case 'mac': return rt.linkSetMac(index, c.value);
    case 'promisc': return rt.linkSetPromisc(index, c.value);
    case 'mtu': return rt.linkSetMtu(index, c.value);
    case 'allmulti': return rt.linkSetAllmulti(index, c.value);
    case 'txQLen': return rt.linkSetTxQLen(index, c.value);
  }
}

/**
 * Returns what differs from the config (CHECK), in the reference's order and words: each sysctl,
 * the link's presence, MAC, promiscuous mode both ways (a link the config does not make
 * promiscuous must not be), MTU, all-multicast, transmit queue length.
 */
export function checkProblems(c: TuningConf, ifName: string, cur: Current): string[] {
  const out: string[] = [];
  for (const s of c.sysctls) {
    const now = cur.sysctl.get(s.path);
    if (typeof now === 'string' && !sameSysctlValue(now, s.value)) out.push(`Tuning configured value of /proc/sys/${s.path} is ${s.value}, current value is ${now}`);
  }
  const l = cur.link;
  if (!l) return [...out, `Cannot find container link ${ifName}`];
  if (c.mac && c.mac.value !== l.mac) out.push(`Tuning configured Ethernet of ${ifName} is ${c.mac.value}, current value is ${l.mac}`);
  const promisc = Boolean(l.flags & IFF_PROMISC);
  if (Boolean(c.promisc) !== promisc) out.push(`Tuning link ${ifName} configured promisc is ${Boolean(c.promisc)}, current value is ${promisc ? 1 : 0}`);
  if (c.mtu && c.mtu.value !== l.mtu) out.push(`Tuning configured MTU of ${ifName} is ${c.mtu.value}, current value is ${l.mtu}`);
  const allmulti = Boolean(l.flags & IFF_ALLMULTI);
  if (c.allmulti && c.allmulti.value !== allmulti) out.push(`Tuning configured all-multicast mode of ${ifName} is ${c.allmulti.value}, current value is ${allmulti}`);
  if (c.txQLen && c.txQLen.value !== l.txQLen) out.push(`Tuning configured Transmit Queue Length of ${ifName} is ${c.txQLen.value}, current value is ${l.txQLen}`);
  return out;
}

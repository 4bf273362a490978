/**
 * What the host network namespace already uses, read over netlink (no `ip`): its links (a new
 * bridge must not take an existing name) and the address ranges of its addresses and routes (a
 * new subnet must not overlap them, as Podman checks). "The host" is the namespace cnikit runs
 * in, which in the tests is the sandbox's.
 *
 * Routes of the local table (the kernel's routes for its own addresses, broadcasts) and default
 * routes (they overlap everything and say nothing about what is used) are left out.
 */
import { formatCidr, formatIP, networkOf } from '../../pkg/ip/cidr.ts';
import { type Link, RouteHandle } from '../../pkg/netlink/route.ts';
import type { UsedRange } from './subnets.ts';

const RT_TABLE_LOCAL = 255;
/** Route types that describe where addresses are (unicast, blackhole, unreachable, prohibit). */
const ADDRESS_ROUTE_TYPES = new Set([1, 6, 7, 8]);

export interface HostView {
  links: Link[];
  /** Addresses first, then routes, each naming itself for messages. */
  used: UsedRange[];
}

/** Reads the links, addresses and routes of the caller's network namespace. */
export async function readHost(): Promise<HostView> {
  const rt = RouteHandle.open();
  try {
    const links = await rt.linkList();
    const nameOf = (i: number | undefined) => links.find((l) => l.index === i)?.name ?? `#${i}`;
    const used: UsedRange[] = [];
    for (const a of await rt.addrList()) {
      used.push({ cidr: networkOf(a.cidr), what: `address ${formatCidr(a.cidr)} on ${nameOf(a.index)} of this host` });
    }
    for (const fam of [4, 6] as const) {
      for (const r of await rt.routeList(fam)) {
        if (r.table === RT_TABLE_LOCAL || r.dst.prefix === 0 || !ADDRESS_ROUTE_TYPES.has(r.type)) continue;
        const via = r.gw ? ` via ${formatIP(r.gw)}` : '';
        const dev = r.oif ? ` dev ${nameOf(r.oif)}` : '';
        used.push({ cidr: networkOf(r.dst), what: `route ${formatCidr(r.dst)}${via}${dev} of this host` });
      }
    }
    return { links, used };
  } finally {
    rt.close();
  }
}

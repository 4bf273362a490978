/**
 * The kernel as one CNI call sees it (`CmdArgs.kernel`): rtnetlink handles per namespace, the
 * host's nf_tables and netfilter socket, and sysctls. Plugins never open sockets themselves; they
 * ask the call, so whoever runs the call decides how sockets live (open-kernel.ts):
 *
 * - `processKernel()`, what a fresh plugin process uses: blocking sockets, opened on first use
 *   (one per namespace and kind), all closed when the call ends.
 * - `SharedKernel`, for a long-lived process serving many calls: the host's sockets stay open
 *   across calls, sockets in other namespaces live for one call.
 *
 * This module is only the contract (and a kernel that refuses), so that code which merely passes
 * a Kernel along (skel, host-local, dnsname) does not bundle the netlink layer.
 */
import type { RouteHandle } from './netlink/route.ts';
import type { NetlinkSocket } from './netlink/socket.ts';
import type { Nftables } from './nftables/handle.ts';

/** The kernel handles of one call. Handles belong to the call: never close them yourself. */
export interface Kernel {
  /** rtnetlink in the namespace at `netnsPath` (omitted: the host). The same handle for every ask in a call. */
  route(netnsPath?: string): Promise<RouteHandle>;
  /** nf_tables in the host namespace. */
  nftables(): Promise<Nftables>;
  /** The host's NETLINK_NETFILTER socket (conntrack), the one nftables() speaks through. */
  netfilter(): Promise<NetlinkSocket>;
  /** Writes /proc/sys/`key` in the namespace at `netnsPath` (null: the host). */
  sysctlWrite(netnsPath: string | null, key: string, value: string): Promise<void>;
  /** Reads /proc/sys/`key` in the namespace at `netnsPath` (null: the host), without the newline. */
  sysctlRead(netnsPath: string | null, key: string): Promise<string>;
}

/** A Kernel for one call, plus the end of the call: `release()` closes what the provider does not keep. */
export interface CallKernel extends Kernel {
  release(): void;
}

/**
 * A Kernel whose every method rejects: the default of a call whose executable or caller gave it
 * none (host-local, dnsname), and for unit tests of handlers that must not reach the kernel.
 */
export const noKernel: Kernel = {
  route: () => refuse('route'),
  nftables: () => refuse('nftables'),
  netfilter: () => refuse('netfilter'),
  sysctlWrite: () => refuse('sysctlWrite'),
  sysctlRead: () => refuse('sysctlRead'),
};

function refuse(what: string): Promise<never> {
  return Promise.reject(new Error(`this call has no kernel handles (${what}): its executable or caller gave it none`));
}

/**
 * The kernel as one CNI call sees it (`CmdArgs.kernel`): rtnetlink handles per namespace, the
 * host's nf_tables and netfilter socket, and sysctls. Plugins never open sockets themselves; they
 * ask the call, so whoever runs the call decides how sockets live:
 *
 * - `processKernel()`, what skel uses in a fresh plugin process: blocking sockets, opened on first
 *   use (one per namespace and kind), all closed when the call ends.
 * - `SharedKernel`, for a long-lived process serving many calls: the host's sockets stay open
 *   across calls (closing a NETLINK_NETFILTER socket after a change waits 10-13 ms for an RCU
 *   grace period), sockets in other namespaces are opened per call and closed at its end (a path
 *   such as /run/netns/x may name another namespace by the next call). The caller chooses the
 *   socket implementation (AsyncNetlinkSocket in a daemon).
 *
 * "Host" is the namespace the plugin treats as its own: this process's, unless `hostNetns` names
 * another (a daemon serving another namespace, or a test's sandbox). The modules behind the
 * handles load on first use, so a call that needs none of them (host-local) pays nothing.
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

export interface KernelOptions {
  /** The namespace the plugin treats as the host (null or omitted: this process's). */
  hostNetns?: string | null;
  /** Opens a socket (default: a BlockingNetlinkSocket). */
  openSocket?: (protocol: number, netnsPath: string | null) => NetlinkSocket;
}

const NETLINK_ROUTE = 0;
const NETLINK_NETFILTER = 12;

async function defaultOpen(protocol: number, netnsPath: string | null): Promise<NetlinkSocket> {
  const { BlockingNetlinkSocket } = await import('./netlink/socket.ts');
  return BlockingNetlinkSocket.open(protocol, netnsPath);
}

/** Memoises an async open; a failed open is forgotten, so that the next ask tries again. */
function once<T>(open: () => Promise<T>): () => Promise<T> {
  let p: Promise<T> | undefined;
  return () => (p ??= open().catch((err: unknown) => { p = undefined; throw err; }));
}

/** Handles opened within one scope (a call, or a SharedKernel's life), closed together. */
class Handles {
  private readonly routes = new Map<string, Promise<RouteHandle>>();
  private readonly sockets: NetlinkSocket[] = [];
  private readonly o: KernelOptions;
  readonly netfilter: () => Promise<NetlinkSocket>;
  readonly nftables: () => Promise<Nftables>;

  constructor(o: KernelOptions) {
    this.o = o;
    this.netfilter = once(() => this.open(NETLINK_NETFILTER, o.hostNetns ?? null));
    this.nftables = once(async () => {
      const [{ Nftables }, sock] = await Promise.all([import('./nftables/handle.ts'), this.netfilter()]);
      return new Nftables(sock);
    });
  }

  private async open(protocol: number, netnsPath: string | null): Promise<NetlinkSocket> {
    const s = this.o.openSocket ? this.o.openSocket(protocol, netnsPath) : await defaultOpen(protocol, netnsPath);
    this.sockets.push(s);
    return s;
  }

  route(netnsPath: string | null): Promise<RouteHandle> {
    const key = netnsPath ?? '';
    let h = this.routes.get(key);
    if (!h) {
      h = Promise.all([import('./netlink/route.ts'), this.open(NETLINK_ROUTE, netnsPath)]).then(([{ RouteHandle }, s]) => new RouteHandle(s));
      h.catch(() => this.routes.delete(key));
      this.routes.set(key, h);
    }
    return h;
  }

  close(): void {
    for (const s of this.sockets.splice(0)) {
      try { s.close(); } catch { /* already closed */ }
    }
    this.routes.clear();
  }
}

async function sysctlWrite(host: string | null, netnsPath: string | null, key: string, value: string): Promise<void> {
  const { native } = await import('./native.ts');
  native().sysctlWrite(netnsPath ?? host, key, value);
}

async function sysctlRead(host: string | null, netnsPath: string | null, key: string): Promise<string> {
  const { native } = await import('./native.ts');
  return native().sysctlRead(netnsPath ?? host, key);
}

/** The kernel of a fresh plugin process: every socket opened on first use and closed by release(). */
export function processKernel(o: KernelOptions = {}): CallKernel {
  const host = o.hostNetns ?? null;
  const h = new Handles(o);
  return {
    route: (netnsPath) => h.route(netnsPath ?? host),
    nftables: h.nftables,
    netfilter: h.netfilter,
    sysctlWrite: (netnsPath, key, value) => sysctlWrite(host, netnsPath, key, value),
    sysctlRead: (netnsPath, key) => sysctlRead(host, netnsPath, key),
    release: () => h.close(),
  };
}

/**
 * Kernel handles shared by the calls of a long-lived process: the host's rtnetlink and
 * netfilter sockets are opened once and kept until close(); each call's other namespaces get
 * their own sockets, closed when that call is released. Safe with concurrent calls when the
 * sockets are (AsyncNetlinkSocket).
 */
export class SharedKernel {
  private readonly o: KernelOptions;
  private readonly host: Handles;

  constructor(o: KernelOptions = {}) {
    this.o = o;
    this.host = new Handles(o);
  }

  /** Returns the Kernel of one call; release() it when the call ends. */
  forCall(): CallKernel {
    const hostNs = this.o.hostNetns ?? null;
    const mine = new Handles(this.o);
    const host = this.host;
    return {
      route: (netnsPath) => (netnsPath === undefined || netnsPath === hostNs ? host.route(hostNs) : mine.route(netnsPath)),
      nftables: host.nftables,
      netfilter: host.netfilter,
      sysctlWrite: (netnsPath, key, value) => sysctlWrite(hostNs, netnsPath, key, value),
      sysctlRead: (netnsPath, key) => sysctlRead(hostNs, netnsPath, key),
      release: () => mine.close(),
    };
  }

  /** Closes the kept host sockets (calls still running lose theirs). */
  close(): void {
    this.host.close();
  }
}

/** A Kernel whose every method rejects: for unit tests of handlers that must not reach the kernel. */
export const noKernel: Kernel = {
  route: () => Promise.reject(new Error('no kernel here: route()')),
  nftables: () => Promise.reject(new Error('no kernel here: nftables()')),
  netfilter: () => Promise.reject(new Error('no kernel here: netfilter()')),
  sysctlWrite: () => Promise.reject(new Error('no kernel here: sysctlWrite()')),
  sysctlRead: () => Promise.reject(new Error('no kernel here: sysctlRead()')),
};

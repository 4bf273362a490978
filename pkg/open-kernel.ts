/**
 * Kernel implementations (see kernel.ts for the contract): `processKernel()` for the one call of
 * a fresh plugin process, `SharedKernel` for a long-lived process serving many calls.
 *
 * - processKernel: blocking sockets, opened on first use (one per namespace and kind), all closed
 *   by release() at the end of the call. The executables that talk to the kernel (bridge,
 *   portmap) pass it to executableMain; the modules behind the handles load on first use.
 * - SharedKernel: the host's rtnetlink and netfilter sockets stay open across calls (closing a
 *   NETLINK_NETFILTER socket after a change waits 10-13 ms for an RCU grace period); sockets in
 *   other namespaces are opened per call and closed at its end (a path such as /run/netns/x may
 *   name another namespace by the next call). The caller chooses the socket implementation
 *   (AsyncNetlinkSocket in a daemon, so that calls in flight share the sockets).
 *
 * "Host" is the namespace the plugin treats as its own: this process's, unless `hostNetns` names
 * another (a daemon serving another namespace, or a test's sandbox).
 */
import type { CallKernel } from './kernel.ts';
import type { RouteHandle } from './netlink/route.ts';
import type { NetlinkSocket } from './netlink/socket.ts';
import type { Nftables } from './nftables/handle.ts';

/** How a kernel opens its sockets, and in which namespace its host is. */
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

/** Returns the kernel of a fresh plugin process's call: every socket opened on first use and closed by release(). */
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

  /** The kept rtnetlink handle of the host netns (for the engine's own work: the DNS it hosts). */
  hostRoute(): Promise<RouteHandle> {
    return this.host.route(this.o.hostNetns ?? null);
  }

  /** Closes the kept host sockets (calls still running lose theirs). */
  close(): void {
    this.host.close();
  }
}

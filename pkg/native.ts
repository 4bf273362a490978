/**
 * The typed binding to the native addon (native/netns.cc), loaded in exactly this one place.
 *
 * From source (tests, bench) the addon is found relative to this file; a bundle in
 * dist/bin/.lib gets its absolute path from the constant its banner defines (scripts/build.ts),
 * which stays right wherever the loader that requires the bundle is installed.
 * Every function throws a Node-style SystemError (`code`, `errno`, `syscall`) on failure.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** Set by the bundle's banner (scripts/build.ts): the addon's absolute path. */
declare const __CNIKIT_ADDON__: string | undefined;

export interface NativeBinding {
  /** Opens a netlink socket of `protocol` inside the netns at `netnsPath` (null = this process's). */
  nlOpen(protocol: number, netnsPath: string | null): number;
  /** Sends one datagram (a batch must not be split); returns the bytes sent. */
  nlSend(fd: number, msg: Buffer): number;
  /**
   * nlSend on a thread of the addon's own, for a request the kernel holds long inside sendmsg
   * (a link delete waits ~20 ms for RCU): the JS thread goes on meanwhile. Resolves with the
   * bytes sent; the reply is read as for nlSend.
   */
  nlSendAsync(fd: number, msg: Buffer): Promise<number>;
  /**
   * Closes a socket nlOpen made, stopping its watcher first (the fd itself is closed once libuv
   * has let go of it). Returns false, closing nothing, for a number that is not an open socket of
   * nlOpen (one closed already): a second close never hits whatever took the number since.
   */
  nlClose(fd: number): boolean;
  /** Blocks this thread until one datagram arrives; null when nothing arrived within timeoutMs. */
  nlRecv(fd: number, timeoutMs: number): Buffer | null;
  /**
   * Delivers every datagram that arrives on `fd` to `onData` from the event loop, never blocking
   * it (a uv_poll watcher). The watcher alone does not keep the process alive. `err` is a recv
   * error (ENOBUFS: the kernel dropped replies), after which the watcher keeps going.
   */
  nlWatch(fd: number, onData: (err: SysError | null, datagrams: Buffer[]) => void): void;
  /** Stops the watcher of `fd` (none: nothing happens); the socket stays open. */
  nlUnwatch(fd: number): void;
  /** Writes /proc/sys/`key` inside the netns; `key` is relative ("net/ipv4/ip_forward"), without "..". */
  sysctlWrite(netnsPath: string | null, key: string, value: string): void;
  /** Reads /proc/sys/`key` inside the netns, without the trailing newline. */
  sysctlRead(netnsPath: string | null, key: string): string;
  /** Gives the free memory of every malloc arena back to the kernel (glibc malloc_trim); true when some was. */
  mallocTrim(): boolean;
  /** Fills `buf` from the kernel's CSPRNG (getrandom(2)): random bytes without loading node:crypto. */
  randomFill(buf: Buffer): void;
  /** Takes a flock if it is free; false when someone holds it. Never waits. */
  flock(fd: number, exclusive: boolean): boolean;
  /**
   * Resolves once the flock is held, waiting on a thread of the addon's own (never the event loop
   * or the libuv pool). Closing the fd releases the lock.
   */
  flockWait(fd: number, exclusive: boolean): Promise<void>;
  netnsCreate(path: string): void;
  netnsDelete(path: string): void;
  /**
   * Joins the netns on this thread and execs argv (never returns on success). With `binds`, the
   * command also gets a private mount namespace with /sys of the netns and each [src, dst]
   * bind-mounted (like `ip netns exec` does with /etc/netns/NAME/resolv.conf).
   */
  execInNetns(netnsPath: string, argv: string[], binds?: [string, string][]): never;
  /** Returns who connected on the unix socket `fd` (SO_PEERCRED): the engine's caller check. */
  peerCred(fd: number): { pid: number; uid: number; gid: number };
  /**
   * Creates sockets inside the netns at `netnsPath` (on a short-lived thread of the addon;
   * null = this process's own, on this thread) and binds each to its address and port; returns their fds in spec order and the inode of the
   * namespace joined. Nothing listens yet: hand a UDP fd to `dgram` (`bind({ fd })`) and a TCP
   * one to `net` (`listen({ fd })`). All or nothing: on failure no fd is left open. An open
   * socket keeps its namespace alive, so whoever holds one must close it when the namespace is
   * meant to go.
   */
  netnsSockets(netnsPath: string | null, specs: NetnsSocketSpec[]): { netnsIno: number; fds: number[] };
  /**
   * Receives up to `buf.length / slot` datagrams (256 at most) on non-blocking UDP socket `fd`
   * with one recvmmsg: message i into `buf[i*slot ...]`, its record into `meta` (UDP_META_SIZE
   * bytes each: see UdpMeta). Returns how many; 0 when none is queued.
   */
  udpRecvBatch(fd: number, buf: Buffer, slot: number, meta: Buffer): number;
  /**
   * Sends `count` datagrams with one sendmmsg: message i is `buf[offset, offset+length)` of
   * its record in `meta`, to its address. Returns how many went; -errno when the first failed.
   */
  udpSendBatch(fd: number, buf: Buffer, meta: Buffer, count: number): number;
}

/**
 * The size of one message record of udpRecvBatch/udpSendBatch, little endian: u32 offset, u32
 * length (0xffffffff: did not fit its slot), u16 family (2 IPv4, 10 IPv6), u16 port, u32 IPv6
 * scope id, 16 address bytes (IPv4 in the first 4).
 */
export const UDP_META_SIZE = 32;

/** One socket for `netnsSockets`: its type, the address and port to bind, and IP_FREEBIND. */
export interface NetnsSocketSpec {
  type: 'udp' | 'tcp';
  address: string;
  port: number;
  /** Bind even while the address is not up yet (IP_FREEBIND): a container's `lo` may come up later. */
  freebind?: boolean;
}

let binding: NativeBinding | undefined;

/** Returns the addon, loading it on first use so that commands which need no netlink skip it. */
export function native(): NativeBinding {
  if (!binding) {
    const file = typeof __CNIKIT_ADDON__ === 'string' ? __CNIKIT_ADDON__ : fileURLToPath(new URL('../native/build/Release/netns.node', import.meta.url));
    binding = createRequire(file)(file) as NativeBinding;
  }
  return binding;
}

/** Errors thrown by the addon and by netlink requests: a Node-style SystemError plus context. */
export interface SysError extends Error {
  code: string;
  errno: number;
  syscall?: string;
  op?: string;
  extack?: string;
}

/** True for an error with a SystemError's `code` and `errno`. */
export function isSysError(err: unknown): err is SysError {
  return err instanceof Error && typeof (err as SysError).code === 'string' && typeof (err as SysError).errno === 'number';
}

/** True when the kernel said the object is not there (ENODEV, ENOENT, ESRCH, EADDRNOTAVAIL). */
export function isNotFound(err: unknown): boolean {
  return isSysError(err) && (err.code === 'ENODEV' || err.code === 'ENOENT' || err.code === 'ESRCH' || err.code === 'EADDRNOTAVAIL');
}

/** True for EEXIST. */
export function isExists(err: unknown): boolean {
  return isSysError(err) && err.code === 'EEXIST';
}

/**
 * True when `err` or an error in its `cause` chain carries one of the errno `codes` (`'ETXTBSY'`,
 * `'EPERM'`): what to test instead of the message, which wrapping rewords.
 */
export function hasCode(err: unknown, ...codes: string[]): boolean {
  let cur: unknown = err;
  for (let depth = 0; cur instanceof Error && depth < 8; depth++) {
    const code = (cur as { code?: unknown }).code;
    if (typeof code === 'string' && codes.includes(code)) return true;
    cur = cur.cause;
  }
  return false;
}

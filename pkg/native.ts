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
  nlSend(fd: number, msg: Buffer): number;
  /** Returns one datagram, or null when nothing arrived within timeoutMs. */
  nlRecv(fd: number, timeoutMs: number): Buffer | null;
  sysctlWrite(netnsPath: string | null, key: string, value: string): void;
  sysctlRead(netnsPath: string | null, key: string): string;
  /** Takes a flock; with wait=false returns false instead of blocking when it is held. */
  flock(fd: number, exclusive: boolean, wait: boolean): boolean;
  funlock(fd: number): void;
  netnsCreate(path: string): void;
  netnsDelete(path: string): void;
  /**
   * Joins the netns on this thread and execs argv (never returns on success). With `binds`, the
   * command also gets a private mount namespace with /sys of the netns and each [src, dst]
   * bind-mounted (like `ip netns exec` does with /etc/netns/NAME/resolv.conf).
   */
  execInNetns(netnsPath: string, argv: string[], binds?: [string, string][]): never;
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

export function isSysError(err: unknown): err is SysError {
  return err instanceof Error && typeof (err as SysError).code === 'string' && typeof (err as SysError).errno === 'number';
}

export function isNotFound(err: unknown): boolean {
  return isSysError(err) && (err.code === 'ENODEV' || err.code === 'ENOENT' || err.code === 'ESRCH' || err.code === 'EADDRNOTAVAIL');
}

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

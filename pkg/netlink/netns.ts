/**
 * Netns: a network namespace named by a path (/run/netns/x, /proc/PID/ns/net), opened once and
 * checked to really be a namespace file. Its fd is what IFLA_NET_NS_FD takes to place a link in
 * it; a RouteHandle over a socket opened there talks to it. Nothing here ever enters a namespace.
 */
import { closeSync, fstatSync, openSync, statSync, statfsSync } from 'node:fs';
import { CniCode, CniError } from '../cni/errors.ts';

const NSFS_MAGIC = 0x6e736673;
const PROC_SUPER_MAGIC = 0x9fa0;

export class Netns {
  readonly path: string;
  readonly fd: number;
  private constructor(path: string, fd: number) {
    this.path = path;
    this.fd = fd;
  }

  /**
   * Opens the namespace at `path`. Throws CniError 3 (unknown container) when it does not exist,
   * 8 when it is not a namespace file or is the plugin's own namespace (unless
   * CNI_NETNS_OVERRIDE=1 in the call's `env`, as upstream).
   */
  static open(path: string, env: NodeJS.ProcessEnv): Netns {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'ENOENT') throw new CniError(CniCode.UnknownContainer, `failed to open netns "${path}"`, 'no such file: the container\'s network namespace is gone', { cause: err });
      throw new CniError(CniCode.InvalidNetns, `failed to open netns "${path}"`, String((err as Error).message), { cause: err });
    }
    try {
      const type = statfsSync(path).type;
      if (type !== NSFS_MAGIC && type !== PROC_SUPER_MAGIC) {
        throw new CniError(CniCode.InvalidNetns, `"${path}" is not a network namespace`, 'CNI_NETNS must be a netns path such as /run/netns/NAME or /proc/PID/ns/net');
      }
      if (env.CNI_NETNS_OVERRIDE !== '1') {
        const own = statSync('/proc/self/ns/net');
        const st = fstatSync(fd);
        if (own.ino === st.ino && own.dev === st.dev) {
          throw new CniError(CniCode.InvalidNetns, 'netns is the plugin\'s own namespace', `CNI_NETNS="${path}" is the namespace the plugin runs in; a container needs its own`);
        }
      }
    } catch (err) {
      closeSync(fd);
      throw err;
    }
    return new Netns(path, fd);
  }

  private closed = false;

  /**
   * Closes the namespace fd; a second call does nothing. Why the flag and not a caught EBADF:
   * fd numbers are reused at once, and threads of one process (ava's workers, the engine's
   * libuv pool) share them, so a second close() would close whatever file got that number in
   * between, e.g. another thread's socket or event loop.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeSync(this.fd);
  }
}

/** True when `path` exists (a DEL with a vanished namespace has nothing to undo in it). */
export function netnsExists(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * `cnikit __exec-in-netns <netns-path> -- CMD [ARGS...]`: the helper process that `run` and
 * `demo` spawn to start a command inside a namespace, the way `ip netns exec` does for the
 * network part: the native addon joins the namespace on this thread and execs CMD, so the
 * command replaces this process (same PID, so signals and exit status pass straight through).
 * No `ip` or `nsenter` is involved. With `--bind SRC DST` pairs (what `run` passes for the
 * network's resolv.conf and the container's hosts file) the command also gets a private mount
 * namespace with /sys of the netns and those files, as `ip netns exec` gives with /etc/netns/.
 */
import { native } from '../pkg/native.ts';

/**
 * Joins the namespace and execs the command; returns only on failure, with the exit code to use.
 * argv: `<netns-path> [--bind SRC DST]... -- CMD [ARGS...]`; binds give the command a private
 * mount namespace with those files mounted (run's resolv.conf and hosts).
 */
export function execInNetnsMain(argv: string[]): number {
  const [path, ...rest] = argv;
  const binds: [string, string][] = [];
  let i = 0;
  while (rest[i] === '--bind' && rest[i + 1] && rest[i + 2]) {
    binds.push([rest[i + 1]!, rest[i + 2]!]);
    i += 3;
  }
  const cmd = rest.slice(i + 1);
  if (!path || rest[i] !== '--' || cmd.length === 0) {
    process.stderr.write('usage: cnikit __exec-in-netns <netns-path> [--bind SRC DST]... -- CMD [ARGS...]\n');
    return 2;
  }
  // The addon restores what Node changed (close-on-exec stdio, ignored SIGPIPE/SIGXFSZ,
  // the signal mask) just before exec, so CMD starts as it would under a shell.
  try {
    native().execInNetns(path, cmd, binds);
  } catch (err) {
    const e = err as { code?: string; syscall?: string; message?: string };
    if (e.syscall === 'execvp') {
      process.stderr.write(`cnikit: cannot run "${cmd[0]}": ${e.code === 'ENOENT' ? 'command not found' : e.message}\n`);
      return e.code === 'ENOENT' ? 127 : 126;
    }
    process.stderr.write(`cnikit: cannot enter network namespace ${path}: ${e.message}\n`);
    return 125;
  }
  return 125;
}

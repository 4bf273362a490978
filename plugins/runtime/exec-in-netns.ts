/**
 * `cnikit __exec-in-netns <netns-path> -- CMD [ARGS...]`: the helper process that `run` and
 * `demo` spawn to start a command inside a namespace, the way `ip netns exec` does for the
 * network part: the native addon joins the namespace on this thread and execs CMD, so the
 * command replaces this process (same PID, so signals and exit status pass straight through).
 * No `ip` or `nsenter` is involved. It does not make a mount namespace: /etc/resolv.conf and
 * /sys are the host's.
 */
import { native } from '../core/native.ts';

/** Joins the namespace and execs the command; returns only on failure, with the exit code to use. */
export function execInNetnsMain(argv: string[]): number {
  const [path, sep, ...cmd] = argv;
  if (!path || sep !== '--' || cmd.length === 0) {
    process.stderr.write('usage: cnikit __exec-in-netns <netns-path> -- CMD [ARGS...]\n');
    return 2;
  }
  // The addon restores what Node changed (close-on-exec stdio, ignored SIGPIPE/SIGXFSZ,
  // the signal mask) just before exec, so CMD starts as it would under a shell.
  try {
    native().execInNetns(path, cmd);
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

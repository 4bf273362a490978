/**
 * How every cnikit subcommand ends: `act()` wraps its action so that an error is printed once,
 * with a hint saying what to do, and the exit status is set in one place (exit-codes.ts). An
 * action returns nothing, or the status of what it ran (`run`: its command's; `demo`: the
 * tour's); it never sets process.exitCode itself.
 *
 * Hints are chosen by the error's reason and CNI code, never by its message.
 */
import { type Command, CommanderError } from 'commander';
import { CniCode, CniError, errorText } from '../pkg/cni/errors.ts';
import { SUPPORTED_VERSIONS } from '../pkg/cni/version.ts';
import { ExitCode, exitCodeFor } from './exit-codes.ts';
import { selfDir } from './self.ts';

/** What to do about an error, in one line (or undefined when the message says it all). */
function hintFor(err: unknown, code: ExitCode, command: string | undefined): string | undefined {
  if (code === ExitCode.Permission) return 'run as root: CNI plugins need CAP_NET_ADMIN and CAP_SYS_ADMIN';
  if (!(err instanceof CniError)) return undefined;
  switch (err.reason) {
    case 'plugin-not-found': return `point CNI_PATH or --cni-path at the plugin directory (cnikit's plugins are in ${selfDir()})`;
    case 'not-cached':
      return command === 'inspect' ? '`cnikit ls` lists them (is --cache-dir / CNI_CACHE_DIR the same as at ADD?)'
        : 'cnitool derives the container id from the netns path; pass the same path, or --container-id (see `cnikit ls`)';
    default: break;
  }
  // A plugin reports a netns it cannot open as 3 (gone) or 8 (not a netns, or its own).
  if (err.code === CniCode.InvalidNetns || err.code === CniCode.UnknownContainer) return 'check the netns path; create one with e.g. `ip netns add ctr1` and pass /run/netns/ctr1';
  if (err.code === CniCode.IncompatibleVersion) return `set "cniVersion" in the config to a version all its plugins support (cnikit speaks ${SUPPORTED_VERSIONS.join(', ')})`;
  return undefined;
}

/** Prints an error (with its hint) on stderr and returns the exit code for it. */
export function report(err: unknown, command?: string): ExitCode {
  const code = exitCodeFor(err, command);
  if (err instanceof CommanderError) {
    process.stderr.write(`cnikit: ${err.message.replace(/^error: /, '')}\n`);
    return code;
  }
  process.stderr.write(`cnikit: ${errorText(err)}\n`);
  const hint = hintFor(err, exitCodeFor(err), command);
  if (hint) process.stderr.write(`  hint: ${hint}\n`);
  if (process.env.CNIKIT_DEBUG && err instanceof Error) process.stderr.write(`${err.stack ?? ''}\n`);
  return code;
}

/**
 * Wraps a commander action: its errors are reported once, and its result (or Ok) becomes the
 * exit status. Commander passes the positional arguments, the options and the Command itself.
 */
export function act<A extends unknown[]>(fn: (...args: A) => Promise<number | void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    const cmd = args[args.length - 1] as Command;
    try {
      process.exitCode = (await fn(...args)) ?? ExitCode.Ok;
    } catch (err) {
      process.exitCode = report(err, cmd.name());
    }
  };
}

/**
 * The exit codes of the cnikit command, in one place. cnitool exits 1 on any error; cnikit keeps
 * 1 for "a plugin or the runtime failed" and gives the other outcomes a code of their own, so a
 * script can tell a typo from a broken network. `cnikit run` exits with its command's status,
 * like `docker run`, and uses 125-127 for its own failures around it.
 *
 * The code of an error comes from its CNI code, its typed `reason` and the errno codes in its
 * cause chain, never from its message, so rewording a message cannot change an exit status.
 */
import { CommanderError } from 'commander';
import { CniCode, CniError } from '../pkg/cni/errors.ts';
import { hasCode } from '../pkg/native.ts';

/** Every exit status the cnikit command uses. */
export const ExitCode = {
  /** Done. */
  Ok: 0,
  /** A plugin or the runtime reported an error (the message says which). */
  Failure: 1,
  /** The command line was wrong (unknown option, bad value, missing argument). */
  Usage: 2,
  /** The network config was not found or is invalid. */
  Config: 3,
  /** `status`: the network cannot take new containers now (plugin code 50/51). */
  NotAvailable: 4,
  /** No such attachment (nothing cached for that container/ifname, `inspect ID` matched nothing) or container. */
  NotFound: 5,
  /** Permission denied: CNI needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN). */
  Permission: 6,
  /** Taken or in use: a network name, bridge, subnet or host port that exists; a network with attachments. */
  Conflict: 7,
  /** `run`: cnikit failed before the command could start (the netns was cleaned up). */
  RunSetup: 125,
  /** `run`: the command was found but could not be executed. */
  CannotExecute: 126,
  /** `run`: the command was not found. */
  CommandNotFound: 127,
  /** Interrupted by a signal (Ctrl-C) after everything was torn down; 128 + SIGINT. */
  Interrupted: 130,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** The text `--help` shows under "Exit codes". */
export const EXIT_CODES_HELP = `Exit codes:
  0    success
  1    a plugin or the runtime failed (see the message)
  2    bad command line
  3    network config not found or invalid
  4    status: the network cannot take new containers (plugin code 50/51)
  5    no such attachment (nothing cached for it) or container
  6    permission denied (run as root)
  7    already exists or in use (network name, bridge, subnet, host port; a network with attachments)
  125  run: setup failed before the command started
  126  run: command cannot be executed
  127  run: command not found
  130  interrupted (Ctrl-C), after cleaning up
  run otherwise exits with its command's status.`;

/**
 * Maps an error to the exit code the CLI uses for it. `command` is the subcommand that failed:
 * for `run`, any error is a setup failure (the command never started).
 */
export function exitCodeFor(err: unknown, command?: string): ExitCode {
  if (err instanceof CommanderError) return err.exitCode === 0 ? ExitCode.Ok : ExitCode.Usage;
  if (command === 'run') return ExitCode.RunSetup;
  if (hasCode(err, 'EPERM', 'EACCES')) return ExitCode.Permission;
  if (!(err instanceof CniError)) return ExitCode.Failure;
  if (err.code === CniCode.NotAvailable || err.code === CniCode.NotAvailableLosingConnectivity) return ExitCode.NotAvailable;
  switch (err.reason) {
    case 'permission': return ExitCode.Permission;
    case 'config-not-found':
    case 'config-invalid': return ExitCode.Config;
    case 'not-cached':
    case 'not-found': return ExitCode.NotFound;
    case 'conflict': return ExitCode.Conflict;
    case 'plugin-not-found':
    case undefined: return ExitCode.Failure;
  }
}

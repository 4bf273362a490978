/**
 * The cnikit command (commander): cnitool's verbs with cnitool's environment, plus `network`
 * (create/ls/inspect/rm/prune), `run`, `ps`, `connect`/`disconnect`, `ls`, `inspect`, `install`,
 * `demo` and `dns serve`, one file per verb in commands/. Each parses its
 * arguments, calls the runtime library (runtime/) and prints; errors are printed once, with a
 * hint (act.ts), and exit codes come from exit-codes.ts.
 *
 * cnitool compatibility: `cnikit add|check|del <network> <netns-path>` reads NETCONFPATH,
 * CNI_PATH, CNI_IFNAME (empty = eth0), CNI_ARGS, CAP_ARGS, and derives the container id from the
 * netns path exactly as cnitool does, so either tool can DEL what the other added. Extras: each
 * variable also has a flag; CNI_CONTAINERID/CNI_CACHE_DIR are honoured; `<network>` may be a
 * path to a config file; with CNI_PATH unset the directory cnikit lives in comes first.
 */
import { Command, CommanderError } from 'commander';
import { SUPPORTED_VERSIONS } from '../pkg/cni/version.ts';
import { report } from './act.ts';
import * as add from './commands/add.ts';
import * as check from './commands/check.ts';
import * as connect from './commands/connect.ts';
import * as del from './commands/del.ts';
import * as demo from './commands/demo.ts';
import * as dns from './commands/dns.ts';
import * as engine from './commands/engine.ts';
import * as gc from './commands/gc.ts';
import * as inspect from './commands/inspect.ts';
import * as install from './commands/install.ts';
import * as ls from './commands/ls.ts';
import * as network from './commands/network.ts';
import * as ps from './commands/ps.ts';
import * as run from './commands/run.ts';
import * as status from './commands/status.ts';
import { EXIT_CODES_HELP, exitCodeFor } from './exit-codes.ts';
import { ENV_HELP } from './options.ts';

const VERSION = '0.1.0';

/** The subcommands, in the order `--help` lists them. */
const COMMANDS = [add, del, check, status, gc, ls, inspect, network, run, ps, connect, install, demo, dns, engine];

/** Builds the commander program. */
export function buildProgram(): Command {
  const program = new Command('cnikit')
    .description('A CNI runtime (cnitool-compatible) and the cnikit plugins: bridge, host-local, portmap, dnsname.')
    .version(`cnikit ${VERSION} (CNI spec ${SUPPORTED_VERSIONS.join(', ')})`, '-V, --version')
    .enablePositionalOptions()
    .showHelpAfterError('(add --help for usage and examples)')
    .exitOverride()
    .addHelpText('after', `
Start here:
  $ sudo cnikit demo                 a two-minute tour in throwaway namespaces (host untouched)

Examples:
  $ sudo cnikit network create web
  $ sudo cnikit run --network web --name app -p 8080:80 -- python3 -m http.server 80
  $ cnikit ps
  $ sudo ip netns add ctr1
  $ sudo NETCONFPATH=conf cnikit add cnikit /run/netns/ctr1
  $ sudo NETCONFPATH=conf cnikit del cnikit /run/netns/ctr1
  $ sudo cnikit ls
${ENV_HELP}

${EXIT_CODES_HELP}`);
  for (const c of COMMANDS) c.register(program);
  return program;
}

/** Runs the CLI with `argv` (process.argv form). */
export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    // Commander printed its own usage errors (and help) already; only the status is left to set.
    process.exitCode = err instanceof CommanderError ? exitCodeFor(err) : report(err);
  }
}

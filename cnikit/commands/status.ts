/**
 * `cnikit status <network>`: asks every plugin of the network whether it can take new containers
 * (STATUS). Exits 4 when one says no (CNI code 50/51); lists before 1.1.0 have no STATUS.
 */
import type { Command } from 'commander';
import { act } from '../act.ts';
import { type CniOptions, ENV_HELP, networkOf, openRuntime, withCniOptions } from '../options.ts';
import { progressReporter } from '../progress.ts';

const HELP = `
Examples:
  $ sudo cnikit status mynet && echo ready
Exits 4 when a plugin says the network is not available (CNI code 50/51). Lists before
cniVersion 1.1.0 have no STATUS; then nothing is asked and the exit code is 0.${ENV_HELP}`;

export function register(program: Command): void {
  const cmd = withCniOptions(program.command('status').description('ask every plugin of a network whether it can take new containers (STATUS)')
    .argument('<network>', 'network name or config file').argument('[netns-path]', 'accepted for cnitool compatibility; unused'));
  cmd.addHelpText('after', HELP);
  cmd.action(act(async (network: string, _netns: string | undefined, o: CniOptions) => {
    const list = await networkOf(o, network);
    const p = progressReporter(o);
    const asked = await (await openRuntime(o, p.onEvent)).status(list).finally(p.done);
    process.stdout.write(asked ? `network "${list.name}": available\n` : `network "${list.name}": cniVersion ${list.cniVersion} has no STATUS (needs 1.1.0); nothing asked\n`);
  }));
}

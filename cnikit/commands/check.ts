/**
 * `cnikit check <network> <netns-path>`: cnitool's check. CHECKs the chain in order with the
 * cached result; exits 5 when nothing is cached for the attachment.
 */
import type { Command } from 'commander';
import { act } from '../act.ts';
import { type CniOptions, ENV_HELP, networkOf, openRuntime, runtimeConfOf, withCniOptions } from '../options.ts';
import { progressReporter } from '../progress.ts';

const HELP = `
Examples:
  $ sudo cnikit check mynet /run/netns/ctr1 && echo healthy
Needs cniVersion 0.4.0 or later and a cached ADD result.${ENV_HELP}`;

export function register(program: Command): void {
  const cmd = withCniOptions(program.command('check').description('check that an attachment is still as ADD made it (CHECK the chain)')
    .argument('<network>', 'network name in NETCONFPATH, or a path to a .conflist/.conf file')
    .argument('<netns-path>', 'network namespace path, e.g. /run/netns/ctr1'), { attachment: true });
  cmd.addHelpText('after', HELP);
  cmd.action(act(async (network: string, netns: string, o: CniOptions) => {
    const conf = runtimeConfOf(o, netns);
    const list = await networkOf(o, network);
    const p = progressReporter(o);
    const rt = await openRuntime(o, p.onEvent);
    await rt.check(list, conf).finally(p.done);
    if (o.verbose) process.stderr.write(`cnikit: check ${list.name} ${conf.containerId} ${conf.ifName}: ok\n`);
  }));
}

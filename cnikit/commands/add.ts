/**
 * `cnikit add <network> <netns-path>`: cnitool's add. Attaches the namespace to the network
 * (ADD through the whole chain), caches the result in libcni's format and prints it.
 */
import type { Command } from 'commander';
import type { Result } from '../../pkg/cni/result.ts';
import { act } from '../act.ts';
import { type CniOptions, ENV_HELP, networkOf, openRuntime, runtimeConfOf, withCniOptions } from '../options.ts';
import { progressReporter } from '../progress.ts';

const HELP = `
Examples:
  $ sudo ip netns add ctr1 && sudo cnikit add mynet /run/netns/ctr1
  $ sudo cnikit add conf/10-cnikit.conflist /run/netns/ctr1 --format table
  $ sudo CAP_ARGS='{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]}' cnikit add mynet /run/netns/ctr1
  $ sudo cnikit add mynet /run/netns/ctr1 --args 'IgnoreUnknown=1;K8S_POD_NAME=web'
The result is cached in <cache-dir>/results/<network>-<container-id>-<ifname> (libcni's format).${ENV_HELP}`;

async function printResult(o: CniOptions, r: Result): Promise<void> {
  if (o.format === 'table') {
    const { resultTable } = await import('../format.ts');
    process.stdout.write(resultTable(r));
  } else {
    const { formatResult } = await import('../../pkg/cni/result.ts');
    process.stdout.write(JSON.stringify(formatResult(r, r.cniVersion), null, 4) + '\n');
  }
}

export function register(program: Command): void {
  const cmd = withCniOptions(program.command('add').description('attach a network namespace to a network (ADD the whole chain) and print the result')
    .argument('<network>', 'network name in NETCONFPATH, or a path to a .conflist/.conf file')
    .argument('<netns-path>', 'network namespace path, e.g. /run/netns/ctr1'), { attachment: true, format: true });
  cmd.addHelpText('after', HELP);
  cmd.action(act(async (network: string, netns: string, o: CniOptions) => {
    const conf = runtimeConfOf(o, netns);
    const list = await networkOf(o, network);
    const p = progressReporter(o);
    const rt = await openRuntime(o, p.onEvent);
    const r = await rt.add(list, conf).finally(p.done);
    await printResult(o, r);
    if (o.verbose) process.stderr.write(`cnikit: add ${list.name} ${conf.containerId} ${conf.ifName}: ok\n`);
  }));
}

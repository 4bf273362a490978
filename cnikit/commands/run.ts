/**
 * `cnikit run [options] -- CMD...`: a command in a new network namespace attached to a network,
 * detached and deleted when it ends (run.ts does the work). Exits with the command's status;
 * 125-127 and 130 are cnikit's own (exit-codes.ts).
 */
import { type Command, Option } from 'commander';
import type { PortMapping } from '../../pkg/cni/capabilities.ts';
import { act } from '../act.ts';
import { type CniOptions, ENV_HELP, cacheDirOf, cniPathOf, netconfDirOf, withCniOptions } from '../options.ts';
import { collectName, parseArgsEnv, parseCapArgs, parseName, parsePublish } from '../parse.ts';

/** Where `ip netns` keeps named namespaces, and `run` pins its own. */
const DEFAULT_NETNS_DIR = '/run/netns';

const HELP = `
Examples:
  $ sudo cnikit run -- ip addr
  $ sudo cnikit run --network cnikit --name web -p 8080:80 -- python3 -m http.server 80
  $ sudo cnikit run --name db --alias postgres -- sleep infinity
On a network with DNS (dnsname) the command gets the network's resolv.conf, so other
containers are found by name (curl http://web/); with --name it also gets an /etc/hosts entry.
Ctrl-C stops the command; the network and namespace are removed whatever way it ends. Exit
status is the command's.${ENV_HELP}`;

interface RunCliOptions extends CniOptions { network?: string; name?: string; publish?: PortMapping[]; alias?: string[]; netnsDir: string }

export function register(program: Command): void {
  const cmd = withCniOptions(program.command('run').description('run a command in a new network namespace attached to a network; detach and delete it on exit')
    .argument('<command...>', 'the command and its arguments (put them after --)')
    .option('--network <name>', 'network name or config file (default: the first network in NETCONFPATH)')
    .option('--name <name>', 'container name: K8S_POD_NAME for the plugins, the DNS name on networks with dnsname', parseName)
    .option('-p, --publish <[hostip:]host:container[/proto]>', 'publish a port (repeatable), needs portmap in the chain', parsePublish)
    .option('--alias <name>', 'extra DNS name (repeatable)', collectName)
    .addOption(new Option('--netns-dir <dir>', 'where the namespace is pinned').default(DEFAULT_NETNS_DIR))
    .passThroughOptions(), { attachment: true });
  cmd.addHelpText('after', HELP);
  cmd.action(act(async (command: string[], o: RunCliOptions) => {
    const { runContainer } = await import('../run.ts');
    return runContainer({
      network: o.network, name: o.name, publish: o.publish ?? [], aliases: o.alias ?? [], ifName: o.ifname || 'eth0',
      netnsDir: o.netnsDir, netconfPath: netconfDirOf(o), cniPath: cniPathOf(o.cniPath), cacheDir: cacheDirOf(o),
      args: parseArgsEnv(o.args), capabilityArgs: parseCapArgs(o.capArgs), containerId: o.containerId, quiet: !!o.quiet, verbose: !!o.verbose,
    }, command);
  }));
}

/**
 * `cnikit run [options] -- CMD...`: a command in a new network namespace attached to networks,
 * detached and deleted when it ends (run.ts does the work). Exits with the command's status;
 * 125-127 and 130 are cnikit's own (exit-codes.ts).
 */
import { type Command, Option } from 'commander';
import { act } from '../act.ts';
import { DEFAULT_NETNS_DIR } from '../defaults.ts';
import { type CniOptions, ENV_HELP, cacheDirOf, cniPathOf, netconfDirOf, stateDirOf, stateDirOption, withCniOptions } from '../options.ts';
import { collect, collectAddHost, collectAddress, collectName, parseArgsEnv, parseCapArgs, parseMac, parseName } from '../parse.ts';
import { type PublishRequest, parsePublish } from '../ports.ts';

const HELP = `
Examples:
  $ sudo cnikit run -- ip addr
  $ sudo cnikit run --network web --name app -p 8080:80 -- python3 -m http.server 80
  $ sudo cnikit run --network web --network db --name app -- sh     eth0 on web, eth1 on db
  $ sudo cnikit run -p 80 -p 127.0.0.1:5353:53/udp -- ...          80 gets a free host port
  $ sudo cnikit run --network host -- ss -tln                      the caller's namespace
  $ sudo cnikit run --network none --add-host db:192.0.2.5 -- sh   lo only
On networks with DNS (dnsname) the command gets their resolv.conf, so other containers are
found by name (curl http://web/); --dns/--dns-search replace it. /etc/hosts holds its names
and --add-host entries. --ip goes to the network whose subnet holds it, --mac to the first.
Ctrl-C stops the command; its networks and namespace are removed whatever way it ends, and
\`cnikit ps\` lists it while it runs. Exit status is the command's.${ENV_HELP}`;

interface RunCliOptions extends CniOptions {
  network?: string[]; name?: string; publish?: PublishRequest[]; alias?: string[]; ip?: string[]; ip6?: string[]; mac?: string;
  dns?: string[]; dnsSearch?: string[]; dnsOption?: string[]; addHost?: [string, string][]; netnsDir: string; stateDir?: string;
}

export function register(program: Command): void {
  const cmd = withCniOptions(program.command('run').description('run a command in a new network namespace attached to networks; detach and delete it on exit')
    .argument('<command...>', 'the command and its arguments (put them after --)')
    .option('--network <name>', 'network name or config file, or host, or none (repeatable: eth0, eth1, ...; default: the first network in NETCONFPATH)', collect)
    .option('--name <name>', 'container name: K8S_POD_NAME for the plugins, the DNS name on networks with dnsname', parseName)
    .option('-p, --publish <[ip:][hostport:]port[/proto]>', 'publish a port (repeatable; ranges; no host port = a free one), needs portmap in the chain', parsePublish)
    .option('--alias <name>', 'extra DNS name (repeatable)', collectName)
    .option('--ip <addr>', 'static IPv4 address (the ips capability)', collectAddress(4))
    .option('--ip6 <addr>', 'static IPv6 address (the ips capability)', collectAddress(6))
    .option('--mac <addr>', 'MAC address of the first interface (the mac capability)', parseMac)
    .option('--dns <ip>', 'nameserver for the command\'s resolv.conf instead of the networks\' (repeatable)', collectAddress())
    .option('--dns-search <domain>', 'search domain instead of the networks\' (repeatable)', collect)
    .option('--dns-option <opt>', 'resolv.conf option, e.g. ndots:2 (repeatable)', collect)
    .option('--add-host <name:ip>', 'an /etc/hosts entry for the command (repeatable)', collectAddHost)
    .addOption(new Option('--netns-dir <dir>', 'where the namespace is pinned').default(DEFAULT_NETNS_DIR))
    .addOption(stateDirOption())
    .passThroughOptions(), { attachment: true });
  cmd.addHelpText('after', HELP);
  cmd.action(act(async (command: string[], o: RunCliOptions) => {
    const { runContainer } = await import('../run.ts');
    return runContainer({
      networks: o.network ?? [], name: o.name, publish: o.publish ?? [], aliases: o.alias ?? [], ips: [...(o.ip ?? []), ...(o.ip6 ?? [])], mac: o.mac,
      dns: o.dns ?? [], dnsSearch: o.dnsSearch ?? [], dnsOption: o.dnsOption ?? [], addHosts: o.addHost ?? [], ifName: o.ifname || undefined,
      netnsDir: o.netnsDir, stateDir: stateDirOf(o), netconfPath: netconfDirOf(o), cniPath: cniPathOf(o.cniPath), cacheDir: cacheDirOf(o),
      args: parseArgsEnv(o.args), capabilityArgs: parseCapArgs(o.capArgs), containerId: o.containerId, quiet: !!o.quiet, verbose: !!o.verbose,
    }, command);
  }));
}

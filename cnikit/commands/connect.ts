/**
 * `cnikit connect NETWORK CONTAINER` and `cnikit disconnect NETWORK CONTAINER`: attach a running
 * `cnikit run` container to one more network (the next free ethN) or detach it from one
 * (containers/connect.ts does the work). Its record, resolv.conf and hosts follow.
 */
import type { Command } from 'commander';
import { act } from '../act.ts';
import { type CniOptions, ENV_HELP, netconfDirOf, openRuntime, stateDirOf, stateDirOption, withCniOptions } from '../options.ts';
import { collectAddress, collectName } from '../parse.ts';
import { progressReporter } from '../progress.ts';

const CONNECT_HELP = `
Examples:
  $ sudo cnikit run --network web --name app -- sleep infinity &
  $ sudo cnikit connect db app                 app gets eth1 on db, and db's DNS
  $ sudo cnikit connect db app --ip 10.89.1.50 --alias api
  $ sudo cnikit disconnect db app
CONTAINER is a name, an id or a unique id prefix (\`cnikit ps\`).${ENV_HELP}`;

interface ConnectCliOptions extends CniOptions { stateDir?: string; ip?: string[]; ip6?: string[]; alias?: string[]; json?: boolean }

/** The results cache the container's `cnikit run` uses, unless --cache-dir says otherwise: its teardown DELs from there. */
async function cacheDirFor(o: ConnectCliOptions, container: string): Promise<string | undefined> {
  if (o.cacheDir) return o.cacheDir;
  const { StateDir } = await import('../containers/state.ts');
  return new StateDir(stateDirOf(o)).find(container).cacheDir;
}

export function register(program: Command): void {
  const connect = withCniOptions(program.command('connect').description('attach a running container to a network (next free ethN)')
    .argument('<network>', 'network name or config file').argument('<container>', 'name or id (see `cnikit ps`)')
    .option('--ip <addr>', 'static IPv4 address on this network', collectAddress(4))
    .option('--ip6 <addr>', 'static IPv6 address on this network', collectAddress(6))
    .option('--alias <name>', 'extra DNS name on this network (repeatable)', collectName)
    .addOption(stateDirOption())
    .option('--json', 'print the new attachment as JSON'));
  connect.addHelpText('after', CONNECT_HELP);
  connect.action(act(async (network: string, container: string, o: ConnectCliOptions) => {
    const { connectContainer } = await import('../containers/connect.ts');
    const p = progressReporter(o);
    const rt = await openRuntime({ ...o, cacheDir: await cacheDirFor(o, container) }, p.onEvent);
    const { state, attachment: a } = await connectContainer(rt, {
      stateDir: stateDirOf(o), netconfPath: netconfDirOf(o), network, container, ips: [...(o.ip ?? []), ...(o.ip6 ?? [])], aliases: o.alias ?? [],
    }).finally(p.done);
    if (o.json) process.stdout.write(JSON.stringify(a, null, 2) + '\n');
    else process.stdout.write(`connected ${state.name ?? state.id} to "${a.network}": ${a.ifName} ${a.addresses.join(', ') || 'no addresses'}${a.dns ? `; DNS ${a.dns.nameservers.join(', ')}` : ''}\n`);
  }));

  const disconnect = withCniOptions(program.command('disconnect').description('detach a running container from a network')
    .argument('<network>', 'network name').argument('<container>', 'name or id (see `cnikit ps`)')
    .addOption(stateDirOption()));
  disconnect.addHelpText('after', CONNECT_HELP);
  disconnect.action(act(async (network: string, container: string, o: ConnectCliOptions) => {
    const { disconnectContainer } = await import('../containers/connect.ts');
    const p = progressReporter(o);
    const rt = await openRuntime({ ...o, cacheDir: await cacheDirFor(o, container) }, p.onEvent);
    const { state, attachment: a } = await disconnectContainer(rt, { stateDir: stateDirOf(o), netconfPath: netconfDirOf(o), network, container }).finally(p.done);
    process.stdout.write(`disconnected ${state.name ?? state.id} from "${a.network}" (${a.ifName})\n`);
  }));
}

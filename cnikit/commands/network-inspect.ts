/**
 * `cnikit network inspect NAME...`: a network's conflist and its live attachments (container,
 * interface, addresses, names, ports) from the results cache and `cnikit run`'s records.
 */
import { type Command, Option } from 'commander';
import { DEFAULT_NETCONF_PATH } from '../../runtime/defaults.ts';
import { act } from '../act.ts';
import { cacheDirOf, cacheDirOption, stateDirOf, stateDirOption } from '../options.ts';

const HELP = `
Examples:
  $ cnikit network inspect web
  $ cnikit network inspect web --json | jq '.[0].attachments[].addresses'`;

interface InspectOptions { netconfPath?: string; cacheDir?: string; stateDir?: string; json?: boolean }

export function register(network: Command): void {
  const cmd = network.command('inspect').description('show networks in detail: config and live attachments')
    .argument('<name...>', 'network names')
    .addOption(new Option('--netconf-path <dir>', `directory of network configs (default: ${DEFAULT_NETCONF_PATH})`).env('NETCONFPATH'))
    .addOption(cacheDirOption()).addOption(stateDirOption())
    .option('--json', 'print JSON');
  cmd.addHelpText('after', HELP);
  cmd.action(act(async (names: string[], o: InspectOptions) => {
    const [{ findNetwork, readNetworkFiles }, { ResultsCache }, { StateDir }, { attachmentsOf, attachmentLabel }] = await Promise.all([
      import('../network/store.ts'), import('../../runtime/cache.ts'), import('../containers/state.ts'), import('../network/attachments.ts')]);
    const dir = o.netconfPath || DEFAULT_NETCONF_PATH;
    const cached = new ResultsCache(cacheDirOf(o)).list();
    const live = new StateDir(stateDirOf(o)).listLive().live;
    const files = readNetworkFiles(dir);
    const out = names.map((name) => {
      const n = findNetwork(dir, name);
      return { ...n, config: files.find((f) => f.file === n.file)?.raw, attachments: attachmentsOf(name, cached, live) };
    });
    if (o.json) return void process.stdout.write(JSON.stringify(out, null, 2) + '\n');
    for (const n of out) {
      const lines = [
        `${n.name} (${n.file})${n.cnikit ? `, created by cnikit ${n.cnikit.created}` : ''}`,
        `  subnets:     ${n.subnets.join(', ') || '-'}`,
        `  bridge:      ${n.bridge ?? '-'}${n.internal ? ' (internal)' : ''}`,
        `  chain:       ${n.types.join(' -> ')}`,
        `  isolation:   ${n.isolation ?? '(no firewall plugin)'}`,
        `  dns:         ${n.dns ? `${n.dns.domain} (resolver ${n.dns.resolver})` : '-'}`,
        `  labels:      ${Object.entries(n.cnikit?.labels ?? {}).map(([k, v]) => `${k}=${v}`).join(', ') || '-'}`,
        `  attachments: ${n.attachments.length || 'none'}`,
        ...n.attachments.map((a) => `    ${attachmentLabel(a)}: ${a.addresses.join(', ') || '-'}${a.names.length ? `; names ${a.names.join(', ')}` : ''}${a.ports.length ? `; ports ${a.ports.join(', ')}` : ''}${a.pid ? `; pid ${a.pid}` : ''}`),
      ];
      process.stdout.write(lines.join('\n') + '\n');
    }
  }));
}

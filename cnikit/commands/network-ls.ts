/**
 * `cnikit network ls`: every network in NETCONFPATH (cnikit's and anyone else's) with its subnets,
 * bridge, number of attachments (results cache) and DNS, as a table or JSON.
 */
import { type Command, Option } from 'commander';
import { DEFAULT_NETCONF_PATH } from '../../runtime/defaults.ts';
import { act } from '../act.ts';
import { cacheDirOf, cacheDirOption } from '../options.ts';

const HELP = `
Examples:
  $ cnikit network ls
  $ cnikit network ls --json | jq -r '.[] | select(.attachments == 0) | .name'
Files that do not parse are reported on stderr and skipped.`;

interface LsOptions { netconfPath?: string; cacheDir?: string; json?: boolean; format: 'table' | 'json' }

export function register(network: Command): void {
  const cmd = network.command('ls').alias('list').description('list networks: subnets, bridge, attachments, DNS')
    .addOption(new Option('--netconf-path <dir>', `directory of network configs (default: ${DEFAULT_NETCONF_PATH})`).env('NETCONFPATH'))
    .addOption(cacheDirOption())
    .addOption(new Option('--format <fmt>', 'output format').choices(['table', 'json']).default('table'))
    .option('--json', 'the same as --format json');
  cmd.addHelpText('after', HELP);
  cmd.action(act(async (o: LsOptions) => {
    const [{ networkSummaries }, { ResultsCache }, { table }] = await Promise.all([import('../network/store.ts'), import('../../runtime/cache.ts'), import('../format.ts')]);
    const nets = networkSummaries(o.netconfPath || DEFAULT_NETCONF_PATH, (f) => process.stderr.write(`cnikit: warning: skipping ${f.file}: ${f.problem}\n`));
    const cached = new ResultsCache(cacheDirOf(o)).list();
    const rows = nets.map((n) => ({
      name: n.name, subnets: n.subnets, bridge: n.bridge ?? null, attachments: cached.filter((c) => c.networkName === n.name).length,
      dns: n.dns ?? null, internal: n.internal, isolation: n.isolation ?? null, createdByCnikit: !!n.cnikit, labels: n.cnikit?.labels ?? {}, file: n.file,
    }));
    if (o.json || o.format === 'json') return void process.stdout.write(JSON.stringify(rows, null, 2) + '\n');
    if (!rows.length) return void process.stdout.write('no networks\n');
    process.stdout.write(table(['NAME', 'SUBNETS', 'BRIDGE', 'ATTACHMENTS', 'DNS'], rows.map((r) => [
      r.name + (r.internal ? ' (internal)' : ''), r.subnets.join(',') || '-', r.bridge ?? '-', String(r.attachments),
      r.dns ? `${r.dns.domain}${r.dns.resolver === 'gateway' ? '' : ` (${r.dns.resolver})`}` : '-',
    ])));
  }));
}

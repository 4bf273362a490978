/**
 * `cnikit ps`: the running `cnikit run` containers (their records in the state directory): name,
 * id, pid, networks, addresses, names, ports. Records of runs that died without cleaning up
 * (SIGKILL) are pruned on the way; their attachments stay cached for `cnikit gc` or
 * `cnikit network rm -f`.
 */
import type { Command } from 'commander';
import { act } from '../act.ts';
import { stateDirOf, stateDirOption } from '../options.ts';

const HELP = `
Examples:
  $ cnikit ps
  $ cnikit ps --json | jq -r '.[] | .name + " " + (.attachments[0].addresses[0] // "")'`;

export function register(program: Command): void {
  const cmd = program.command('ps').description('list running `cnikit run` containers with their networks, addresses and ports')
    .addOption(stateDirOption())
    .option('--json', 'print the records as JSON')
    .option('-q, --quiet', 'print container ids only');
  cmd.addHelpText('after', HELP);
  cmd.action(act(async (o: { stateDir?: string; json?: boolean; quiet?: boolean }) => {
    const [{ StateDir }, { table }, { mappingText }] = await Promise.all([import('../containers/state.ts'), import('../format.ts'), import('../ports.ts')]);
    const { live, pruned } = new StateDir(stateDirOf(o)).listLive();
    for (const s of pruned) process.stderr.write(`cnikit: pruned the record of ${s.id}${s.name ? ` (${s.name})` : ''}: its cnikit run (pid ${s.pid}) is gone; \`cnikit gc\` or \`cnikit network rm -f\` DEL its attachments\n`);
    if (o.json) return void process.stdout.write(JSON.stringify(live, null, 2) + '\n');
    if (o.quiet) return void process.stdout.write(live.map((s) => `${s.id}\n`).join(''));
    process.stdout.write(table(['NAME', 'CONTAINER ID', 'PID', 'NETWORKS', 'ADDRESSES', 'PORTS', 'NAMES'], live.map((s) => [
      s.name ?? '-', s.id, String(s.commandPid ?? s.pid),
      s.mode === 'bridge' ? s.attachments.map((a) => `${a.network}:${a.ifName}`).join(',') || '-' : s.mode,
      s.attachments.flatMap((a) => a.addresses).join(',') || '-',
      s.attachments.flatMap((a) => a.ports.map(mappingText)).join(',') || '-',
      [...new Set(s.attachments.flatMap((a) => a.names))].join(',') || '-',
    ])));
  }));
}

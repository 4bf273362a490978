/**
 * `cnikit network rm NAME...` and `cnikit network prune`: remove networks (network/remove.ts):
 * their conflist, then the bridge and leftover state once nothing is attached.
 */
import type { Command } from 'commander';
import { act } from '../act.ts';
import { type CniOptions, netconfDirOf, openRuntime, stateDirOf, stateDirOption, withCniOptions } from '../options.ts';
import { progressReporter } from '../progress.ts';

const RM_HELP = `
Examples:
  $ sudo cnikit network rm web
  $ sudo cnikit network rm -f web          DEL its attachments first (running containers are detached)
Refused (exit 7) while the network has attachments, naming them. The bridge is removed when no
other network uses it and nothing is enslaved to it.`;

const PRUNE_HELP = `
Examples:
  $ sudo cnikit network prune
Only networks made by \`cnikit network create\` are removed, and only those with no attachment.`;

interface RmOptions extends CniOptions { force?: boolean; stateDir?: string; json?: boolean }

async function removeAll(names: string[] | undefined, o: RmOptions): Promise<void> {
  const [{ removeNetwork }, { networkSummaries }] = await Promise.all([import('../network/remove.ts'), import('../network/store.ts')]);
  const p = progressReporter(o);
  const rt = await openRuntime(o, p.onEvent);
  const say = (l: string) => { if (!o.quiet) process.stderr.write(`cnikit: ${l}\n`); };
  let todo = names;
  if (!todo) {
    const cached = rt.cache.list();
    todo = networkSummaries(netconfDirOf(o)).filter((n) => n.cnikit && !cached.some((c) => c.networkName === n.name)).map((n) => n.name);
  }
  const done = [];
  for (const name of todo) {
    const r = await removeNetwork(rt, name, { netconfPath: netconfDirOf(o), stateDir: stateDirOf(o), force: !!o.force, say }).finally(p.done);
    done.push(r);
    if (!o.json) process.stdout.write(`removed network "${r.name}" (${r.file}); bridge: ${r.bridge}${r.detached.length ? `; detached ${r.detached.join(', ')}` : ''}\n`);
  }
  if (o.json) process.stdout.write(JSON.stringify(done, null, 2) + '\n');
  else if (!names && !done.length) process.stdout.write('nothing to prune\n');
}

export function register(network: Command): void {
  const rm = withCniOptions(network.command('rm').alias('remove').description('remove networks: refused while attached unless -f')
    .argument('<name...>', 'network names')
    .option('-f, --force', 'DEL the network\'s attachments first')
    .addOption(stateDirOption())
    .option('--json', 'print what was removed as JSON'));
  rm.addHelpText('after', RM_HELP);
  rm.action(act(async (names: string[], o: RmOptions) => removeAll(names, o)));

  const prune = withCniOptions(network.command('prune').description('remove every network cnikit created that has no attachment')
    .addOption(stateDirOption())
    .option('--json', 'print what was removed as JSON'));
  prune.addHelpText('after', PRUNE_HELP);
  prune.action(act(async (o: RmOptions) => removeAll(undefined, o)));
}

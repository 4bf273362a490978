/**
 * `cnikit ls`: the attachments in the results cache, as a table or JSON. Entries written by any
 * libcni runtime (cnitool, containerd, Podman) are listed too: the cache format is libcni's.
 */
import type { Command } from 'commander';
import { act } from '../act.ts';
import { cacheDirOf, cacheDirOption } from '../options.ts';

const HELP = `
Examples:
  $ sudo cnikit ls
  $ sudo cnikit ls --network cnikit --json | jq '.[].addresses'
Entries written by cnitool, containerd or Podman (libcni) show up as well.`;

export function register(program: Command): void {
  const cmd = program.command('ls').description('list attachments from the results cache')
    .addOption(cacheDirOption())
    .option('--network <name>', 'only this network')
    .option('--json', 'print JSON');
  cmd.addHelpText('after', HELP);
  cmd.action(act(async (o: { cacheDir?: string; network?: string; json?: boolean }) => {
    const [{ ResultsCache }, { attachmentJson, attachmentsTable }] = await Promise.all([import('../../runtime/cache.ts'), import('../format.ts')]);
    const list = new ResultsCache(cacheDirOf(o)).list(o.network);
    if (o.json) process.stdout.write(JSON.stringify(list.map(attachmentJson), null, 2) + '\n');
    else process.stdout.write(list.length ? attachmentsTable(list) : 'no attachments\n');
  }));
}

/**
 * `cnikit inspect [id]`: cached attachments in detail, chosen by container id (or a unique
 * prefix), netns path or netns name. Exits 5 when nothing matches.
 */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { CniCode, CniError } from '../../pkg/cni/errors.ts';
import { act } from '../act.ts';
import { cacheDirOf, cacheDirOption } from '../options.ts';

const HELP = `
Examples:
  $ sudo cnikit inspect cnikit-1a2b
  $ sudo cnikit inspect /run/netns/ctr1 --json
Exits 5 when nothing matches.`;

export function register(program: Command): void {
  const cmd = program.command('inspect').description('show cached attachments in detail')
    .argument('[id]', 'container id (or a unique prefix), or netns path or name; all when omitted')
    .addOption(cacheDirOption())
    .option('--json', 'print JSON (result, decoded config, args)');
  cmd.addHelpText('after', HELP);
  cmd.action(act(async (id: string | undefined, o: { cacheDir?: string; json?: boolean }) => {
    const [{ ResultsCache }, { attachmentJson, attachmentText }] = await Promise.all([import('../../runtime/cache.ts'), import('../format.ts')]);
    let list = new ResultsCache(cacheDirOf(o)).list();
    if (id) {
      const exact = list.filter((a) => a.containerId === id || a.netns === id || a.netns.endsWith(`/${id}`) || a.netns === resolve(id));
      list = exact.length ? exact : list.filter((a) => a.containerId.startsWith(id));
      if (!list.length) throw new CniError(CniCode.UnknownContainer, `no cached attachment matches "${id}"`, undefined, { reason: 'not-cached' });
    }
    if (o.json) process.stdout.write(JSON.stringify(list.map(attachmentJson), null, 2) + '\n');
    else process.stdout.write(list.length ? list.map(attachmentText).join('\n') : 'no attachments\n');
  }));
}

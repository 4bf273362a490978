/**
 * `cnikit install`: copies (or links) the built plugins into a CNI plugin directory
 * (install.ts does the work).
 */
import type { Command } from 'commander';
import { act } from '../act.ts';
import { selfDir } from '../self.ts';

const HELP = `
Examples:
  $ sudo cnikit install                    copies bridge, host-local, portmap, dnsname to /opt/cni/bin
  $ sudo cnikit install --dir /usr/local/lib/cni --force
Each installed plugin starts with an absolute interpreter path (this checkout's Node 24) and
finds its native addon in this checkout, so runtimes can call it with an empty environment.
Keep the checkout where it is, or install again after moving it.`;

export function register(program: Command): void {
  const cmd = program.command('install').description('install the cnikit plugins into a CNI plugin directory')
    .option('--dir <dir>', 'target directory', '/opt/cni/bin')
    .option('--force', 'replace files that are not cnikit plugins (e.g. the reference bridge)')
    .option('--symlink', 'link to the built files instead of copying them');
  cmd.addHelpText('after', HELP);
  cmd.action(act(async (o: { dir: string; force?: boolean; symlink?: boolean }) => {
    const { installPlugins } = await import('../install.ts');
    const done = installPlugins({ from: selfDir(), to: o.dir, force: !!o.force, symlink: !!o.symlink });
    for (const d of done) process.stdout.write(`${d.action} ${d.to}\n`);
  }));
}

/**
 * `cnikit demo`: the self-contained tour (demo/). Its two halves are one command: the outer half
 * makes the sandbox namespaces and re-runs `cnikit demo --inner STATE` inside them. The hidden
 * `__demo-helper` command runs the tour's programs inside its containers.
 */
import type { Command } from 'commander';
import { act } from '../act.ts';

const HELP = `
Examples:
  $ sudo dist/bin/cnikit demo
  $ sudo npx cnikit demo
Everything happens in network namespaces made for the tour (a sandbox "host", an "outside"
peer and two containers) with state in a temp dir; all of it is removed at the end, also on
Ctrl-C. Exit 0 means every check of the tour passed.`;

export function register(program: Command): void {
  const cmd = program.command('demo').description('a self-contained tour: two containers, DNS by name, a published port; the host network is not touched')
    .option('--tmp-dir <dir>', 'parent directory for the demo\'s temporary state', '')
    .option('--inner <state>', 'internal: the half that runs inside the sandbox host namespace');
  cmd.addHelpText('after', HELP);
  cmd.action(act(async (o: { tmpDir: string; inner?: string }) => {
    if (o.inner) return (await import('../demo/inner.ts')).demoInner(o.inner);
    return (await import('../demo/outer.ts')).demoOuter({ tmpDir: o.tmpDir });
  }));

  program.command('__demo-helper', { hidden: true }).description('internal: a program the demo runs inside its containers')
    .argument('<helper>').argument('[args...]')
    .action(act(async (name: string, args: string[]) => (await import('../demo/helpers/index.ts')).runHelper(name, args)));
}

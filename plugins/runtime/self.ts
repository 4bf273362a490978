/**
 * Small pieces shared by the cnikit subcommands: where the running executable lives (its
 * plugins sit beside it; helpers re-run it) and the progress line for long chains.
 */
import { realpathSync } from 'node:fs';
import { dirname } from 'node:path';
import type { ChainEvent } from './chain.ts';

/** The directory the running cnikit executable is in (after symlinks): where its plugins are. */
export function selfDir(): string {
  const self = process.argv[1];
  try {
    return dirname(realpathSync(self ?? '.'));
  } catch {
    return process.cwd();
  }
}

/** The executable to re-run for helpers (`__exec-in-netns`, the demo's inner half). */
export function selfExe(): string {
  return realpathSync(process.argv[1] ?? '');
}

/** Shows chain progress on stderr: an updating line on a terminal, a line per step with --verbose. */
export function progressReporter(o: { quiet?: boolean; verbose?: boolean }): { onEvent: (e: ChainEvent) => void; done: () => void } {
  const tty = !!process.stderr.isTTY;
  let shown = false;
  if (o.quiet || (!tty && !o.verbose)) return { onEvent: () => {}, done: () => {} };
  return {
    onEvent: (e) => {
      const step = e.index !== undefined ? ` [${e.index + 1}/${e.total}] ${e.type}` : e.op === 'VERSION' ? ` asking ${e.total} plugin(s) for their versions` : '';
      const text = `${e.op === 'ROLLBACK' ? 'ADD failed, undoing' : e.op} ${e.network}:${step}`;
      if (o.verbose || !tty) process.stderr.write(`cnikit: ${text}\n`);
      else {
        process.stderr.write(`\r\x1b[K${text}`);
        shown = true;
      }
    },
    done: () => {
      if (shown) process.stderr.write('\r\x1b[K');
      shown = false;
    },
  };
}

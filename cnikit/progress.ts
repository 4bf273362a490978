/**
 * Chain progress on stderr for the commands that run a network's plugins: an updating line on a
 * terminal, a timestamped line per step with --verbose, nothing with --quiet or when stderr is
 * not a terminal (unless --verbose). It turns the runtime's events into text; the runtime itself
 * prints nothing.
 */
import type { ChainEvent } from '../runtime/runtime.ts';

/** What a command hands the runtime (`onEvent`) and calls when the chain is over (`done`). */
export interface Progress {
  onEvent: (e: ChainEvent) => void;
  done: () => void;
}

/** Returns the progress display for the command's -q/-v options. */
export function progressReporter(o: { quiet?: boolean; verbose?: boolean }): Progress {
  const tty = !!process.stderr.isTTY;
  let shown = false;
  if (o.quiet || (!tty && !o.verbose)) return { onEvent: () => {}, done: () => {} };
  return {
    onEvent: (e) => {
      const step = e.index !== undefined ? ` [${e.index + 1}/${e.total}] ${e.type}` : e.op === 'VERSION' ? ` asking ${e.total} plugin(s) for their versions` : '';
      const text = `${e.op === 'ROLLBACK' ? 'ADD failed, undoing' : e.op} ${e.network}:${step}`;
      if (o.verbose || !tty) process.stderr.write(`cnikit: +${Math.round(performance.now())}ms ${text}\n`);
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

/**
 * An explicit undo stack for ADD (the bridge.go `success`/defer idea): every step that changes
 * something pushes how to take it back; on failure the steps are undone in reverse order, and an
 * undo that fails is logged, never thrown over the original error.
 */
import { describe } from './cni/errors.ts';
import type { Logger } from './log.ts';

export class Rollback {
  private readonly steps: { what: string; undo: () => unknown }[] = [];
  private readonly log: Logger;
  /** `log` is the call's logger: a failed undo is reported there. */
  constructor(log: Logger) {
    this.log = log;
  }

  push(what: string, undo: () => unknown): void {
    this.steps.push({ what, undo });
  }

  /** Undoes every step in reverse order. */
  async run(): Promise<void> {
    for (const s of this.steps.reverse()) {
      try {
        await s.undo();
      } catch (err) {
        this.log.warn(`rollback: failed to ${s.what}`, { error: describe(err) });
      }
    }
    this.steps.length = 0;
  }
}

/**
 * The signals that stop cnikit while it owns state to remove (`run`, `demo`): SIGINT, SIGTERM
 * and SIGHUP are caught instead of killing the process, so that its teardown runs, and are passed
 * on to the child that is running meanwhile.
 *
 * A terminal's Ctrl-C is not passed on: the child is in the same foreground process group and
 * got it from the terminal already; sending it twice would make a shell-like child see two.
 */
import type { ChildProcess } from 'node:child_process';

export const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/** Calls `fn` on each stop signal instead of dying of it; returns the function that stops that. */
export function onStopSignals(fn: (sig: NodeJS.Signals) => void): () => void {
  for (const s of STOP_SIGNALS) process.on(s, fn);
  return () => {
    for (const s of STOP_SIGNALS) process.off(s, fn);
  };
}

export interface ForwardedSignals {
  /** The first stop signal received, if any. */
  readonly received: NodeJS.Signals | undefined;
  /** Stops catching and forwarding. */
  stop(): void;
}

/**
 * Catches the stop signals from now on and forwards each to `child()` while it is running (it
 * may not exist yet: signals before it is started are only recorded).
 */
export function forwardSignals(child: () => ChildProcess | undefined): ForwardedSignals {
  let received: NodeJS.Signals | undefined;
  const stop = onStopSignals((sig) => {
    received ??= sig;
    const c = child();
    if (!c?.pid || c.exitCode !== null || c.signalCode !== null) return;
    if (sig === 'SIGINT' && process.stdin.isTTY) return;
    try { process.kill(c.pid, sig); } catch { /* already gone */ }
  });
  return { get received() { return received; }, stop };
}

/**
 * Milliseconds on a monotonic clock (from an arbitrary origin), as performance.now() counts
 * them. Why not performance.now(): the `performance` global loads perf_hooks and the modules
 * behind it on first use, ~0.7 MiB of a long-lived process's RSS, for a clock.
 */
export function monotonicMs(): number {
  const [s, ns] = process.hrtime();
  return s * 1e3 + ns / 1e6;
}

/** Resolves on a later turn of the event loop, after pending I/O callbacks ran (a long job's slices yield with it). */
export function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

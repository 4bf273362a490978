/**
 * Call statistics for the engine's status reply: how many calls, and p50/p99 wall time per
 * `<type> <command>` over the most recent calls. Memory stays bounded (a ring per key).
 */
const WINDOW = 1024;

export interface CallStats { count: number; p50: number; p99: number }

export class Stats {
  private readonly rings = new Map<string, { count: number; ms: number[] }>();
  calls = 0;

  /** Records one call of `key` that took `ms`. */
  record(key: string, ms: number): void {
    this.calls++;
    let r = this.rings.get(key);
    if (!r) this.rings.set(key, r = { count: 0, ms: [] });
    r.ms[r.count % WINDOW] = ms;
    r.count++;
  }

  /** Returns count, p50 and p99 (ms, 0.01 precision) per key. */
  summary(): Record<string, CallStats> {
    const out: Record<string, CallStats> = {};
    for (const [key, r] of [...this.rings].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      const s = [...r.ms].sort((a, b) => a - b);
      const at = (q: number) => Math.round(s[Math.min(s.length - 1, Math.floor(q * s.length))]! * 100) / 100;
      out[key] = { count: r.count, p50: at(0.5), p99: at(0.99) };
    }
    return out;
  }
}

/**
 * The token bucket one direction gets: the reference's TBF parameters for a rate in bit/s and a
 * burst in bits (docs/cni-notes.md §12.2, ifb_creator.go `createTBF`), computed with the same
 * float64 steps so that every value the reference can represent comes out identical (and `tc`
 * shows the same qdisc), but saturating where the reference's uint32 conversions wrap around.
 *
 *   rate   = rateBits / 8                          bytes/s (u64; TCA_TBF_RATE64 from 2^32)
 *   burst  = burstBits / 8                         bytes
 *   buffer = u32(u32(burst * 1e6 / rate) * 15.625) ticks of 64 ns (the bucket, as time)
 *   limit  = u32(rate * 25 ms) + burst             bytes (the queue behind the bucket)
 *
 * The reference wraps `buffer` modulo 2^32 when the bucket holds more than 274.9 s of traffic
 * (containerd's 512 MiB burst under 15.6 Mbit/s does) and `limit` when the queue passes 4 GiB,
 * so the kernel gets an arbitrary bucket (154 s at 10 Mbit/s, 0.44 s at 15.6 Mbit/s, 0 bytes and
 * EINVAL at some rates). Here both stop at the largest value tbf can hold (2^32-1 ticks =
 * 274.9 s; 2^32-1 bytes), and `clamped` says so.
 *
 * Pure: no kernel. The tick length is the kernel's PSCHED_SHIFT (64 ns, /proc/net/psched
 * `000003e8 00000040`), fixed since Linux 2.6.31.
 */
import type { TbfParams } from '../../pkg/netlink/tc.ts';

/** The latency the queue is sized for (the reference's latencyInMillis, 25 ms), in µs. */
export const LATENCY_US = 1e6 * (25 / 1000);
/** psched ticks per µs (1000/64). */
export const TICKS_PER_US = 15.625;
const U32_MAX = 0xffffffff;

/** TBF parameters plus what the kernel will make of them. */
export interface TbfPlan extends TbfParams {
  /** The bucket in bytes as the kernel computes it from rate and buffer (its `max_size`); 0 is refused. */
  maxSize: number;
  /** Fields that hit their maximum instead of wrapping (empty in everything the reference gets right). */
  clamped: ('buffer' | 'limit')[];
}

/** Computes the TBF for `rateBits` bit/s and a `burstBits` burst (both ≥ 8, checked by config.ts). */
export function tbfFor(rateBits: number, burstBits: number): TbfPlan {
  const rate = Math.floor(rateBits / 8);
  const burst = Math.floor(burstBits / 8);
  const clamped: TbfPlan['clamped'] = [];
  // float64 as in Go, multiply before divide; Go's uint32() truncates.
  const us = Math.floor((burst * 1e6) / rate);
  let ticks = Math.floor(Math.min(us, U32_MAX) * TICKS_PER_US);
  if (ticks > U32_MAX) {
    clamped.push('buffer');
    ticks = U32_MAX;
  }
  let limit = Math.floor((rate * LATENCY_US) / 1e6) + burst;
  if (limit > U32_MAX) {
    clamped.push('limit');
    limit = U32_MAX;
  }
  // sch_tbf: max_size = min(buffer_ns * rate / 1e9, 2^32-1), in u64 (exact here: < 2^63 for any input we accept).
  const maxSize = Number((BigInt(ticks) * 64n * BigInt(rate)) / 1_000_000_000n);
  return { rate: BigInt(rate), limit, buffer: ticks, peakrate: 0n, mtu: 0, maxSize: Math.min(maxSize, U32_MAX), clamped };
}

/** Returns the seconds of traffic a bucket of `buffer` ticks holds (for messages). */
export function bucketSeconds(buffer: number): number {
  return buffer / TICKS_PER_US / 1e6;
}

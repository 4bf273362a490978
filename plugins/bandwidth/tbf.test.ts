// The TBF arithmetic against the reference's (ifb_creator.go, built for amd64): identical for
// every input the reference can represent, saturating where its uint32 conversions wrap.
import test from 'ava';
import { TICKS_PER_US, bucketSeconds, tbfFor } from './tbf.ts';

/**
 * The reference's createTBF in Go's float64 steps; `uint32(f)` as Go compiles it on amd64
 * (CVTTSD2SQ to int64, then the low 32 bits), and uint32 addition wrapping.
 */
function reference(rateBits: number, burstBits: number): { rate: bigint; buffer: number; limit: number } {
  const u32 = (f: number) => Number(BigInt(Math.trunc(f)) & 0xffffffffn);
  const rate = Math.floor(rateBits / 8);
  const burst = u32(Math.floor(burstBits / 8));
  const latency = 1e6 * (25 / 1000);
  const buffer = u32(u32((burst * 1e6) / rate) * TICKS_PER_US);
  const limit = (u32((rate * latency) / 1e6) + burst) >>> 0;
  return { rate: BigInt(rate), buffer, limit };
}

const pick = (p: ReturnType<typeof tbfFor>) => ({ rate: p.rate, buffer: p.buffer, limit: p.limit });

test('the reference\'s numbers for §12.2: 8 Mbit/s with 80000 bits, 4 Mbit/s with 40000 bits', (t) => {
  t.deepEqual(tbfFor(8_000_000, 80_000), { rate: 1_000_000n, limit: 35_000, buffer: 156_250, peakrate: 0n, mtu: 0, maxSize: 10_000, clamped: [] });
  t.like(tbfFor(4_000_000, 40_000), { rate: 500_000n, limit: 17_500, buffer: 156_250, maxSize: 5_000 });
  t.like(tbfFor(40_000_000_000, 80_000_000), { rate: 5_000_000_000n, limit: 135_000_000, buffer: 31_250 });
});

test('identical to the reference over a grid of rates and bursts it represents', (t) => {
  let n = 0;
  for (const rate of [8, 1_000, 64_000, 1_000_000, 8_000_000, 10_000_000, 15_625_000, 100_000_000, 1e9, 4e10, 1e15]) {
    for (const burst of [8, 800, 12_000, 80_000, 1_000_000, 64 * 1024 * 8, 1e8, 1e9, 4294967295, 34359738359]) {
      const r = reference(rate, burst);
      const ours = tbfFor(rate, burst);
      if (ours.clamped.length) continue; // compared below
      t.deepEqual(pick(ours), r, `${rate} bit/s, ${burst} bits`);
      n++;
    }
  }
  t.true(n >= 70, `${n} cases`);
});

test('containerd\'s burst at 10 Mbit/s: the reference wraps to a 154 s bucket, ours stops at tbf\'s 274.9 s', (t) => {
  const r = reference(10_000_000, 4294967295);
  t.is(r.buffer, 0x8fffffe7); // §12.2: 6.7e9 ticks keep their low 32 bits
  t.is(Math.round(bucketSeconds(r.buffer)), 155);
  const ours = tbfFor(10_000_000, 4294967295);
  t.deepEqual(ours.clamped, ['buffer']);
  t.is(ours.buffer, 0xffffffff);
  t.is(Math.round(bucketSeconds(ours.buffer) * 10) / 10, 274.9);
  t.is(ours.limit, r.limit, 'the queue needs no clamp');
});

test('where the reference wraps to almost nothing, ours keeps the whole bucket it can', (t) => {
  // 15.6 Mbit/s with containerd's burst: the reference's buffer wraps to 0.44 s.
  t.is(Math.round(bucketSeconds(reference(15_600_000, 4294967295).buffer) * 100) / 100, 0.44);
  t.is(tbfFor(15_600_000, 4294967295).buffer, 0xffffffff);
  // From 15.625 Mbit/s on, containerd's 512 MiB bucket fits and both agree.
  t.deepEqual(pick(tbfFor(16_000_000, 4294967295)), reference(16_000_000, 4294967295));
});

test('the queue limit saturates at 2^32-1 bytes instead of wrapping', (t) => {
  // 1.6 Tbit/s: 25 ms are 5 GB.
  const r = reference(1.6e12, 80_000_000);
  const ours = tbfFor(1.6e12, 80_000_000);
  t.true(r.limit < 1_000_000_000, 'the reference wraps');
  t.deepEqual(ours.clamped, ['limit']);
  t.is(ours.limit, 0xffffffff);
});

test('maxSize is what the kernel keeps as the bucket: rate * buffer', (t) => {
  t.is(tbfFor(8_000_000, 80_000).maxSize, 10_000);
  t.is(tbfFor(10_000_000, 4294967295).maxSize, Math.floor((0xffffffff * 64 * 1_250_000) / 1e9));
  t.is(tbfFor(8e9, 8).maxSize, 0, 'a byte at 1 GB/s is under a tick');
});

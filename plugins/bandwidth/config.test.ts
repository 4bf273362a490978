// bandwidth config checks in table form (docs/cni-notes.md §12.1): which entry counts, the
// reference's rejections with the key named, the runtime's "no burst", prevResult.
import test, { type ExecutionContext } from 'ava';
import { CniError } from '../../pkg/cni/errors.ts';
import { type BandwidthConf, RUNTIME_UNSET_BURST, parseBandwidthConf, runtimeDefaultBurst } from './config.ts';

const conf = (extra: Record<string, unknown> = {}) => ({ cniVersion: '1.0.0', name: 'bwnet', type: 'bandwidth', ...extra });
const shaped = (rate: number, burst: number, runtimeDefaultBurst = false) => ({ rate, burst, runtimeDefaultBurst });

const parses = test.macro({
  exec(t: ExecutionContext, input: Record<string, unknown>, want: Pick<BandwidthConf, 'ingress' | 'egress'>) {
    const c = parseBandwidthConf(conf(input) as never);
    t.deepEqual({ ingress: c.ingress, egress: c.egress }, want);
  },
  title: (name = '') => `parses ${name}`,
});

const rejects = test.macro({
  exec(t: ExecutionContext, input: Record<string, unknown>, details: RegExp) {
    const err = t.throws(() => parseBandwidthConf(conf(input) as never), { instanceOf: CniError });
    t.is(err.code as number, 7);
    t.regex(`${err.message}: ${err.details ?? ''}`, details);
  },
  title: (name = '') => `rejects ${name}`,
});

const K8S = 4294967295; // containerd's math.MaxUint32 (§13.3)

test('nothing to shape', parses, {}, { ingress: undefined, egress: undefined });
test('zeros as no limit, null as zero (Go leaves the field alone)', parses, { ingressRate: 0, ingressBurst: null, egressRate: null }, { ingress: undefined, egress: undefined });
test('top-level keys', parses, { ingressRate: 8_000_000, ingressBurst: 80_000, egressRate: 4_000_000, egressBurst: 40_000 },
  { ingress: shaped(8_000_000, 80_000), egress: shaped(4_000_000, 40_000) });
test('runtimeConfig.bandwidth (the capability)', parses, { runtimeConfig: { bandwidth: { egressRate: 1_000_000, egressBurst: 9_000 } } },
  { ingress: undefined, egress: shaped(1_000_000, 9_000) });
test('one top-level key, even 0, puts runtimeConfig aside entirely', parses,
  { ingressRate: 0, runtimeConfig: { bandwidth: { egressRate: 1_000_000, egressBurst: 9_000 } } }, { ingress: undefined, egress: undefined });
test('a null capability', parses, { runtimeConfig: { bandwidth: null } }, { ingress: undefined, egress: undefined });
test('containerd\'s burst as the runtime\'s "none given": 25 ms of the rate, at least 64 KiB', parses,
  { runtimeConfig: { bandwidth: { ingressRate: 10_000_000, ingressBurst: K8S, egressRate: 1_000_000_000, egressBurst: K8S } } },
  { ingress: shaped(10_000_000, 64 * 1024 * 8, true), egress: shaped(1_000_000_000, 25_000_000, true) });
test('the same burst in the network config is taken as written', parses, { ingressRate: 10_000_000, ingressBurst: K8S },
  { ingress: shaped(10_000_000, K8S), egress: undefined });
test('a runtime burst just under dockershim\'s math.MaxInt32 is a real burst', parses,
  { runtimeConfig: { bandwidth: { ingressRate: 10_000_000, ingressBurst: RUNTIME_UNSET_BURST - 1 } } }, { ingress: shaped(10_000_000, RUNTIME_UNSET_BURST - 1), egress: undefined });
test('the largest burst the reference takes', parses, { egressRate: 8, egressBurst: (2 ** 32 - 2) * 8 + 7 }, { ingress: undefined, egress: shaped(8, (2 ** 32 - 2) * 8 + 7) });
test('rates past 32 bits of bytes per second', parses, { ingressRate: 2 ** 40, ingressBurst: 8e9 }, { ingress: shaped(2 ** 40, 8e9), egress: undefined });

test('a rate without burst', rejects, { ingressRate: 8_000_000 }, /ingressRate: if rate is set, burst must also be set/);
test('a burst without rate', rejects, { egressBurst: 8_000 }, /egressBurst: if burst is set, rate must also be set/);
test('a burst without rate, in the capability', rejects, { runtimeConfig: { bandwidth: { ingressBurst: 8_000 } } }, /runtimeConfig\.bandwidth\.ingressBurst: if burst is set/);
test('a 4 GB burst', rejects, { egressRate: 8, egressBurst: (2 ** 32 - 1) * 8 }, /egressBurst: burst cannot be more than 4GB/);
test('a negative rate', rejects, { ingressRate: -1, ingressBurst: 8 }, /ingressRate: must be a non-negative integer \(bit\/s\), got -1/);
test('a fractional burst', rejects, { ingressRate: 8_000, ingressBurst: 1.5 }, /ingressBurst: must be a non-negative integer \(bits\)/);
test('a rate beyond uint64', rejects, { ingressRate: 2 ** 65, ingressBurst: 8 }, /ingressRate: must be a non-negative integer/);
test('a string', rejects, { egressRate: '1M', egressBurst: 8 }, /egressRate: expected number, got string/);
test('a bad number in the entry that is not used (Go fails to decode it all the same)', rejects,
  { ingressRate: 8_000, ingressBurst: 8_000, runtimeConfig: { bandwidth: { egressRate: -5 } } }, /runtimeConfig\.bandwidth\.egressRate: must be a non-negative/);
test('a rate under one byte per second', rejects, { ingressRate: 7, ingressBurst: 800 }, /ingressRate: must be at least 8 bit\/s/);
test('a burst under one byte', rejects, { ingressRate: 800, ingressBurst: 7 }, /ingressBurst: must be at least 8 bits/);
test('the largest uint64 rate: even a 4 GB bucket drains in under a tick', rejects, { ingressRate: 2 ** 64 - 1, ingressBurst: 8e9 }, /ingressBurst: a burst of 8000000000 bits is too small/);
test('a bucket too small for its rate (the kernel refuses max_size 0)', rejects, { egressRate: 8_000_000_000, egressBurst: 8 }, /egressBurst: a burst of 8 bits is too small for 8000000000 bit\/s/);

test('prevResult is parsed into the internal shape; absent or null is undefined', (t) => {
  const prev = { cniVersion: '1.0.0', interfaces: [{ name: 'veth1' }, { name: 'eth0', sandbox: '/run/netns/x' }], ips: [{ address: '10.0.0.2/24', interface: 1 }] };
  t.deepEqual(parseBandwidthConf(conf({ prevResult: prev }) as never).prevResult, prev);
  t.is(parseBandwidthConf(conf() as never).prevResult, undefined);
  t.is(parseBandwidthConf(conf({ prevResult: null }) as never).prevResult, undefined);
});

test('runtimeDefaultBurst: 25 ms of the rate in bits, at least 64 KiB', (t) => {
  t.is(runtimeDefaultBurst(1_000), 524_288);
  t.is(runtimeDefaultBurst(100_000_000), 2_500_000);
});

/**
 * The bandwidth plugin's config (docs/cni-notes.md §12.1): the reference's four keys
 * `ingressRate`/`ingressBurst`/`egressRate`/`egressBurst` (rates in bit/s, bursts in bits, 0 =
 * no limit), at the top level or as the `bandwidth` capability in runtimeConfig, and prevResult.
 * Every check is made here, before anything is touched, and names the key.
 *
 * Which entry counts: if any of the four keys is at the top level, the top-level entry is used
 * and runtimeConfig is ignored entirely (the reference's embedded `*BandwidthEntry`); else
 * `runtimeConfig.bandwidth`.
 *
 * Where we differ from the reference: a burst of 2^31-1 bits or more that comes through the
 * capability is what the Kubernetes runtimes write when the pod names no burst (Kubernetes has
 * no burst annotation: containerd sends math.MaxUint32, CRI-O just under 2^35, dockershim and
 * cri-dockerd math.MaxInt32). Taken literally it is a bucket of 256 MiB to 4 GiB that passes
 * minutes of traffic unshaped (and which the reference's arithmetic wraps around, §12.2), so
 * that the pod's limit barely holds. We read it as "no burst given" and use a bucket of
 * RUNTIME_DEFAULT_BURST: the bytes the rate sends in the plugin's latency (25 ms), at least
 * 64 KiB (one GSO packet, so TCP's bursts are not cut into segments). An explicit burst in
 * the network config is always taken as written.
 */
import * as z from 'zod/mini';
import { invalidConfig } from '../../pkg/cni/errors.ts';
import { type Result, parsePrevResult } from '../../pkg/cni/result.ts';
import { netConfBase, parseWith } from '../../pkg/cni/schema.ts';
import { LATENCY_US, tbfFor } from './tbf.ts';

// Go leaves a field alone on null (docs/cni-notes.md §13.1): null is 0 here.
const uint64 = z.nullish(z.number());
const entryShape = { ingressRate: uint64, ingressBurst: uint64, egressRate: uint64, egressBurst: uint64 };
const KEYS = ['ingressRate', 'ingressBurst', 'egressRate', 'egressBurst'] as const;

const schema = z.object({
  ...netConfBase,
  ...entryShape,
  runtimeConfig: z.optional(z.looseObject({ bandwidth: z.nullish(z.object(entryShape)) })),
});

/** One direction's shaping: rate in bit/s, burst in bits, both > 0. */
export interface Shaping {
  rate: number;
  burst: number;
  /** The burst was the runtime's "none given" (see the module header) and was replaced. */
  runtimeDefaultBurst: boolean;
}

export interface BandwidthConf {
  name: string;
  cniVersion: string;
  /** Traffic to the container (TBF on the host veth); undefined = not shaped. */
  ingress?: Shaping;
  /** Traffic from the container (redirected to an ifb with a TBF); undefined = not shaped. */
  egress?: Shaping;
  /** prevResult in the internal shape; undefined when the runtime sent none. */
  prevResult: Result | undefined;
}

/** The largest value a uint64 field takes (Go rejects more); JSON numbers above 2^53 are approximate anyway. */
const UINT64_MAX = 2 ** 64 - 1;
/** burst/8 must stay under 2^32-1 bytes (the reference: `burst cannot be more than 4GB`). */
const MAX_BURST_BYTES = 2 ** 32 - 1;
/** From here on a runtimeConfig burst is the runtime's "none given" (math.MaxInt32). */
export const RUNTIME_UNSET_BURST = 2 ** 31 - 1;
/** The bucket of a runtime's "none given": 64 KiB in bits. */
const MIN_DEFAULT_BURST = 64 * 1024 * 8;

/** The bucket used for a runtime's "no burst": the rate's 25 ms, at least 64 KiB (in bits). */
export function runtimeDefaultBurst(rate: number): number {
  return Math.max(Math.floor((rate * LATENCY_US) / 1e6), MIN_DEFAULT_BURST);
}

function uint(v: number | null | undefined, where: string, unit: string): number {
  if (v === undefined || v === null) return 0;
  if (!Number.isInteger(v) || v < 0 || v > UINT64_MAX) throw invalidConfig(`${where}: must be a non-negative integer (${unit}), got ${v}`);
  return v;
}

function shaping(entry: Record<string, number | null | undefined>, dir: 'ingress' | 'egress', at: string, fromRuntime: boolean): Shaping | undefined {
  const rk = `${dir}Rate`, bk = `${dir}Burst`;
  const rate = uint(entry[rk], `${at}${rk}`, 'bit/s');
  let burst = uint(entry[bk], `${at}${bk}`, 'bits');
  if (rate === 0 && burst === 0) return undefined;
  if (burst === 0) throw invalidConfig(`${at}${rk}: if rate is set, burst must also be set (${bk} is missing or 0)`);
  if (rate === 0) throw invalidConfig(`${at}${bk}: if burst is set, rate must also be set (${rk} is missing or 0)`);
  if (Math.floor(burst / 8) >= MAX_BURST_BYTES) throw invalidConfig(`${at}${bk}: burst cannot be more than 4GB (${burst} bits)`);
  // The kernel takes bytes: under 8 bit/s the rate is 0 B/s and the qdisc is refused (EINVAL).
  if (rate < 8) throw invalidConfig(`${at}${rk}: must be at least 8 bit/s (tc counts whole bytes per second), got ${rate}`);
  if (burst < 8) throw invalidConfig(`${at}${bk}: must be at least 8 bits (one byte), got ${burst}`);
  const runtimeDefault = fromRuntime && burst >= RUNTIME_UNSET_BURST;
  if (runtimeDefault) burst = runtimeDefaultBurst(rate);
  // The kernel refuses a bucket that holds less than a byte at this rate (EINVAL).
  if (tbfFor(rate, burst).maxSize === 0) throw invalidConfig(`${at}${bk}: a burst of ${burst} bits is too small for ${rate} bit/s (the bucket would hold no byte)`);
  return { rate, burst, runtimeDefaultBurst: runtimeDefault };
}

/** Parses stdin into a BandwidthConf; throws CniError 7 naming the key. No side effects. */
export function parseBandwidthConf(raw: Record<string, unknown>): BandwidthConf {
  const c = parseWith(schema, raw);
  const topLevel = KEYS.some((k) => c[k] !== undefined);
  const rt = c.runtimeConfig?.bandwidth ?? undefined;
  const entry = topLevel ? c : rt;
  const at = topLevel ? '' : 'runtimeConfig.bandwidth.';
  const out: BandwidthConf = {
    name: c.name, cniVersion: c.cniVersion ?? '0.1.0',
    prevResult: parsePrevResult(c.prevResult, c.cniVersion ?? '0.1.0'),
  };
  // Go rejects a bad number in either entry, whichever is used.
  for (const [e, where] of [[c, ''], [rt, 'runtimeConfig.bandwidth.']] as const) {
    for (const k of KEYS) if (e) uint(e[k], `${where}${k}`, k.endsWith('Rate') ? 'bit/s' : 'bits');
  }
  if (entry) {
    const ingress = shaping(entry, 'ingress', at, !topLevel);
    const egress = shaping(entry, 'egress', at, !topLevel);
    if (ingress) out.ingress = ingress;
    if (egress) out.egress = egress;
  }
  return out;
}

/**
 * Choosing a network's subnets, as Podman does for `podman network create`: with no --subnet, the
 * first /24 of the default pools that overlaps nothing in use (other networks' ranges, the host's
 * addresses and routes), and with --ipv6 a random ULA /64 (RFC 4193 §3.2: fd00::/8, a random
 * 40-bit global ID, subnet ID 0). An explicit subnet is checked against the same list, and the
 * error names what it overlaps. Pure: the caller gathers what is in use (host.ts, store.ts) and
 * passes the randomness.
 */
import { type Cidr, type IP, bitsOf, contains, formatCidr, formatIP, lastOf, networkOf, overlaps } from '../../pkg/ip/cidr.ts';
import { CniCode, CniError } from '../../pkg/cni/errors.ts';

/** An address range something already uses, and what uses it (for messages: `network "web"`). */
export interface UsedRange {
  cidr: Cidr;
  what: string;
}

/** A pool to carve subnets from: `base` cut into pieces of prefix length `size`. */
export interface SubnetPool {
  base: Cidr;
  size: number;
}

const v4 = (a: number, b: number, prefix: number): Cidr => ({ family: 4, value: BigInt(((a << 24) >>> 0) + (b << 16)), prefix });

/** Podman's default_subnet_pools (containers.conf): 10.89.0.0/16 first, then up to 10.128.0.0/9, in /24s. */
export const DEFAULT_POOLS: readonly SubnetPool[] = [
  { base: v4(10, 89, 16), size: 24 },
  { base: v4(10, 90, 15), size: 24 },
  { base: v4(10, 92, 14), size: 24 },
  { base: v4(10, 96, 11), size: 24 },
  { base: v4(10, 128, 9), size: 24 },
];

/** Returns the first range in `used` that overlaps `c`, or undefined. */
export function firstOverlap(c: Cidr, used: readonly UsedRange[]): UsedRange | undefined {
  return used.find((u) => overlaps(u.cidr, c));
}

/**
 * Returns the first subnet of the pools, in order, that overlaps nothing in `used`; undefined
 * when every one does. A used range is skipped in one step, so this is bounded by the number of
 * used ranges plus pools, not by the size of the pools.
 */
export function pickFreeSubnet(used: readonly UsedRange[], pools: readonly SubnetPool[] = DEFAULT_POOLS): Cidr | undefined {
  for (const pool of pools) {
    const step = 1n << BigInt(bitsOf(pool.base.family) - pool.size);
    const end = lastOf(pool.base).value;
    let at = networkOf(pool.base).value;
    while (at <= end) {
      const cand: Cidr = { family: pool.base.family, value: at, prefix: pool.size };
      const hit = firstOverlap(cand, used);
      if (!hit) return cand;
      // Jump past the whole used range (it may be larger than one piece), aligned to a piece.
      const past = lastOf(hit.cidr).value + 1n;
      at = past > at + step ? ((past + step - 1n) / step) * step : at + step;
    }
  }
  return undefined;
}

/**
 * Returns a random ULA /64 (fdXX:XXXX:XXXX::/64) that overlaps nothing in `used`; `random(n)`
 * gives n random bytes. Undefined when `tries` draws all collide (only when fd00::/8 is in use).
 */
export function pickUla(used: readonly UsedRange[], random: (n: number) => Buffer, tries = 16): Cidr | undefined {
  for (let i = 0; i < tries; i++) {
    const gid = random(5).reduce((acc, b) => (acc << 8n) | BigInt(b), 0n);
    const cand: Cidr = { family: 6, value: (0xfdn << 120n) | (gid << 80n), prefix: 64 };
    if (!firstOverlap(cand, used)) return cand;
  }
  return undefined;
}

/** One range of the network: a subnet and, when given, its gateway. */
export interface SubnetWithGateway {
  subnet: Cidr;
  gateway?: IP;
}

function conflict(msg: string, details: string): CniError {
  return new CniError(CniCode.InvalidConfig, msg, details, { reason: 'conflict' });
}

/**
 * Checks explicit subnets (no two overlap, none overlaps anything in use) and gives each its
 * gateway: a --gateway belongs to the one subnet that contains it. Throws naming the problem.
 */
export function checkSubnets(subnets: readonly Cidr[], gateways: readonly IP[], used: readonly UsedRange[]): SubnetWithGateway[] {
  subnets.forEach((s, i) => {
    const twin = subnets.findIndex((o, j) => j < i && overlaps(o, s));
    if (twin >= 0) throw conflict(`subnet ${formatCidr(s)} overlaps subnet ${formatCidr(subnets[twin]!)}`, 'give each --subnet once, with ranges that do not overlap');
    const hit = firstOverlap(s, used);
    if (hit) {
      throw conflict(`subnet ${formatCidr(s)} overlaps ${hit.what}`,
        'pick another --subnet, or leave --subnet out to have a free one chosen');
    }
  });
  const out: SubnetWithGateway[] = subnets.map((subnet) => ({ subnet }));
  for (const gw of gateways) {
    const owner = out.find((o) => contains(o.subnet, gw));
    if (!owner) throw new CniError(CniCode.InvalidConfig, `gateway ${formatIP(gw)} is in none of the subnets`, `subnets: ${subnets.map(formatCidr).join(', ') || '(none given: pass --subnet with --gateway)'}`);
    if (owner.gateway) throw new CniError(CniCode.InvalidConfig, `two gateways for subnet ${formatCidr(owner.subnet)}`, `${formatIP(owner.gateway)} and ${formatIP(gw)}; give one --gateway per subnet`);
    if (gw.value === owner.subnet.value || (gw.family === 4 && gw.value === lastOf(owner.subnet).value)) {
      throw new CniError(CniCode.InvalidConfig, `gateway ${formatIP(gw)} is the network or broadcast address of ${formatCidr(owner.subnet)}`, 'use an address inside the subnet, e.g. the first one');
    }
    owner.gateway = gw;
  }
  return out;
}

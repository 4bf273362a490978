/**
 * host-local's config (docs/cni-notes.md §4.1, §4.2): the `ipam` object of whatever plugin config we are
 * handed (our own, or the whole bridge config when bridge runs us in-process), turned into
 * checked range sets, routes, a data directory and the requested addresses.
 *
 * Every check happens here, before the allocator touches the disk: subnet syntax and host bits,
 * "too small to allocate from", rangeStart/rangeEnd inside the subnet and in order, one family
 * per set, no overlapping ranges within or across sets, requested IPs that fall in a set and are
 * not its gateway. Failures are CniError code 7 (4 for a bad CNI_ARGS `IP=`) whose details name
 * the range set and the subnet. Range sets are numbered as the reference numbers them, after
 * prepending the legacy top-level range and then `runtimeConfig.ipRanges`; the number is also the
 * N of `last_reserved_ip.N`.
 *
 * This module does not read leases; it reads one file, `resolvConf`, and only when asked.
 */
import { readFileSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { CniCode, CniError, describe, invalidConfig } from '../../pkg/cni/errors.ts';
import { KNOWN_CNI_ARGS, parseCniArgs } from '../../pkg/cni/args.ts';
import type { DNS, Route } from '../../pkg/cni/result.ts';
import * as z from 'zod/mini';
import { goKeys } from '../../pkg/cni/go-keys.ts';
import { parseWith } from '../../pkg/cni/schema.ts';
import type { RawConf } from '../../pkg/cni/skel.ts';
import { validateNetworkName } from '../../pkg/cni/validate.ts';
import { atLeast } from '../../pkg/cni/version.ts';
import {
  type Cidr, type IP, addToIP, bitsOf, contains, formatCidr, formatIP, lastOf, networkOf, tryParseCidr, tryParseIP,
} from '../../pkg/ip/cidr.ts';

/** Where leases live unless `dataDir` says otherwise (the reference's default). */
export const DEFAULT_DATA_DIR = '/var/lib/cni/networks';

/** A checked range: `subnet` is a network address, rangeStart <= rangeEnd, both inside it. */
export interface Range {
  subnet: Cidr;
  rangeStart: IP;
  rangeEnd: IP;
  gateway: IP;
}

/** Ranges of one family; ADD takes one address from each set. */
export type RangeSet = Range[];

export interface IpamConf {
  /** The network name: the state directory is `<dataDir>/<name>`. */
  name: string;
  cniVersion: string;
  ranges: RangeSet[];
  /** Copied verbatim into the result. */
  routes: Route[];
  dataDir: string;
  resolvConf: string | undefined;
}

const rangeSchema = z.object({
  subnet: z.string(),
  rangeStart: z.optional(z.string()),
  rangeEnd: z.optional(z.string()),
  gateway: z.optional(z.string()),
});
type RawRange = z.infer<typeof rangeSchema>;

const routeSchema = z.object({
  dst: z.string(),
  gw: z.optional(z.string()),
  mtu: z.optional(z.number()),
  advmss: z.optional(z.number()),
  priority: z.optional(z.number()),
  table: z.optional(z.number()),
  scope: z.optional(z.number()),
});

const ipamSchema = z.object({
  type: z.optional(z.string()),
  subnet: z.optional(z.string()),
  rangeStart: z.optional(z.string()),
  rangeEnd: z.optional(z.string()),
  gateway: z.optional(z.string()),
  ranges: z.optional(z.array(z.array(rangeSchema))),
  routes: z.optional(z.array(routeSchema)),
  dataDir: z.optional(z.string()),
  resolvConf: z.optional(z.string()),
});

const confSchema = z.object({
  ipam: ipamSchema,
  runtimeConfig: z.optional(z.object({ ipRanges: z.optional(z.array(z.array(rangeSchema))) })),
});

/** Only what ADD reads for requested addresses, so that DEL never fails over them. */
const requestSchema = z.object({
  runtimeConfig: z.optional(z.object({ ips: z.optional(z.array(z.string())) })),
  args: z.optional(z.object({
    cni: z.optional(z.object({ ips: z.optional(z.array(z.string())) })),
  })),
});

/** Formats a range the way the reference names it in errors: `start-end`. */
export function formatRange(r: Range): string {
  return `${formatIP(r.rangeStart)}-${formatIP(r.rangeEnd)}`;
}

/** Formats a range set as the reference does: its ranges joined by commas. */
export function formatRangeSet(set: RangeSet): string {
  return set.map(formatRange).join(',');
}

/** True when ip lies in r's subnet between rangeStart and rangeEnd (inclusive). */
export function rangeContains(r: Range, ip: IP): boolean {
  return contains(r.subnet, ip) && ip.value >= r.rangeStart.value && ip.value <= r.rangeEnd.value;
}

/** Returns the range of `set` that holds ip, or undefined. */
export function rangeFor(set: RangeSet, ip: IP): Range | undefined {
  return set.find((r) => rangeContains(r, ip));
}

function rangesOverlap(a: Range, b: Range): boolean {
  return a.subnet.family === b.subnet.family && a.rangeStart.value <= b.rangeEnd.value && b.rangeStart.value <= a.rangeEnd.value;
}

function parseAddr(s: string, what: string, where: string): IP {
  const ip = tryParseIP(s.trim());
  if (!ip) throw invalidConfig(`${where}: ${what} "${s}" is not an IP address`);
  return ip;
}

/** Checks one range and fills in the defaults (docs/cni-notes.md §4.1), as the reference's Canonicalize. */
function checkRange(raw: RawRange, where: string): Range {
  const subnet = tryParseCidr(raw.subnet.trim());
  if (!subnet) throw invalidConfig(`${where}: subnet "${raw.subnet}" is not a CIDR like 10.77.0.0/24`);
  const bits = bitsOf(subnet.family);
  if (subnet.prefix > bits - 2) {
    throw invalidConfig(`${where}: Network ${formatCidr(subnet)} too small to allocate from`);
  }
  const net = networkOf(subnet);
  if (net.value !== subnet.value) {
    throw invalidConfig(`${where}: Network ${formatCidr(subnet)} has host bits set. For a subnet mask of length ${subnet.prefix} the network address is ${formatIP(net)}`);
  }
  const first = addToIP(net, 1n);
  // The reference leaves the IPv4 broadcast address out; IPv6 has none.
  const last = subnet.family === 4 ? addToIP(lastOf(net), -1n) : lastOf(net);
  const sameFamily = (ip: IP, what: string, s: string): IP => {
    if (ip.family !== subnet.family) throw invalidConfig(`${where}: ${what} ${s} is not in the address family of ${formatCidr(net)}`);
    return ip;
  };
  const gateway = raw.gateway !== undefined ? sameFamily(parseAddr(raw.gateway, 'gateway', where), 'gateway', raw.gateway) : first;
  let rangeStart = first;
  if (raw.rangeStart !== undefined) {
    rangeStart = sameFamily(parseAddr(raw.rangeStart, 'rangeStart', where), 'rangeStart', raw.rangeStart);
    if (!contains(net, rangeStart)) throw invalidConfig(`${where}: RangeStart ${formatIP(rangeStart)} not in network ${formatCidr(net)}`);
  }
  let rangeEnd = last;
  if (raw.rangeEnd !== undefined) {
    rangeEnd = sameFamily(parseAddr(raw.rangeEnd, 'rangeEnd', where), 'rangeEnd', raw.rangeEnd);
    if (!contains(net, rangeEnd)) throw invalidConfig(`${where}: RangeEnd ${formatIP(rangeEnd)} not in network ${formatCidr(net)}`);
  }
  if (rangeStart.value > rangeEnd.value) {
    throw invalidConfig(`${where}: RangeStart ${formatIP(rangeStart)} is after RangeEnd ${formatIP(rangeEnd)} in network ${formatCidr(net)}`);
  }
  return { subnet: net, rangeStart, rangeEnd, gateway };
}

function checkRangeSet(raws: RawRange[], index: number): RangeSet {
  if (raws.length === 0) throw invalidConfig(`invalid range set ${index}: empty range set`);
  const set = raws.map((r) => checkRange(r, `invalid range set ${index}`));
  const fam = set[0]!.subnet.family;
  for (const r of set) {
    if (r.subnet.family !== fam) {
      throw invalidConfig(`invalid range set ${index}: mixed address families (${formatCidr(set[0]!.subnet)} and ${formatCidr(r.subnet)}); put IPv4 and IPv6 ranges in separate sets`);
    }
  }
  for (let i = 0; i < set.length; i++) {
    for (let j = i + 1; j < set.length; j++) {
      if (rangesOverlap(set[i]!, set[j]!)) {
        throw invalidConfig(`invalid range set ${index}: subnets ${formatRange(set[i]!)} (${formatCidr(set[i]!.subnet)}) and ${formatRange(set[j]!)} (${formatCidr(set[j]!.subnet)}) overlap`);
      }
    }
  }
  return set;
}

/**
 * Returns where the network's leases live, reading nothing else of the config: DEL and GC use
 * it so that they succeed, releasing what there is, even for a config whose ranges an ADD would
 * reject (a runtime DELs after every failed ADD, and keeps retrying a DEL that fails). A
 * relative `dataDir` gives undefined: ADD refuses it, so no lease can be there, and a path
 * relative to wherever the runtime runs is never touched.
 */
export function loadStoreLocation(conf: RawConf): { name: string; dataDir: string } | undefined {
  validateNetworkName(conf.name);
  // Keys matched as Go matches them (`"DataDir"` works); anything unusable means the default.
  const ipam = (goKeys(locationKeys, conf) as { ipam?: unknown }).ipam as { dataDir?: unknown } | undefined;
  const dataDir = ipam && typeof ipam === 'object' && typeof ipam.dataDir === 'string' && ipam.dataDir ? ipam.dataDir : DEFAULT_DATA_DIR;
  return isAbsolute(dataDir) ? { name: conf.name, dataDir } : undefined;
}

/** The only keys DEL and GC read. */
const locationKeys = z.object({ ipam: z.optional(z.object({ dataDir: z.unknown() })) });

/**
 * Reads and checks host-local's config from a plugin config (`conf.ipam`, `conf.runtimeConfig`).
 * Throws CniError 7 naming the range set and subnet on any problem; touches nothing.
 */
export function loadIpamConf(conf: RawConf): IpamConf {
  if (conf.ipam === undefined || conf.ipam === null) throw invalidConfig(`IPAM config missing 'ipam' key`);
  validateNetworkName(conf.name);
  const c = parseWith(confSchema, conf);
  const ipam = c.ipam;
  // A relative path would put leases wherever the runtime happens to run.
  if (ipam.dataDir && !isAbsolute(ipam.dataDir)) throw invalidConfig(`ipam.dataDir: "${ipam.dataDir}" must be an absolute path`);

  const raw: RawRange[][] = [...(ipam.ranges ?? [])];
  if (ipam.subnet !== undefined) {
    raw.unshift([{ subnet: ipam.subnet, rangeStart: ipam.rangeStart, rangeEnd: ipam.rangeEnd, gateway: ipam.gateway }]);
  } else if (ipam.rangeStart !== undefined || ipam.rangeEnd !== undefined || ipam.gateway !== undefined) {
    throw invalidConfig('ipam: rangeStart, rangeEnd and gateway at the top level need a top-level subnet');
  }
  raw.unshift(...(c.runtimeConfig?.ipRanges ?? []));
  if (raw.length === 0) throw invalidConfig('no IP ranges specified');

  const ranges = raw.map((set, i) => checkRangeSet(set, i));
  const perFamily = { 4: 0, 6: 0 };
  for (const set of ranges) perFamily[set[0]!.subnet.family]++;
  if ((perFamily[4] > 1 || perFamily[6] > 1) && !atLeast(conf.cniVersion, '0.3.0')) {
    throw invalidConfig(`CNI version ${conf.cniVersion} does not support more than 1 address per family`);
  }
  for (let i = 0; i < ranges.length; i++) {
    for (let j = i + 1; j < ranges.length; j++) {
      for (const a of ranges[i]!) {
        for (const b of ranges[j]!) {
          if (rangesOverlap(a, b)) throw invalidConfig(`range set ${i} overlaps with ${j}: ${formatRange(a)} (${formatCidr(a.subnet)}) and ${formatRange(b)} (${formatCidr(b.subnet)})`);
        }
      }
    }
  }

  const routes: Route[] = (ipam.routes ?? []).map((r, i) => {
    if (!tryParseCidr(r.dst.trim())) throw invalidConfig(`ipam.routes[${i}].dst: "${r.dst}" is not a CIDR like 0.0.0.0/0`);
    if (r.gw !== undefined && !tryParseIP(r.gw.trim())) throw invalidConfig(`ipam.routes[${i}].gw: "${r.gw}" is not an IP address`);
    const out: Route = { dst: r.dst };
    for (const k of ['gw', 'mtu', 'advmss', 'priority', 'table', 'scope'] as const) {
      if (r[k] !== undefined) (out as unknown as Record<string, unknown>)[k] = r[k];
    }
    return out;
  });

  return {
    name: conf.name,
    cniVersion: conf.cniVersion,
    ranges,
    routes,
    dataDir: ipam.dataDir || DEFAULT_DATA_DIR,
    resolvConf: ipam.resolvConf || undefined,
  };
}

function parseRequested(s: string, source: string, code: CniCode): IP {
  const t = s.trim();
  // A prefix length is allowed and ignored: the range's subnet decides the prefix.
  const ip = tryParseIP(t) ?? tryParseCidr(t);
  if (!ip) throw new CniError(code, `invalid IP "${s}"`, `${source} must list IP addresses`);
  return { family: ip.family, value: ip.value };
}

/**
 * Collects the addresses asked for (docs/cni-notes.md §4.2): CNI_ARGS `IP=` (comma-separated), then
 * `args.cni.ips`, then `runtimeConfig.ips`; duplicates dropped, order kept.
 */
export function requestedIPs(conf: RawConf, cniArgs: string): IP[] {
  const c = parseWith(requestSchema, conf);
  const out: IP[] = [];
  const add = (ip: IP) => {
    if (!out.some((o) => o.family === ip.family && o.value === ip.value)) out.push(ip);
  };
  const env = parseCniArgs(cniArgs, KNOWN_CNI_ARGS).get('IP');
  if (env) for (const s of env.split(',')) add(parseRequested(s, 'CNI_ARGS IP', CniCode.InvalidEnv));
  for (const s of c.args?.cni?.ips ?? []) add(parseRequested(s, 'args.cni.ips', CniCode.InvalidConfig));
  for (const s of c.runtimeConfig?.ips ?? []) add(parseRequested(s, 'runtimeConfig.ips', CniCode.InvalidConfig));
  return out;
}

/**
 * Gives each range set the first requested address that lies in one of its ranges (the
 * reference's rule), so the allocator reserves exactly that one there. Throws CniError 7 when a
 * requested address is a range's gateway or finds no set: both are knowable before any lease is
 * touched.
 */
export function placeRequested(sets: RangeSet[], requested: IP[]): (IP | undefined)[] {
  const left = [...requested];
  const placed = sets.map((set) => {
    const k = left.findIndex((ip) => rangeFor(set, ip) !== undefined);
    if (k < 0) return undefined;
    const ip = left.splice(k, 1)[0]!;
    const r = rangeFor(set, ip)!;
    if (r.gateway.value === ip.value && r.gateway.family === ip.family) {
      throw invalidConfig(`requested ip ${formatIP(ip)} is subnet's gateway (range ${formatRange(r)} of ${formatCidr(r.subnet)})`);
    }
    return ip;
  });
  if (left.length) {
    throw invalidConfig(`failed to allocate all requested IPs: ${left.map(formatIP).join(' ')} (not inside any range set: ${sets.map(formatRangeSet).join(' ; ')})`);
  }
  return placed;
}

/** Reads resolv.conf lines nameserver/domain/search/options into a result's `dns`, as the reference. */
export function parseResolvConf(text: string): DNS {
  const dns: DNS = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line[0] === '#' || line[0] === ';') continue;
    const f = line.split(/\s+/);
    if (f.length < 2) continue;
    switch (f[0]) {
      case 'nameserver': (dns.nameservers ??= []).push(f[1]!); break;
      case 'domain': dns.domain = f[1]!; break;
      case 'search': (dns.search ??= []).push(...f.slice(1)); break;
      case 'options': (dns.options ??= []).push(...f.slice(1)); break;
    }
  }
  return dns;
}

/** Reads the `resolvConf` file; an unreadable file is CniError 7 naming it. */
export function loadResolvConf(path: string): DNS {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw invalidConfig(`ipam.resolvConf: cannot read ${path}: ${describe(err)}`);
  }
  return parseResolvConf(text);
}

/**
 * CNI results: the in-memory shape (spec 1.1.0) and conversion to and from every spec version.
 *
 * Internally a result is always the 1.1.0 shape. `parseResult` reads any version (0.1.0/0.2.0
 * `ip4`/`ip6`, 0.3.x/0.4.0 with `ips[].version`, 1.x) into it; `formatResult` writes it in the
 * version the config asked for, dropping what that version cannot express (1.1.0 interface and
 * route fields before 1.1.0; everything but the first IP per family before 0.3.0). Results are
 * read as Go's encoding/json reads them into the reference's Result structs: keys matched
 * case-insensitively (go-keys.ts), unknown keys ignored.
 */
import { CniCode, CniError } from './errors.ts';
import { atLeast, isSupported } from './version.ts';
import * as z from 'zod/mini';
import { formatIssues } from './schema.ts';
import { goKeys } from './go-keys.ts';
import { cidrOf, familyOfAddress } from '../ip/cidr.ts';

export interface Interface { name: string; mac?: string; mtu?: number; sandbox?: string; socketPath?: string; pciID?: string }
export interface IPConfig { address: string; gateway?: string; interface?: number }
export interface Route { dst: string; gw?: string; mtu?: number; advmss?: number; priority?: number; table?: number; scope?: number }
export interface DNS { nameservers?: string[]; domain?: string; search?: string[]; options?: string[] }
export interface Result { cniVersion: string; interfaces?: Interface[]; ips?: IPConfig[]; routes?: Route[]; dns?: DNS }

// Built on first use: constructing zod schemas costs start-up time, and most calls (an ADD
// that only prints its result, say) never parse one.
function buildSchemas() {
  const dnsSchema = z.object({
    nameservers: z.optional(z.array(z.string())),
    domain: z.optional(z.string()),
    search: z.optional(z.array(z.string())),
    options: z.optional(z.array(z.string())),
  });
  const routeSchema = z.object({
    dst: z.string(), gw: z.optional(z.string()),
    mtu: z.optional(z.number()), advmss: z.optional(z.number()), priority: z.optional(z.number()),
    table: z.optional(z.number()), scope: z.optional(z.number()),
  });
  const currentSchema = z.object({
    cniVersion: z.optional(z.string()),
    interfaces: z.optional(z.array(z.object({
      name: z.string(), mac: z.optional(z.string()), mtu: z.optional(z.number()), sandbox: z.optional(z.string()),
      socketPath: z.optional(z.string()), pciID: z.optional(z.string()),
    }))),
    ips: z.optional(z.array(z.object({
      version: z.optional(z.string()), address: z.string(), gateway: z.optional(z.string()), interface: z.optional(z.number()),
    }))),
    routes: z.optional(z.array(routeSchema)),
    dns: z.optional(dnsSchema),
  });
  const legacyIp = z.object({ ip: z.string(), gateway: z.optional(z.string()), routes: z.optional(z.array(z.object({ dst: z.string(), gw: z.optional(z.string()) }))) });
  const legacySchema = z.object({ cniVersion: z.optional(z.string()), ip4: z.optional(legacyIp), ip6: z.optional(legacyIp), dns: z.optional(dnsSchema) });
  return { currentSchema, legacySchema };
}
let schemas: ReturnType<typeof buildSchemas> | undefined;
const resultSchemas = () => (schemas ??= buildSchemas());

function clean<T extends object>(o: T): T {
  for (const k of Object.keys(o) as (keyof T)[]) if (o[k] === undefined) delete o[k];
  return o;
}

/**
 * Reads a result of any supported version (a prevResult, a delegate's output, a cached result).
 * A result without `cniVersion` is taken to be in `defaultVersion` (the config's), per libcni.
 */
export function parseResult(raw: unknown, defaultVersion: string, what = 'result'): Result {
  const { currentSchema, legacySchema } = resultSchemas();
  const current = goKeys(currentSchema, raw);
  const version = (current && typeof current === 'object' && typeof (current as { cniVersion?: unknown }).cniVersion === 'string')
    ? (current as { cniVersion: string }).cniVersion : defaultVersion;
  if (!isSupported(version)) throw new CniError(CniCode.IncompatibleVersion, `unsupported ${what} version "${version}"`);
  if (!atLeast(version, '0.3.0')) {
    const legacy = goKeys(legacySchema, raw);
    const r = legacySchema.safeParse(legacy);
    if (!r.success) throw new CniError(CniCode.DecodingFailure, `failed to parse ${what}`, formatIssues(r.error.issues as never, legacy));
    const out: Result = { cniVersion: version, ips: [], routes: [] };
    for (const ip of [r.data.ip4, r.data.ip6]) {
      if (!ip) continue;
      out.ips!.push(clean({ address: ip.ip, gateway: ip.gateway }));
      for (const rt of ip.routes ?? []) out.routes!.push(clean({ dst: rt.dst, gw: rt.gw }));
    }
    if (r.data.dns) out.dns = r.data.dns;
    return out;
  }
  const r = currentSchema.safeParse(current);
  if (!r.success) throw new CniError(CniCode.DecodingFailure, `failed to parse ${what}`, formatIssues(r.error.issues as never, current));
  const d = r.data;
  const out: Result = { cniVersion: version };
  if (d.interfaces) out.interfaces = d.interfaces.map((i) => clean({ ...i }));
  if (d.ips) out.ips = d.ips.map((ip) => clean({ address: ip.address, gateway: ip.gateway, interface: ip.interface }));
  if (d.routes) out.routes = d.routes.map((rt) => clean({ ...rt }));
  if (d.dns) out.dns = clean({ ...d.dns });
  return out;
}

/**
 * Reads a config's `prevResult` (absent or null: undefined). It is part of the network config, so
 * a prevResult that does not decode is code 7 naming it (`prevResult.ips: expected array, got
 * string`); an unsupported version stays code 1.
 */
export function parsePrevResult(raw: unknown, configVersion: string): Result | undefined {
  if (raw === undefined || raw === null) return undefined;
  try {
    return parseResult(raw, configVersion, 'prevResult');
  } catch (err) {
    if (!(err instanceof CniError) || err.code !== CniCode.DecodingFailure) throw err;
    const details = (err.details ?? '').split('; ').map((d) => (d.startsWith('(config)') ? `prevResult${d.slice('(config)'.length)}` : d.startsWith('[') ? `prevResult${d}` : `prevResult.${d}`));
    throw new CniError(CniCode.InvalidConfig, 'failed to parse prevResult', details.join('; '), { cause: err });
  }
}

/**
 * Returns the IPs of the container interface `ifName` in a result, by the chaining rule of the
 * spec (docs/cni-notes.md §1.8): an IP whose `interface` points at the entry with that name and a
 * non-empty `sandbox`; IPs without `interface` (or -1) are accepted too.
 */
export function containerIPs(r: Result | undefined, ifName: string): IPConfig[] {
  return (r?.ips ?? []).filter((ip) => {
    if (ip.interface === undefined || ip.interface < 0) return true;
    const itf = r?.interfaces?.[ip.interface];
    return itf !== undefined && itf.name === ifName && Boolean(itf.sandbox);
  });
}

/** Copies the non-empty DNS fields (Go's `omitempty` on each); undefined when none is left. */
function formatDns(d: DNS | undefined): DNS | undefined {
  if (!d) return undefined;
  const out: DNS = {};
  if (d.nameservers?.length) out.nameservers = [...d.nameservers];
  if (d.domain) out.domain = d.domain;
  if (d.search?.length) out.search = [...d.search];
  if (d.options?.length) out.options = [...d.options];
  return Object.keys(out).length ? out : undefined;
}

/** Writes `r` as the JSON object of spec `version`, as the reference plugins would print it. */
export function formatResult(r: Result, version: string): Record<string, unknown> {
  if (!atLeast(version, '0.3.0')) {
    const out: Record<string, unknown> = { cniVersion: version };
    for (const fam of [4, 6] as const) {
      const ip = r.ips?.find((i) => familyOfAddress(i.address) === fam);
      if (!ip) continue;
      const routes = (r.routes ?? []).filter((rt) => cidrOf(rt.dst).family === fam).map((rt) => clean({ dst: rt.dst, gw: rt.gw }));
      out[`ip${fam}`] = clean({ ip: ip.address, gateway: ip.gateway, routes: routes.length ? routes : undefined });
    }
    if (!out.ip4 && !out.ip6) throw new CniError(CniCode.IncompatibleVersion, `cannot convert result to version ${version}`, 'a 0.1.0/0.2.0 result needs at least one IP address');
    const dns = formatDns(r.dns);
    if (dns) out.dns = dns;
    return out;
  }
  const v11 = atLeast(version, '1.1.0');
  const v1 = atLeast(version, '1.0.0');
  const out: Record<string, unknown> = { cniVersion: version };
  if (r.interfaces?.length) {
    out.interfaces = r.interfaces.map((i) => clean(v11 ? { ...i } : { name: i.name, mac: i.mac, sandbox: i.sandbox }));
  }
  if (r.ips?.length) {
    out.ips = r.ips.map((ip) => clean(v1
      ? { address: ip.address, gateway: ip.gateway, interface: ip.interface }
      : { version: String(familyOfAddress(ip.address)), address: ip.address, gateway: ip.gateway, interface: ip.interface }));
  }
  if (r.routes?.length) out.routes = r.routes.map((rt) => clean(v11 ? { ...rt } : { dst: rt.dst, gw: rt.gw }));
  const dns = formatDns(r.dns);
  if (dns) out.dns = dns;
  return out;
}

/**
 * The conflist `cnikit network create` writes, and what `network ls`/`inspect`/`rm` read back
 * from any conflist. Building is pure and follows CONTRACTS.md: bridge (+ host-local), portmap,
 * firewall, tuning, dnsname, each only if its type is one cnikit builds (executables.ts), with
 * the keys the plugins honour, and a top-level `cnikit` object (libcni ignores unknown keys) that
 * tells the networks cnikit made from the others. One departure: no `isDefaultGateway` (below).
 *
 * Reading is lenient: a conflist written by Podman, by hand or by another tool is summarised from
 * the keys the reference plugins define (bridge `bridge`, host-local `ranges`/`subnet`, static
 * `addresses`), and anything unknown is left out rather than refused.
 */
import { type Cidr, formatCidr, formatIP, networkOf, tryParseCidr } from '../../pkg/ip/cidr.ts';
import type { SubnetWithGateway } from './subnets.ts';

/** The `cnikit.createdBy` of networks this command made (what `prune` removes). */
export const CREATED_BY = 'cnikit network create';

/** dnsname's domain when --dns-domain is not given (CONTRACTS.md). */
export const DEFAULT_DOMAIN = 'dns.cnikit';

export type Isolation = 'open' | 'same-bridge' | 'strict';

/**
 * --isolate to the firewall plugin's keys (CONTRACTS.md). strict is netavark's `isolate: strict`:
 * `same-bridge` keeps other networks out and cnikit's `strictIsolation` keeps this one's
 * containers from reaching into them, while they still reach each other. Not the reference's
 * `isolated`, which also cuts them off from each other (that is `--no-icc`). A reference
 * firewall ignores the extension key and gives the closest it has, same-bridge.
 */
export const FIREWALL_ISOLATION: Record<Isolation, { ingressPolicy: string; strictIsolation?: true }> = {
  open: { ingressPolicy: 'open' }, 'same-bridge': { ingressPolicy: 'same-bridge' }, strict: { ingressPolicy: 'same-bridge', strictIsolation: true },
};

export type Resolver = 'gateway' | '127.0.0.11';

/** Everything a network is made from, decided and checked (create.ts builds it). */
export interface NetworkSpec {
  name: string;
  bridge: string;
  ranges: SubnetWithGateway[];
  internal: boolean;
  isolate: Isolation;
  /** false: containers of the network cannot reach each other (Docker enable_icc=false). */
  icc: boolean;
  mtu?: number;
  /** undefined: --no-dns. */
  dns?: { domain: string; resolver: Resolver; upstreams?: string[]; dir?: string };
  labels: Record<string, string>;
  /** host-local's dataDir (default: the plugin's, /var/lib/cni/networks). */
  ipamDir?: string;
  /** ISO-8601. */
  created: string;
}

/** Builds the conflist object for `spec`, with only the plugins in `types` in the chain. */
export function buildConflist(spec: NetworkSpec, types: ReadonlySet<string>): Record<string, unknown> {
  const families = [...new Set(spec.ranges.map((r) => r.subnet.family))].sort();
  const ipam: Record<string, unknown> = {
    type: 'host-local',
    ranges: spec.ranges.map((r) => [{ subnet: formatCidr(r.subnet), ...(r.gateway ? { gateway: formatIP(r.gateway) } : {}) }]),
    routes: spec.internal ? [] : families.map((f) => ({ dst: f === 4 ? '0.0.0.0/0' : '::/0' })),
  };
  if (spec.ipamDir) ipam.dataDir = spec.ipamDir;
  const plugins: Record<string, unknown>[] = [{
    // No isDefaultGateway (CONTRACTS.md lists it): with the default routes below as well, the
    // reference bridge (1.1.x) adds the default route twice and fails ADD with "file exists".
    // The routes alone give the same default route with either bridge, as Podman's conflists do.
    type: 'bridge', bridge: spec.bridge, isGateway: true, ipMasq: !spec.internal, hairpinMode: true,
    ...(spec.mtu ? { mtu: spec.mtu } : {}), ipam, capabilities: { ips: true, mac: true },
  }];
  if (types.has('portmap')) plugins.push({ type: 'portmap', capabilities: { portMappings: true } });
  if (types.has('firewall')) {
    plugins.push({
      type: 'firewall', ...FIREWALL_ISOLATION[spec.isolate],
      ...(spec.internal ? { internal: true } : {}), ...(spec.icc ? {} : { icc: false }),
    });
  }
  if (types.has('tuning')) plugins.push({ type: 'tuning', capabilities: { mac: true } });
  if (spec.dns && types.has('dnsname')) {
    const d = spec.dns;
    plugins.push({
      type: 'dnsname', domainName: d.domain, resolver: d.resolver, ...(spec.internal ? { internal: true } : {}),
      ...(d.upstreams ? { upstreams: d.upstreams } : {}), ...(d.dir ? { recordsDir: d.dir } : {}),
      capabilities: { aliases: true },
    });
  }
  return {
    cniVersion: '1.0.0', name: spec.name, plugins,
    cnikit: { createdBy: CREATED_BY, labels: spec.labels, created: spec.created },
  };
}

/** What ls/inspect show of a network, and what create/rm check against. */
export interface NetworkSummary {
  name: string;
  file: string;
  /** Subnets of its IPAM (canonical text), in config order. */
  subnets: string[];
  /** The bridge the chain's bridge plugin uses (its default is cni0); undefined without one. */
  bridge: string | undefined;
  /** dnsname's domain and resolver; undefined without dnsname. */
  dns: { domain: string; resolver: string } | undefined;
  internal: boolean;
  /** The firewall plugin's ingressPolicy (`strict` with its strictIsolation), if it is in the chain. */
  isolation: string | undefined;
  /** Set when `cnikit network create` made it. */
  cnikit: { labels: Record<string, string>; created: string } | undefined;
  /** Plugin types of the chain, in order. */
  types: string[];
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => !!v && typeof v === 'object' && !Array.isArray(v);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

function subnetsOfIpam(ipam: unknown): Cidr[] {
  if (!isObj(ipam)) return [];
  const out: Cidr[] = [];
  const add = (s: unknown) => {
    const c = typeof s === 'string' ? tryParseCidr(s) : undefined;
    if (c) out.push(networkOf(c));
  };
  if (Array.isArray(ipam.ranges)) {
    for (const set of ipam.ranges) if (Array.isArray(set)) for (const r of set) if (isObj(r)) add(r.subnet);
  }
  add(ipam.subnet);
  if (Array.isArray(ipam.addresses)) for (const a of ipam.addresses) if (isObj(a)) add(a.address);
  return out;
}

/** The plugin objects of a parsed conflist, or of a single-plugin .conf (the object itself). */
export function pluginsOf(raw: Obj): Obj[] {
  if (Array.isArray(raw.plugins)) return raw.plugins.filter(isObj);
  return typeof raw.type === 'string' ? [raw] : [];
}

/** Every subnet a network's IPAM hands out from (as Cidr values, for overlap checks). */
export function subnetsOf(raw: Obj): Cidr[] {
  return pluginsOf(raw).flatMap((p) => subnetsOfIpam(p.ipam));
}

/** Summarises a parsed conflist (or .conf) read from `file`. */
export function summarize(raw: Obj, file: string): NetworkSummary {
  const plugins = pluginsOf(raw);
  const br = plugins.find((p) => p.type === 'bridge');
  const dns = plugins.find((p) => p.type === 'dnsname');
  const fw = plugins.find((p) => p.type === 'firewall');
  const meta = isObj(raw.cnikit) && raw.cnikit.createdBy === CREATED_BY ? raw.cnikit : undefined;
  const labels: Record<string, string> = {};
  if (meta && isObj(meta.labels)) for (const [k, v] of Object.entries(meta.labels)) if (typeof v === 'string') labels[k] = v;
  return {
    name: str(raw.name) ?? '',
    file,
    subnets: subnetsOf(raw).map(formatCidr),
    bridge: br ? str(br.bridge) ?? 'cni0' : undefined,
    dns: dns ? { domain: str(dns.domainName) ?? DEFAULT_DOMAIN, resolver: str(dns.resolver) ?? 'gateway' } : undefined,
    // Ours without a firewall or DNS say so by having no way out; others only by the extension keys.
    internal: fw?.internal === true || dns?.internal === true
      || (!!meta && br !== undefined && br.ipMasq !== true && !plugins.some((p) => isObj(p.ipam) && Array.isArray(p.ipam.routes) && p.ipam.routes.length > 0)),
    isolation: fw ? (fw.strictIsolation === true ? 'strict' : str(fw.ingressPolicy) || 'open') : undefined,
    cnikit: meta ? { labels, created: str(meta.created) ?? '' } : undefined,
    types: plugins.map((p) => str(p.type) ?? '?'),
  };
}

/**
 * The portmap plugin's config (docs/cni-notes.md §5.1): reference keys in a zod/mini schema, the
 * `portMappings` capability, and the container addresses taken from prevResult (§1.8). Every
 * check is done here, before anything is touched.
 *
 * Keys that only make sense for the iptables backend (markMasqBit, externalSetMarkChain,
 * conditionsV4/V6, backend "iptables") are rejected with code 2 naming the key: cnikit has only
 * the nftables driver, and silently ignoring a condition would publish a port more widely than
 * the admin asked.
 */
import * as z from 'zod/mini';
import { CniCode, CniError, invalidConfig } from '../../pkg/cni/errors.ts';
import { containerIPs, parsePrevResult, type Result } from '../../pkg/cni/result.ts';
import { netConfBase, parseWith } from '../../pkg/cni/schema.ts';
import { type Cidr, type IP, tryParseCidr, tryParseIP } from '../../pkg/ip/cidr.ts';
import type { L4Proto } from '../../pkg/nftables/match.ts';
import type { PortMapping } from './rules.ts';

const mappingSchema = z.object({
  hostPort: z.number(),
  containerPort: z.number(),
  protocol: z.optional(z.string()),
  hostIP: z.optional(z.string()),
});

const schema = z.object({
  ...netConfBase,
  snat: z.optional(z.boolean()),
  masqAll: z.optional(z.boolean()),
  markMasqBit: z.optional(z.unknown()),
  externalSetMarkChain: z.optional(z.unknown()),
  conditionsV4: z.optional(z.unknown()),
  conditionsV6: z.optional(z.unknown()),
  backend: z.optional(z.string()),
  runtimeConfig: z.optional(z.looseObject({ portMappings: z.optional(z.array(mappingSchema)) })),
});

export interface PortmapConf {
  name: string;
  cniVersion: string;
  snat: boolean;
  masqAll: boolean;
  mappings: PortMapping[];
  /** prevResult in the internal shape; undefined when the runtime sent none. */
  prevResult: Result | undefined;
}

const PROTOCOLS: readonly string[] = ['tcp', 'udp', 'sctp'];

function port(v: number, where: string): number {
  if (!Number.isInteger(v) || v < 1 || v > 65535) throw invalidConfig(`${where}: must be an integer port 1-65535, got ${v}`);
  return v;
}

/** Parses stdin into a PortmapConf; throws CniError 7 (invalid) or 2 (iptables-only key). */
export function parsePortmapConf(raw: Record<string, unknown>): PortmapConf {
  const c = parseWith(schema, raw);
  for (const key of ['markMasqBit', 'externalSetMarkChain', 'conditionsV4', 'conditionsV6'] as const) {
    if (c[key] !== undefined && c[key] !== null) {
      throw new CniError(CniCode.UnsupportedField, `unsupported config field "${key}"`,
        `${key}=${JSON.stringify(c[key])} is an iptables-backend option; cnikit portmap uses nftables only`);
    }
  }
  if (c.backend !== undefined && c.backend !== '' && c.backend !== 'nftables') {
    throw new CniError(CniCode.UnsupportedField, 'unsupported config field "backend"', `backend=${JSON.stringify(c.backend)}: cnikit portmap supports only "nftables"`);
  }
  const mappings: PortMapping[] = (c.runtimeConfig?.portMappings ?? []).map((m, i) => {
    const where = `runtimeConfig.portMappings[${i}]`;
    const protocol = (m.protocol ?? 'tcp').toLowerCase();
    if (!PROTOCOLS.includes(protocol)) throw invalidConfig(`${where}.protocol: must be tcp, udp or sctp, got ${JSON.stringify(m.protocol)}`);
    const out: PortMapping = { hostPort: port(m.hostPort, `${where}.hostPort`), containerPort: port(m.containerPort, `${where}.containerPort`), protocol: protocol as L4Proto };
    if (m.hostIP !== undefined && m.hostIP !== '') {
      const ip = tryParseIP(m.hostIP);
      if (!ip) throw invalidConfig(`${where}.hostIP: not an IP address: ${JSON.stringify(m.hostIP)}`);
      out.hostIP = ip;
    }
    return out;
  });
  // Two mappings of one host address and port would collide in our own transaction.
  const seen = new Map<string, number>();
  mappings.forEach((m, i) => {
    const k = `${m.protocol}/${m.hostIP ? `${m.hostIP.family}:${m.hostIP.value}` : '*'}/${m.hostPort}`;
    const j = seen.get(k);
    if (j !== undefined) throw invalidConfig(`runtimeConfig.portMappings[${i}] maps the same host port as [${j}] (${m.protocol} ${m.hostPort})`);
    seen.set(k, i);
  });
  const prevResult = parsePrevResult(c.prevResult, c.cniVersion ?? '0.1.0');
  return { name: c.name, cniVersion: c.cniVersion ?? '0.1.0', snat: c.snat ?? true, masqAll: c.masqAll ?? false, mappings, prevResult };
}

/**
 * Picks the container's first IPv4 and first IPv6 address (with prefix) from prevResult: IPs whose
 * `interface` points at the entry named `ifName` with a sandbox, or IPs without `interface`.
 */
export function containerAddresses(r: Result | undefined, ifName: string): { v4?: Cidr; v6?: Cidr } {
  const out: { v4?: Cidr; v6?: Cidr } = {};
  for (const ip of containerIPs(r, ifName)) {
    const c = tryParseCidr(ip.address);
    if (!c) continue;
    if (c.family === 4 && !out.v4) out.v4 = c;
    if (c.family === 6 && !out.v6) out.v6 = c;
  }
  return out;
}

export type { IP };

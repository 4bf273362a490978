/**
 * The portmap ruleset, as a pure function of the attachment (no I/O; unit-tested against golden
 * bytes). Everything lives in table `inet cnikit` next to bridge's ipMasq objects:
 *
 *   map portmap_any4  { type inet_proto . inet_service : ipv4_addr . inet_service }     hostPort on every local address
 *   map portmap_addr4 { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service }  hostIP:hostPort
 *   map portmap_any6, portmap_addr6                                                    the same for IPv6
 *   set portmap_hairpin_if4 { type ifname . ipv4_addr }   input link . container address
 *   set portmap_masqall4    { type ipv4_addr }            container address (masqAll)
 *   set portmap_hairpin4    { type ipv4_addr . ipv4_addr; flags interval }   legacy: subnet . address
 *   (the same three for IPv6)
 *
 *   chain portmap_prerouting { type nat hook prerouting priority dstnat; fib daddr type local jump portmap_hostports }
 *   chain portmap_output     { type nat hook output priority dstnat;     fib daddr type local jump portmap_hostports }
 *   chain portmap_hostports {
 *     meta nfproto ipv4 dnat ip to ip daddr . meta l4proto . th dport map @portmap_addr4
 *     meta nfproto ipv4 dnat ip to meta l4proto . th dport map @portmap_any4
 *     (the same for ipv6)
 *   }
 *   chain portmap_postrouting { type nat hook postrouting priority srcnat;
 *     ct status dnat meta nfproto ipv4 ip saddr 127.0.0.0/8 masquerade                   localhost -> container
 *     ct status dnat meta nfproto ipv4 iifname . ip daddr @portmap_hairpin_if4 fib saddr type != local masquerade  hairpin
 *     ct status dnat meta nfproto ipv4 ip daddr @portmap_masqall4 masquerade                  masqAll
 *     ct status dnat meta nfproto ipv4 ip saddr . ip daddr @portmap_hairpin4 masquerade       legacy hairpin
 *     (the same three for ipv6)
 *   }
 *
 * A container's state is its elements only: one map element per mapping and family, and, with
 * snat, two hairpin elements per container address. `"cni0" . A` says "a DNATed connection to
 * A that came in on the link that leads to A must be masqueraded": it comes from a neighbour on
 * A's bridge (or from A), and A's reply would otherwise go straight back over the bridge,
 * skipping the host's conntrack. `"" . A` says the same of a DNATed frame that has no input
 * link in postrouting: with bridge-nf-call-iptables a neighbour's frame is DNATed while it is
 * bridged, and stays bridged; the host's own connections have no input link either, and the
 * rule's `fib saddr type != local` leaves them as they are. With masqAll, one element saying
 * "masquerade every DNATed connection to me". The chains hold only these fixed rules, and every
 * set a packet or a call looks into is a hash, so ADD and DEL cost the same with one container
 * or a thousand. Every element carries the attachment's owner tag as its comment.
 *
 * The legacy set is what cnikit wrote before 2026-12 (the container's subnet as a range: an
 * interval set, whose lookups and commits grow with its size, 7-8 ms per DEL at 400
 * containers). Nothing adds to it now; its rule stays, so attachments made before an upgrade
 * keep their hairpin until their DEL removes them, and DEL and GC look there too.
 *
 * Not done: `::1` cannot be DNATed to a container (the kernel has no route_localnet for IPv6),
 * exactly as upstream. A wildcard and a hostIP mapping of the same port may coexist; the
 * hostIP one wins on its address.
 */
import type { PortMapping as CapabilityPortMapping } from '../../pkg/cni/capabilities.ts';
import { type Cidr, type Family, type IP, bitsOf, formatIP, ipToBytes, lastOf, networkOf } from '../../pkg/ip/cidr.ts';
import { PRIORITY } from '../../pkg/nftables/consts.ts';
import {
  addrField, addrType, concatKey, ctStatusDnat, dnatMap, fibTypeLocal, inSet, jump, masquerade, nfproto,
  portBytes, protoBytes, addrInPrefix, ifnameBytes,
} from '../../pkg/nftables/match.ts';
import { CNIKIT_TABLE, type Ruleset } from '../../pkg/nftables/model.ts';
import { ownerTag } from '../../pkg/nftables/owned.ts';
import type { ElementSpec, RuleSpec, SetSpec } from '../../pkg/nftables/objects.ts';
import { parseCidr } from '../../pkg/ip/cidr.ts';

export const CHAIN = {
  PREROUTING: 'portmap_prerouting',
  OUTPUT: 'portmap_output',
  HOSTPORTS: 'portmap_hostports',
  POSTROUTING: 'portmap_postrouting',
} as const;

export const SET = {
  ANY4: 'portmap_any4', ADDR4: 'portmap_addr4', ANY6: 'portmap_any6', ADDR6: 'portmap_addr6',
  HAIRPIN_IF4: 'portmap_hairpin_if4', HAIRPIN_IF6: 'portmap_hairpin_if6',
  MASQALL4: 'portmap_masqall4', MASQALL6: 'portmap_masqall6',
  LEGACY_HAIRPIN4: 'portmap_hairpin4', LEGACY_HAIRPIN6: 'portmap_hairpin6',
} as const;

/** Every set portmap owns elements in (for DEL/GC scans). */
export const ALL_SETS: string[] = Object.values(SET);

/** A checked port mapping: the capability's entry with its host address parsed. */
export type PortMapping = CapabilityPortMapping<IP>;

export interface PortmapInput {
  network: string;
  containerId: string;
  ifName: string;
  /** The container's first IPv4 / IPv6 address with its prefix (from prevResult). */
  v4?: Cidr;
  v6?: Cidr;
  /** The host link that routes to v4 / v6 (the bridge), for the routed hairpin element; without it, only the bridged-frame one. */
  via?: { 4?: string; 6?: string };
  mappings: PortMapping[];
  snat: boolean;
  masqAll: boolean;
}

const anySet = (f: Family): string => (f === 4 ? SET.ANY4 : SET.ANY6);
const addrSet = (f: Family): string => (f === 4 ? SET.ADDR4 : SET.ADDR6);
const hairpinSet = (f: Family): string => (f === 4 ? SET.HAIRPIN_IF4 : SET.HAIRPIN_IF6);
const masqAllSet = (f: Family): string => (f === 4 ? SET.MASQALL4 : SET.MASQALL6);
const legacyHairpinSet = (f: Family): string => (f === 4 ? SET.LEGACY_HAIRPIN4 : SET.LEGACY_HAIRPIN6);

/** The fixed part: sets, chains and rules shared by every attachment. */
export function portmapSkeleton(): Ruleset {
  const sets: SetSpec[] = [];
  const rules: RuleSpec[] = [];
  for (const f of [4, 6] as const) {
    sets.push(
      { name: anySet(f), key: ['inet_proto', 'inet_service'], data: [addrType(f), 'inet_service'] },
      { name: addrSet(f), key: [addrType(f), 'inet_proto', 'inet_service'], data: [addrType(f), 'inet_service'] },
      { name: hairpinSet(f), key: ['ifname', addrType(f)] },
      { name: masqAllSet(f), key: [addrType(f)] },
      { name: legacyHairpinSet(f), key: [addrType(f), addrType(f)], interval: true },
    );
  }
  // fib daddr type local jump portmap_hostports
  rules.push({ chain: CHAIN.PREROUTING, exprs: [...fibTypeLocal('daddr'), ...jump(CHAIN.HOSTPORTS)] });
  rules.push({ chain: CHAIN.OUTPUT, exprs: [...fibTypeLocal('daddr'), ...jump(CHAIN.HOSTPORTS)] });
  for (const f of [4, 6] as const) {
    // meta nfproto ipvX dnat ipX to ipX daddr . meta l4proto . th dport map @portmap_addrX
    rules.push({ chain: CHAIN.HOSTPORTS, exprs: [...nfproto(f), ...dnatMap(f, [addrField(f, 'daddr'), 'meta l4proto', 'th dport'], addrSet(f))] });
    // meta nfproto ipvX dnat ipX to meta l4proto . th dport map @portmap_anyX
    rules.push({ chain: CHAIN.HOSTPORTS, exprs: [...nfproto(f), ...dnatMap(f, ['meta l4proto', 'th dport'], anySet(f))] });
  }
  // ct status dnat meta nfproto ipv4 ip saddr 127.0.0.0/8 masquerade
  rules.push({ chain: CHAIN.POSTROUTING, exprs: [...ctStatusDnat(), ...nfproto(4), ...addrInPrefix('saddr', parseCidr('127.0.0.0/8')), ...masquerade()] });
  for (const f of [4, 6] as const) {
    // ct status dnat meta nfproto ipvX iifname . ipX daddr @portmap_hairpin_ifX fib saddr type != local masquerade
    rules.push({ chain: CHAIN.POSTROUTING, exprs: [...ctStatusDnat(), ...nfproto(f), ...inSet(['iifname', addrField(f, 'daddr')], hairpinSet(f)), ...fibTypeLocal('saddr', 'neq'), ...masquerade()] });
    // ct status dnat meta nfproto ipvX ipX daddr @portmap_masqallX masquerade
    rules.push({ chain: CHAIN.POSTROUTING, exprs: [...ctStatusDnat(), ...nfproto(f), ...inSet([addrField(f, 'daddr')], masqAllSet(f)), ...masquerade()] });
    // ct status dnat meta nfproto ipvX ipX saddr . ipX daddr @portmap_hairpinX masquerade
    rules.push({ chain: CHAIN.POSTROUTING, exprs: [...ctStatusDnat(), ...nfproto(f), ...inSet([addrField(f, 'saddr'), addrField(f, 'daddr')], legacyHairpinSet(f)), ...masquerade()] });
  }
  return {
    table: CNIKIT_TABLE,
    sets,
    chains: [
      { name: CHAIN.PREROUTING, base: { type: 'nat', hook: 'prerouting', priority: PRIORITY.dstnat, policy: 'accept' } },
      { name: CHAIN.OUTPUT, base: { type: 'nat', hook: 'output', priority: PRIORITY.dstnat, policy: 'accept' } },
      { name: CHAIN.HOSTPORTS },
      { name: CHAIN.POSTROUTING, base: { type: 'nat', hook: 'postrouting', priority: PRIORITY.srcnat, policy: 'accept' } },
    ],
    rules,
    elements: [],
  };
}

/** True when a hostIP means "every address" (absent, 0.0.0.0 or ::). */
export function isWildcard(hostIP: IP | undefined): boolean {
  return !hostIP || hostIP.value === 0n;
}

/** The mappings that apply to family `f`: a hostIP of the other family is skipped, as upstream does. */
export function mappingsFor(f: Family, mappings: PortMapping[]): PortMapping[] {
  return mappings.filter((m) => isWildcard(m.hostIP) || m.hostIP!.family === f);
}

/** Describes an element for messages: `tcp 8080 -> 10.77.0.5:80`. */
export function describeMapping(m: PortMapping, target?: IP): string {
  const host = isWildcard(m.hostIP) ? '' : (m.hostIP!.family === 6 ? `[${formatIP(m.hostIP!)}]:` : `${formatIP(m.hostIP!)}:`);
  const to = target ? ` -> ${target.family === 6 ? `[${formatIP(target)}]` : formatIP(target)}:${m.containerPort}` : '';
  return `${m.protocol} ${host}${m.hostPort}${to}`;
}

/** One element of portmap state with what it means, for messages. */
export interface OwnedElement extends ElementSpec { describe: string; mapping?: PortMapping }

/** The elements one attachment owns (map entries and hairpin entries), in a stable order. */
export function portmapElements(c: PortmapInput): OwnedElement[] {
  const comment = ownerTag(c.network, c.containerId, c.ifName);
  const out: OwnedElement[] = [];
  for (const f of [4, 6] as const) {
    const cip = f === 4 ? c.v4 : c.v6;
    if (!cip) continue;
    const maps = mappingsFor(f, c.mappings);
    if (!maps.length) continue;
    const target = ipToBytes(cip);
    for (const m of maps) {
      const data = concatKey(target, portBytes(m.containerPort));
      const tail = [protoBytes(m.protocol), portBytes(m.hostPort)];
      const key = isWildcard(m.hostIP) ? concatKey(...tail) : concatKey(ipToBytes(m.hostIP!), ...tail);
      out.push({ set: isWildcard(m.hostIP) ? anySet(f) : addrSet(f), key, data, comment, describe: describeMapping(m, cip), mapping: m });
    }
    if (c.snat && c.masqAll) {
      out.push({ set: masqAllSet(f), key: target, comment, describe: `masquerade for ${formatIP(cip)}` });
    } else if (c.snat) {
      const via = c.via?.[f];
      if (via) out.push({ set: hairpinSet(f), key: concatKey(ifnameBytes(via), target), comment, describe: `hairpin masquerade for ${formatIP(cip)} via ${via}` });
      out.push({ set: hairpinSet(f), key: concatKey(ifnameBytes(''), target), comment, describe: `hairpin masquerade for ${formatIP(cip)} of bridged frames` });
    }
  }
  return out;
}

/**
 * The hairpin elements an attachment made before 2026-12 may own in the legacy set (both forms:
 * the subnet's range, and every address with masqAll), for DEL to look for.
 */
export function legacyHairpinElements(c: Pick<PortmapInput, 'v4' | 'v6'>): ElementSpec[] {
  const out: ElementSpec[] = [];
  for (const f of [4, 6] as const) {
    const cip = f === 4 ? c.v4 : c.v6;
    if (!cip) continue;
    const target = ipToBytes(cip);
    out.push({ set: legacyHairpinSet(f), key: concatKey(ipToBytes(networkOf(cip)), target), keyEnd: concatKey(ipToBytes(lastOf(cip)), target) });
    out.push({ set: legacyHairpinSet(f), key: concatKey(ipToBytes({ family: f, value: 0n }), target), keyEnd: concatKey(ipToBytes({ family: f, value: (1n << BigInt(bitsOf(f))) - 1n }), target) });
  }
  return out;
}

/** The whole ruleset one ADD applies: the skeleton plus this attachment's elements. */
export function portmapRuleset(c: PortmapInput): Ruleset {
  return { ...portmapSkeleton(), elements: portmapElements(c) };
}

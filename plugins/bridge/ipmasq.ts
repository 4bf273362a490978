/**
 * bridge `ipMasq: true` on nftables: masquerade what a container sends out of its bridge,
 * IPv4 and IPv6, in table `inet cnikit` (shared with portmap):
 *
 *   set ipmasq_src4   { type ipv4_addr }            container address
 *   set ipmasq_local4 { type ipv4_addr . ifname }   container address . its bridge
 *   set ipmasq4       { type ipv4_addr . ipv4_addr; flags interval }   legacy: address . range outside its subnet
 *   (the same three for IPv6)
 *   chain ipmasq_postrouting { type nat hook postrouting priority srcnat;
 *     meta nfproto ipv4 ip daddr 224.0.0.0/4 return
 *     meta nfproto ipv6 ip6 daddr ff00::/8 return
 *     meta nfproto ipv4 ip saddr . oifname @ipmasq_local4 return
 *     meta nfproto ipv4 ip saddr @ipmasq_src4 masquerade
 *     (the same two for ipv6)
 *     meta nfproto ipv4 ip saddr . ip daddr @ipmasq4 masquerade      legacy
 *     meta nfproto ipv6 ip6 saddr . ip6 daddr @ipmasq6 masquerade    legacy
 *   }
 *
 * Per container address two elements: `addr . "cni0"` (what stays on its bridge, to the other
 * containers of the network, is never rewritten) and `addr` (everything else is). This is
 * Docker's rule (`-s SUBNET ! -o docker0 -j MASQUERADE`); the reference writes a rule per
 * address, `ip saddr X ip daddr != SUBNET masquerade`, which differs only for a second subnet on
 * the same bridge: its traffic is routed back onto the bridge and, here, not rewritten. Both sets
 * are hashes, so ADD and DEL cost the same with 1 or 1000 containers.
 *
 * The legacy set is what cnikit wrote before 2026-12: the complement of the subnet as two
 * ranges, in an interval set, whose every commit copies the whole set (~6 ms per ADD and per
 * DEL at 400 containers). Nothing adds to it now; its rules stay, so attachments made before an
 * upgrade keep their masquerade until their DEL removes them, and DEL, CHECK and GC look there.
 * Elements carry the attachment's owner tag; the chain and sets are shared and stay until a GC
 * finds the table empty. Finding, checking and removing an attachment's elements is
 * pkg/nftables/owned.ts.
 */
import { type Cidr, type Family, type IP, bitsOf, formatCidr, ipToBytes, lastOf, networkOf, parseCidr } from '../../pkg/ip/cidr.ts';
import type { Attachment } from '../../pkg/cni/attachment.ts';
import { PRIORITY } from '../../pkg/nftables/consts.ts';
import type { Nftables } from '../../pkg/nftables/handle.ts';
import { addrField, addrInPrefix, addrType, concatKey, ifnameBytes, inSet, masquerade, nfproto, ret } from '../../pkg/nftables/match.ts';
import { CNIKIT_TABLE, type Ruleset, applyRuleset, removeTableIfEmpty } from '../../pkg/nftables/model.ts';
import { checkOwned, deleteOwned, gcOwned, ownerTag } from '../../pkg/nftables/owned.ts';
import type { ElementSpec } from '../../pkg/nftables/objects.ts';

export const IPMASQ_CHAIN = 'ipmasq_postrouting';
export const IPMASQ_SET = {
  src: { 4: 'ipmasq_src4', 6: 'ipmasq_src6' },
  local: { 4: 'ipmasq_local4', 6: 'ipmasq_local6' },
  legacy: { 4: 'ipmasq4', 6: 'ipmasq6' },
} as const;
const SETS: string[] = Object.values(IPMASQ_SET).flatMap((x) => Object.values(x));

export interface IpMasqInput { network: string; containerId: string; ifName: string; addrs: Cidr[]; /** The bridge. */ link: string }

/** The fixed part: six sets and one chain. */
export function ipMasqSkeleton(): Ruleset {
  const fams = [4, 6] as const;
  return {
    table: CNIKIT_TABLE,
    sets: fams.flatMap((f) => [
      { name: IPMASQ_SET.src[f], key: [addrType(f)] },
      { name: IPMASQ_SET.local[f], key: [addrType(f), 'ifname' as const] },
      { name: IPMASQ_SET.legacy[f], key: [addrType(f), addrType(f)], interval: true },
    ]),
    chains: [{ name: IPMASQ_CHAIN, base: { type: 'nat', hook: 'postrouting', priority: PRIORITY.srcnat, policy: 'accept' } }],
    rules: [
      // meta nfproto ipv4 ip daddr 224.0.0.0/4 return
      { chain: IPMASQ_CHAIN, exprs: [...nfproto(4), ...addrInPrefix('daddr', parseCidr('224.0.0.0/4')), ...ret()] },
      // meta nfproto ipv6 ip6 daddr ff00::/8 return
      { chain: IPMASQ_CHAIN, exprs: [...nfproto(6), ...addrInPrefix('daddr', parseCidr('ff00::/8')), ...ret()] },
      ...fams.flatMap((f) => [
        // meta nfproto ipvX ipX saddr . oifname @ipmasq_localX return
        { chain: IPMASQ_CHAIN, exprs: [...nfproto(f), ...inSet([addrField(f, 'saddr'), 'oifname'], IPMASQ_SET.local[f]), ...ret()] },
        // meta nfproto ipvX ipX saddr @ipmasq_srcX masquerade
        { chain: IPMASQ_CHAIN, exprs: [...nfproto(f), ...inSet([addrField(f, 'saddr')], IPMASQ_SET.src[f]), ...masquerade()] },
      ]),
      // meta nfproto ipvX ipX saddr . ipX daddr @ipmasqX masquerade (legacy)
      ...fams.map((f) => ({ chain: IPMASQ_CHAIN, exprs: [...nfproto(f), ...inSet([addrField(f, 'saddr'), addrField(f, 'daddr')], IPMASQ_SET.legacy[f]), ...masquerade()] })),
    ],
    elements: [],
  };
}

/** The elements of one attachment: for each address, "stays on its bridge" and "masquerade". */
export function ipMasqElements(c: IpMasqInput): ElementSpec[] {
  const comment = ownerTag(c.network, c.containerId, c.ifName);
  return c.addrs.flatMap((a) => {
    const src = ipToBytes(a);
    return [
      { set: IPMASQ_SET.local[a.family], key: concatKey(src, ifnameBytes(c.link)), comment },
      { set: IPMASQ_SET.src[a.family], key: src, comment },
    ];
  });
}

/** The elements an attachment made before 2026-12 owns in the legacy set: the ranges outside each address's subnet. */
export function legacyIpMasqElements(addrs: readonly Cidr[]): ElementSpec[] {
  const out: ElementSpec[] = [];
  for (const a of addrs) {
    const f: Family = a.family;
    const src = ipToBytes(a);
    const lo = networkOf(a).value;
    const hi = lastOf(a).value;
    const max = (1n << BigInt(bitsOf(f))) - 1n;
    const range = (from: bigint, to: bigint): ElementSpec => ({
      set: IPMASQ_SET.legacy[f],
      key: concatKey(src, ipToBytes({ family: f, value: from } as IP)), keyEnd: concatKey(src, ipToBytes({ family: f, value: to } as IP)),
    });
    if (lo > 0n) out.push(range(0n, lo - 1n));
    if (hi < max) out.push(range(hi + 1n, max));
  }
  return out;
}

/** Adds the masquerade for an attachment in one transaction (the skeleton is idempotent). */
export async function setupIpMasq(nft: Nftables, c: IpMasqInput): Promise<void> {
  if (!c.addrs.length) return;
  await applyRuleset(nft, { ...ipMasqSkeleton(), elements: ipMasqElements(c) });
}

/**
 * Removes an attachment's masquerade elements; idempotent. With its addresses known the elements
 * are found by point queries; without (`addrs` empty) the sets are scanned for its owner tag.
 */
export async function teardownIpMasq(nft: Nftables, c: IpMasqInput): Promise<void> {
  const candidates = c.addrs.length ? [...ipMasqElements(c), ...legacyIpMasqElements(c.addrs)] : undefined;
  await deleteOwned(nft, CNIKIT_TABLE, SETS, ownerTag(c.network, c.containerId, c.ifName), candidates);
}

/** Lists what CHECK finds wrong with an attachment's masquerade (empty when all is in place). */
export async function checkIpMasq(nft: Nftables, c: IpMasqInput): Promise<string[]> {
  const owner = ownerTag(c.network, c.containerId, c.ifName);
  if (!(await checkOwned(nft, CNIKIT_TABLE, ipMasqElements(c), owner)).length) return [];
  // An attachment made before the hash sets is in place when its legacy ranges are.
  if (c.addrs.length && !(await checkOwned(nft, CNIKIT_TABLE, legacyIpMasqElements(c.addrs), owner)).length) return [];
  return [`masquerade element for ${c.addrs.map(formatCidr).join(', ')} is missing`];
}

/** Removes the masquerade elements of `network` whose attachment is not in `valid`; then an empty table. */
export async function gcIpMasq(nft: Nftables, network: string, valid: readonly Attachment[]): Promise<void> {
  await gcOwned(nft, CNIKIT_TABLE, SETS, network, valid);
  await removeTableIfEmpty(nft, CNIKIT_TABLE);
}

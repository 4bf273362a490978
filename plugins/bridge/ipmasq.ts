/**
 * bridge `ipMasq: true` on nftables: masquerade what a container sends to destinations outside
 * its own subnet, IPv4 and IPv6, in table `inet cnikit` (shared with portmap):
 *
 *   set ipmasq4 { type ipv4_addr . ipv4_addr; flags interval }   container address . a range outside its subnet
 *   set ipmasq6 { type ipv6_addr . ipv6_addr; flags interval }
 *   chain ipmasq_postrouting { type nat hook postrouting priority srcnat;
 *     meta nfproto ipv4 ip daddr 224.0.0.0/4 return
 *     meta nfproto ipv6 ip6 daddr ff00::/8 return
 *     meta nfproto ipv4 ip saddr . ip daddr @ipmasq4 masquerade
 *     meta nfproto ipv6 ip6 saddr . ip6 daddr @ipmasq6 masquerade
 *   }
 *
 * Per container address there are at most two elements: `addr . [lowest, subnet start - 1]` and
 * `addr . [subnet end + 1, highest]`, the complement of its subnet, so traffic to the other
 * containers of the network is never rewritten. (The reference writes a rule per address,
 * `ip saddr X ip daddr != SUBNET masquerade`; a set keeps ADD and DEL cost flat.) Elements carry
 * the attachment's owner tag; the chain and sets are shared and stay until a GC finds the table
 * empty. Finding, checking and removing an attachment's elements is pkg/nftables/owned.ts.
 */
import { type Cidr, type Family, type IP, bitsOf, formatCidr, ipToBytes, lastOf, networkOf, parseCidr } from '../../pkg/ip/cidr.ts';
import type { Attachment } from '../../pkg/cni/attachment.ts';
import { PRIORITY } from '../../pkg/nftables/consts.ts';
import type { Nftables } from '../../pkg/nftables/handle.ts';
import { addrInPrefix, concatKey, inSet, masquerade, nfproto, ret } from '../../pkg/nftables/match.ts';
import { CNIKIT_TABLE, type Ruleset, applyRuleset, removeTableIfEmpty } from '../../pkg/nftables/model.ts';
import { checkOwned, deleteOwned, gcOwned, ownerTag } from '../../pkg/nftables/owned.ts';
import type { ElementSpec } from '../../pkg/nftables/objects.ts';

export const IPMASQ_CHAIN = 'ipmasq_postrouting';
export const IPMASQ_SET = { 4: 'ipmasq4', 6: 'ipmasq6' } as const;
const SETS: string[] = Object.values(IPMASQ_SET);

export interface IpMasqInput { network: string; containerId: string; ifName: string; addrs: Cidr[] }

/** The fixed part: two sets and one chain. */
export function ipMasqSkeleton(): Ruleset {
  return {
    table: CNIKIT_TABLE,
    sets: [
      { name: IPMASQ_SET[4], key: ['ipv4_addr', 'ipv4_addr'], interval: true },
      { name: IPMASQ_SET[6], key: ['ipv6_addr', 'ipv6_addr'], interval: true },
    ],
    chains: [{ name: IPMASQ_CHAIN, base: { type: 'nat', hook: 'postrouting', priority: PRIORITY.srcnat, policy: 'accept' } }],
    rules: [
      // meta nfproto ipv4 ip daddr 224.0.0.0/4 return
      { chain: IPMASQ_CHAIN, exprs: [...nfproto(4), ...addrInPrefix('daddr', parseCidr('224.0.0.0/4')), ...ret()] },
      // meta nfproto ipv6 ip6 daddr ff00::/8 return
      { chain: IPMASQ_CHAIN, exprs: [...nfproto(6), ...addrInPrefix('daddr', parseCidr('ff00::/8')), ...ret()] },
      // meta nfproto ipv4 ip saddr . ip daddr @ipmasq4 masquerade
      { chain: IPMASQ_CHAIN, exprs: [...nfproto(4), ...inSet(['ip saddr', 'ip daddr'], IPMASQ_SET[4]), ...masquerade()] },
      { chain: IPMASQ_CHAIN, exprs: [...nfproto(6), ...inSet(['ip6 saddr', 'ip6 daddr'], IPMASQ_SET[6]), ...masquerade()] },
    ],
    elements: [],
  };
}

/** The elements of one attachment: for each address, the ranges outside its subnet. */
export function ipMasqElements(c: IpMasqInput): ElementSpec[] {
  const comment = ownerTag(c.network, c.containerId, c.ifName);
  const out: ElementSpec[] = [];
  for (const a of c.addrs) {
    const f: Family = a.family;
    const src = ipToBytes(a);
    const lo = networkOf(a).value;
    const hi = lastOf(a).value;
    const max = (1n << BigInt(bitsOf(f))) - 1n;
    const range = (from: bigint, to: bigint): ElementSpec => ({
      set: IPMASQ_SET[f], comment,
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
  await deleteOwned(nft, CNIKIT_TABLE, SETS, ownerTag(c.network, c.containerId, c.ifName), c.addrs.length ? ipMasqElements(c) : undefined);
}

/** Lists what CHECK finds wrong with an attachment's masquerade (empty when all is in place). */
export async function checkIpMasq(nft: Nftables, c: IpMasqInput): Promise<string[]> {
  const problems = await checkOwned(nft, CNIKIT_TABLE, ipMasqElements(c), ownerTag(c.network, c.containerId, c.ifName));
  return problems.length ? [`masquerade element for ${c.addrs.map(formatCidr).join(', ')} is missing`] : [];
}

/** Removes the masquerade elements of `network` whose attachment is not in `valid`; then an empty table. */
export async function gcIpMasq(nft: Nftables, network: string, valid: readonly Attachment[]): Promise<void> {
  await gcOwned(nft, CNIKIT_TABLE, SETS, network, valid);
  await removeTableIfEmpty(nft, CNIKIT_TABLE);
}

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
 * empty.
 */
import { type Cidr, type Family, type IP, bitsOf, formatCidr, ipToBytes, lastOf, networkOf, parseCidr } from '../../pkg/ip/cidr.ts';
import { PRIORITY } from '../../pkg/nftables/consts.ts';
import type { Nftables } from '../../pkg/nftables/handle.ts';
import { addrInPrefix, concatKey, inSet, masquerade, nfproto, ret } from '../../pkg/nftables/match.ts';
import {
  CNIKIT_TABLE, type Ruleset, applyRuleset, deleteElements, findElements, ownerTag, parseOwnerTag, removeTableIfEmpty,
} from '../../pkg/nftables/model.ts';
import { type ElementSpec, getElement } from '../../pkg/nftables/objects.ts';

export const IPMASQ_CHAIN = 'ipmasq_postrouting';
export const IPMASQ_SET = { 4: 'ipmasq4', 6: 'ipmasq6' } as const;

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
export function setupIpMasq(nft: Nftables, c: IpMasqInput): void {
  if (!c.addrs.length) return;
  applyRuleset(nft, { ...ipMasqSkeleton(), elements: ipMasqElements(c) });
}

/**
 * Removes an attachment's masquerade elements; idempotent. With its addresses known the elements
 * are found by point queries; without (`addrs` empty) the sets are scanned for its owner tag.
 */
export function teardownIpMasq(nft: Nftables, c: IpMasqInput): void {
  const owner = ownerTag(c.network, c.containerId, c.ifName);
  for (let round = 0; ; round++) {
    let victims: ElementSpec[];
    if (c.addrs.length) {
      const want = ipMasqElements(c);
      const found = nft.getElements(want.map((e) => getElement(CNIKIT_TABLE, e.set, e.key, e.keyEnd)));
      // A query on an interval set answers with the element containing the key: delete exactly
      // what came back (if it is ours), and each element once.
      const seen = new Set<string>();
      victims = [];
      want.forEach((e, i) => {
        const f = found[i];
        const k = f ? `${e.set}/${f.key.toString('hex')}/${f.keyEnd?.toString('hex') ?? ''}` : '';
        if (!f || f.comment !== owner || seen.has(k)) return;
        seen.add(k);
        victims.push(f.keyEnd ? { set: e.set, key: f.key, keyEnd: f.keyEnd } : { set: e.set, key: f.key });
      });
    } else {
      victims = findElements(nft, CNIKIT_TABLE, Object.values(IPMASQ_SET), (x) => x === owner);
    }
    try {
      deleteElements(nft, CNIKIT_TABLE, victims);
      return;
    } catch (err) {
      // ENOENT: an element vanished between lookup and delete; look again once.
      if ((err as { code?: string }).code !== 'ENOENT' || round >= 1) throw err;
    }
  }
}

/** Lists what CHECK finds wrong with an attachment's masquerade (empty when all is in place). */
export function checkIpMasq(nft: Nftables, c: IpMasqInput): string[] {
  const owner = ownerTag(c.network, c.containerId, c.ifName);
  const want = ipMasqElements(c);
  const found = nft.getElements(want.map((e) => getElement(CNIKIT_TABLE, e.set, e.key, e.keyEnd)));
  const problems: string[] = [];
  want.forEach((e, i) => {
    const f = found[i];
    const exact = f && f.key.equals(e.key) && (!e.keyEnd || (f.keyEnd !== undefined && f.keyEnd.equals(e.keyEnd)));
    if (!exact || f.comment !== owner) problems.push(`masquerade element for ${c.addrs.map(formatCidr).join(', ')} is missing`);
  });
  return [...new Set(problems)];
}

/** Removes the masquerade elements of `network` whose attachment is not in `valid`; then an empty table. */
export function gcIpMasq(nft: Nftables, network: string, valid: { containerID: string; ifname: string }[]): void {
  const keep = new Set(valid.map((v) => `${v.containerID}\n${v.ifname}`));
  const stale = findElements(nft, CNIKIT_TABLE, Object.values(IPMASQ_SET), (x) => {
    const o = parseOwnerTag(x);
    return !!o && o.network === network && !keep.has(`${o.containerId}\n${o.ifName}`);
  });
  deleteElements(nft, CNIKIT_TABLE, stale);
  removeTableIfEmpty(nft, CNIKIT_TABLE);
}

export { openNftables } from '../../pkg/nftables/handle.ts';

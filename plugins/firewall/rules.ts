/**
 * The firewall's nftables state as pure values (no I/O; the rule shapes are checked against
 * `nft`'s own bytes in rules.test.ts). Everything it decides lives in table `inet cnikit`; a
 * foreign chain gets only the one rule `foreignRule()` builds.
 *
 * Why a mark: on one netfilter hook every base chain of every table runs, and a packet is
 * forwarded only if each of them accepts it (docs/cni-notes.md §11.7), so an accept in our table
 * cannot undo a drop policy in iptables' `filter FORWARD` or in an admin's own table. The
 * foreign chain must accept the packet itself, and a rule we put there may use only what
 * `iptables -S`/`iptables-save` can read back (§11.6: no `ct state`, no set lookups). So our
 * chain decides (with conntrack state and sets) and passes its verdict on as one bit of the
 * packet mark, and the foreign rule accepts what carries it:
 *
 *   table inet cnikit {
 *     set firewall_bridges  { type ifname; }                 per network: its bridge
 *     set firewall_same     { type ifname . ifname; }        per network: bridge . bridge ("iif == oif")
 *     set firewall_isolated { type ifname; }                 ingressPolicy same-bridge or isolated
 *     set firewall_internal { type ifname; }                 internal: nothing forwarded in or out
 *     set firewall_noicc    { type ifname . ifname; }        icc false / isolated: bridge . bridge
 *     set firewall_strict   { type ifname; }                 strictIsolation: nothing out into another bridge of ours
 *     map firewall_admin    { type ifname : verdict; }       bridge : jump <iptablesAdminChainName>
 *     set firewall_ctr4     { type ifname . ipv4_addr; }     per container address: bridge . address
 *     set firewall_ctr6     { type ifname . ipv6_addr; }
 *     chain CNI-ADMIN { }                                    the admin's rules; never touched
 *     chain firewall_forward { type filter hook forward priority -200; policy accept;
 *       meta mark set meta mark & ~M                                       only our decision carries M
 *       iifname != @firewall_bridges oifname != @firewall_bridges return   not ours
 *       meta mark set meta mark | M                                        the admin's accept passes everywhere
 *       oifname vmap @firewall_admin
 *       iifname . oifname != @firewall_same iifname vmap @firewall_admin
 *       meta mark set meta mark & ~M
 *       iifname @firewall_internal iifname . oifname != @firewall_same drop
 *       oifname @firewall_internal iifname . oifname != @firewall_same drop
 *       ct state established,related meta mark set meta mark | M accept   replies
 *       ct status dnat meta nfproto ipv4 oifname . ip daddr @firewall_ctr4 meta mark set meta mark | M accept   published ports
 *       ct status dnat meta nfproto ipv6 oifname . ip6 daddr @firewall_ctr6 meta mark set meta mark | M accept
 *       iifname . oifname @firewall_noicc drop                             icc off, also when routed
 *       oifname @firewall_isolated iifname @firewall_bridges iifname . oifname != @firewall_same drop
 *       iifname @firewall_strict oifname @firewall_bridges iifname . oifname != @firewall_same drop
 *       meta nfproto ipv4 iifname . ip saddr @firewall_ctr4 meta mark set meta mark | M accept   from a container
 *       meta nfproto ipv6 iifname . ip6 saddr @firewall_ctr6 meta mark set meta mark | M accept
 *     }
 *     chain firewall_unmark { type filter hook forward priority 200; policy accept;
 *       meta mark set meta mark & ~M                                       nobody after the forward hook sees M
 *     }
 *   }
 *   foreign drop chain (e.g. ip filter FORWARD), appended:
 *     meta mark & M == M counter accept comment "cnikit firewall: ..."   (iptables: -m mark --mark M/M -m comment ... -j ACCEPT)
 *
 * Isolation is the destination's ingress policy: a network with `same-bridge` (or `isolated`)
 * takes no new connection from another cnikit bridge unless it was DNAT'ed to one of its
 * containers (a published port reached through a host address), whatever routes the containers
 * add. A strict network (`strictIsolation`, netavark's `isolate: strict`) is isolated by its
 * source too: it opens no new connection into any other cnikit bridge, an open one included,
 * with the same exception for published ports; its own bridge and the outside stay reachable.
 * icc false is enforced twice: here for routed traffic (through the gateway) and by the
 * bridge ports' `isolated` flag for bridged frames, which never reach the IP hooks without
 * br_netfilter (plugin.ts). Everything per network is at most seven elements and per container one
 * element per address, so nothing here grows with the number of networks or containers.
 */
import { type Family, formatCidr, ipToBytes } from '../../pkg/ip/cidr.ts';
import {
  accept, addrField, concatKey, counter, ctStateIn, ctStatusDnat, drop, ifnameBytes, inSet, markClearBits, markHasBits, markSetBits, nfproto, ret, vmap,
} from '../../pkg/nftables/match.ts';
import { CNIKIT_TABLE, type Ruleset } from '../../pkg/nftables/model.ts';
import { ownerTag } from '../../pkg/nftables/owned.ts';
import type { ElementSpec, RuleSpec, SetSpec, TableRef } from '../../pkg/nftables/objects.ts';
import type { Expr } from '../../pkg/nftables/expr/index.ts';
import type { FirewallAttachment, NetworkPolicy } from './config.ts';

/** The packet-mark bit that carries "cnikit accepted this" from our chain to the foreign ones. */
export const FIREWALL_MARK = 0x10000;

export const CHAIN = { FORWARD: 'firewall_forward', UNMARK: 'firewall_unmark' } as const;

/**
 * Our chain runs before every foreign forward chain it is meant to open (iptables' filter is at 0,
 * mangle at -150, firewalld's at 10) and the unmark chain after them; a foreign drop chain outside
 * that window cannot see our mark (foreign.ts refuses it).
 */
export const PRIORITY = { FORWARD: -200, UNMARK: 200 } as const;

export const SET = {
  BRIDGES: 'firewall_bridges', SAME: 'firewall_same', ISOLATED: 'firewall_isolated', INTERNAL: 'firewall_internal',
  NOICC: 'firewall_noicc', STRICT: 'firewall_strict', ADMIN: 'firewall_admin', CTR4: 'firewall_ctr4', CTR6: 'firewall_ctr6',
} as const;

/** The sets that hold a network's elements (keyed by its bridge). */
export const NETWORK_SETS: string[] = [SET.BRIDGES, SET.SAME, SET.ISOLATED, SET.INTERNAL, SET.NOICC, SET.STRICT, SET.ADMIN];
/** The sets that hold a container's elements. */
export const CONTAINER_SETS: string[] = [SET.CTR4, SET.CTR6];

/** The comment of our rule in a foreign chain; the prefix is how we know it is ours. */
export const FOREIGN_PREFIX = 'cnikit firewall:';
export const FOREIGN_COMMENT = `${FOREIGN_PREFIX} accepted by table inet cnikit (mark 0x${FIREWALL_MARK.toString(16)})`;

const markAccept = (): Expr[] => [...markSetBits(FIREWALL_MARK), ...accept()];
/** `iifname . oifname != @firewall_same`: the packet leaves the bridge it came from (or comes from elsewhere). */
const elsewhere = (): Expr[] => inSet(['iifname', 'oifname'], SET.SAME, true);
const ctrSet = (f: Family): string => (f === 4 ? SET.CTR4 : SET.CTR6);

/** The rules of firewall_forward, in order (see the module header for each in nft syntax). */
function forwardRules(): RuleSpec[] {
  const c = CHAIN.FORWARD;
  const r = (...exprs: Expr[][]): RuleSpec => ({ chain: c, exprs: exprs.flat() });
  return [
    r(markClearBits(FIREWALL_MARK)),
    r(inSet(['iifname'], SET.BRIDGES, true), inSet(['oifname'], SET.BRIDGES, true), ret()),
    r(markSetBits(FIREWALL_MARK)),
    r(vmap(['oifname'], SET.ADMIN)),
    r(elsewhere(), vmap(['iifname'], SET.ADMIN)),
    r(markClearBits(FIREWALL_MARK)),
    r(inSet(['iifname'], SET.INTERNAL), elsewhere(), drop()),
    r(inSet(['oifname'], SET.INTERNAL), elsewhere(), drop()),
    r(ctStateIn(['established', 'related']), markAccept()),
    ...([4, 6] as const).map((f) => r(ctStatusDnat(), nfproto(f), inSet(['oifname', addrField(f, 'daddr')], ctrSet(f)), markAccept())),
    r(inSet(['iifname', 'oifname'], SET.NOICC), drop()),
    r(inSet(['oifname'], SET.ISOLATED), inSet(['iifname'], SET.BRIDGES), elsewhere(), drop()),
    r(inSet(['iifname'], SET.STRICT), inSet(['oifname'], SET.BRIDGES), elsewhere(), drop()),
    ...([4, 6] as const).map((f) => r(nfproto(f), inSet(['iifname', addrField(f, 'saddr')], ctrSet(f)), markAccept())),
  ];
}

/** The fixed part for a network whose admin chain is `adminChain`: sets, chains, rules. */
export function firewallSkeleton(adminChain: string): Ruleset {
  const sets: SetSpec[] = [
    { name: SET.BRIDGES, key: ['ifname'] },
    { name: SET.SAME, key: ['ifname', 'ifname'] },
    { name: SET.ISOLATED, key: ['ifname'] },
    { name: SET.INTERNAL, key: ['ifname'] },
    { name: SET.NOICC, key: ['ifname', 'ifname'] },
    { name: SET.STRICT, key: ['ifname'] },
    { name: SET.CTR4, key: ['ifname', 'ipv4_addr'] },
    { name: SET.CTR6, key: ['ifname', 'ipv6_addr'] },
    { name: SET.ADMIN, key: ['ifname'], data: ['verdict'] },
  ];
  return {
    table: CNIKIT_TABLE,
    sets,
    chains: [
      { name: adminChain, userRules: true },
      { name: CHAIN.FORWARD, base: { type: 'filter', hook: 'forward', priority: PRIORITY.FORWARD, policy: 'accept' } },
      { name: CHAIN.UNMARK, base: { type: 'filter', hook: 'forward', priority: PRIORITY.UNMARK, policy: 'accept' } },
    ],
    rules: [...forwardRules(), { chain: CHAIN.UNMARK, exprs: markClearBits(FIREWALL_MARK) }],
    elements: [],
  };
}

/** Returns the tag a network's elements carry (they are shared by its containers). */
export function networkTag(network: string): string {
  return `net=${network}`;
}

/** Parses a network tag; undefined for anything else (a container's owner tag included). */
export function parseNetworkTag(comment: string | undefined): string | undefined {
  return comment?.match(/^net=(\S+)$/)?.[1];
}

/** One element of firewall state with what it means, for messages. */
export interface FirewallElement extends ElementSpec { describe: string }

const pair = (br: string): Buffer => concatKey(ifnameBytes(br), ifnameBytes(br));

/** Every element a network could have for `bridge`, with its policy's part marked `wanted`. */
export function networkCandidates(network: string, bridge: string, p: NetworkPolicy): (FirewallElement & { wanted: boolean })[] {
  const comment = networkTag(network);
  const b = ifnameBytes(bridge);
  return [
    { set: SET.BRIDGES, key: b, comment, shared: true, wanted: true, describe: `bridge ${bridge}` },
    { set: SET.SAME, key: pair(bridge), comment, shared: true, wanted: true, describe: `bridge ${bridge} (same-bridge pair)` },
    { set: SET.ADMIN, key: b, verdict: { verdict: 'jump', chain: p.adminChain }, comment, shared: true, wanted: true, describe: `admin chain ${p.adminChain} of bridge ${bridge}` },
    { set: SET.ISOLATED, key: b, comment, shared: true, wanted: p.ingressPolicy !== 'open', describe: `ingress isolation of bridge ${bridge}` },
    { set: SET.INTERNAL, key: b, comment, shared: true, wanted: p.internal, describe: `internal bridge ${bridge}` },
    { set: SET.NOICC, key: pair(bridge), comment, shared: true, wanted: !p.icc, describe: `no traffic between containers of bridge ${bridge}` },
    { set: SET.STRICT, key: b, comment, shared: true, wanted: p.strict, describe: `strict isolation of bridge ${bridge}` },
  ];
}

/** The elements a network's policy puts in place for `bridge` (shared by its containers). */
export function networkElements(network: string, bridge: string, p: NetworkPolicy): FirewallElement[] {
  return networkCandidates(network, bridge, p).filter((e) => e.wanted).map(({ wanted: _w, ...e }) => e);
}

/** The keys of a bridge's elements in every network set (for lookups and removal). */
export function bridgeKeys(bridge: string): { set: string; key: Buffer }[] {
  const b = ifnameBytes(bridge);
  return [
    { set: SET.BRIDGES, key: b }, { set: SET.SAME, key: pair(bridge) }, { set: SET.ADMIN, key: b },
    { set: SET.ISOLATED, key: b }, { set: SET.INTERNAL, key: b }, { set: SET.NOICC, key: pair(bridge) }, { set: SET.STRICT, key: b },
  ];
}

/** The elements one attachment owns: `bridge . address` per address. */
export function containerElements(a: Pick<FirewallAttachment, 'network' | 'containerId' | 'ifName' | 'bridge' | 'addrs'>): FirewallElement[] {
  const comment = ownerTag(a.network, a.containerId, a.ifName);
  return a.addrs.map((c) => ({
    set: ctrSet(c.family), key: concatKey(ifnameBytes(a.bridge), ipToBytes(c)), comment, describe: `address ${formatCidr(c)} on ${a.bridge}`,
  }));
}

/** The bridge name in the first 16 bytes of a container element's key. */
export function bridgeOfKey(key: Buffer): string {
  const name = key.subarray(0, 16);
  const end = name.indexOf(0);
  return name.subarray(0, end < 0 ? 16 : end).toString();
}

/** The whole ruleset one ADD applies: the skeleton, the network's elements and the attachment's. */
export function firewallRuleset(a: FirewallAttachment, p: NetworkPolicy): Ruleset {
  return { ...firewallSkeleton(p.adminChain), elements: [...networkElements(a.network, a.bridge, p), ...containerElements(a)] };
}

/** Our one rule in a foreign forward chain: accept what table inet cnikit marked. */
export function foreignRule(chain: string): RuleSpec {
  return { chain, exprs: [...markHasBits(FIREWALL_MARK), ...counter(), ...accept()], comment: FOREIGN_COMMENT };
}

export type { TableRef };

/**
 * A network's shared state in table inet cnikit: the elements keyed by its bridge (rules.ts
 * `networkElements`), which every container of the bridge relies on and none owns alone. They
 * carry the network's tag (`net=NAME`), are added by whichever ADD comes first (shared: no
 * NLM_F_EXCL) and go with the bridge's last container:
 *
 * - `planBridge` (ADD): compares what the kernel holds for the bridge with what this network's
 *   policy wants. The same network with another policy (its conflist was edited) is updated in
 *   place; another network on the same bridge must agree, unless no container is left on it (a
 *   leftover of containers whose DEL never came), which is then taken over.
 * - `releaseBridges` (DEL, GC, a failed ADD): once no container element of a bridge is left, its
 *   elements go, and once no container element of any bridge is left, our rule in every foreign
 *   chain too; one transaction, guarded by the ruleset generation, so that an ADD landing
 *   between the look and the delete makes the kernel refuse it (ERESTART) and we look again.
 *   The look is a dump of the two container sets: its cost grows with the containers on the host
 *   (one element per address), which is the price of knowing "last" without a counter.
 *
 * Not here: the elements of one container (owned.ts does those by owner tag).
 */
import { constants } from 'node:os';
import { CniCode, CniError, describe } from '../../pkg/cni/errors.ts';
import type { Logger } from '../../pkg/log.ts';
import { NFT_JUMP } from '../../pkg/nftables/consts.ts';
import type { Nftables } from '../../pkg/nftables/handle.ts';
import { CNIKIT_TABLE } from '../../pkg/nftables/model.ts';
import { type ElementInfo, type NftMsg, delElements, getElement } from '../../pkg/nftables/objects.ts';
import type { NetworkPolicy } from './config.ts';
import { foreignRemovals } from './foreign.ts';
import { CONTAINER_SETS, SET, bridgeKeys, bridgeOfKey, networkCandidates, parseNetworkTag } from './rules.ts';

/** Linux's ERESTART: the generation given with a transaction is stale. */
const ERESTART = 85;

/** What the kernel holds for a bridge, per network set (absent: no element). */
export type BridgeState = Map<string, ElementInfo>;

/** Reads a bridge's elements in the network sets, in one round trip of point queries. */
export async function readBridge(nft: Nftables, bridge: string): Promise<BridgeState> {
  const keys = bridgeKeys(bridge);
  const found = await nft.getElements(keys.map((k) => getElement(CNIKIT_TABLE, k.set, k.key)));
  const out: BridgeState = new Map();
  keys.forEach((k, i) => { const f = found[i]; if (f) out.set(k.set, f); });
  return out;
}

/** The bridges that have at least one container element, from a dump of the container sets. */
export async function bridgesInUse(nft: Nftables): Promise<Set<string>> {
  const out = new Set<string>();
  for (const set of CONTAINER_SETS) for (const e of await nft.listElements(CNIKIT_TABLE, set)) out.add(bridgeOfKey(e.key));
  return out;
}

/** How a bridge's state differs from what a network's policy wants. */
export interface BridgeDiff {
  /** Wanted elements that are not there (ADD's shared add puts them in). */
  missing: string[];
  /** Elements there that the policy does not want, or that jump elsewhere: ADD deletes them first. */
  stale: { set: string; key: Buffer; describe: string }[];
}

/** Compares a bridge's state with what `network` with policy `p` wants. */
export function bridgeDifferences(state: BridgeState, network: string, bridge: string, p: NetworkPolicy): BridgeDiff {
  const out: BridgeDiff = { missing: [], stale: [] };
  for (const c of networkCandidates(network, bridge, p)) {
    const have = state.get(c.set);
    if (c.wanted && !have) out.missing.push(`${c.describe} is missing`);
    else if (!c.wanted && have) out.stale.push({ set: c.set, key: c.key, describe: `${c.describe} is set, the config does not ask for it` });
    else if (have && c.verdict && 'chain' in c.verdict && (have.verdict?.code !== NFT_JUMP || have.verdict.chain !== c.verdict.chain)) {
      out.stale.push({ set: c.set, key: c.key, describe: `${c.describe} jumps to ${have.verdict?.chain ?? 'nothing'} instead` });
    }
  }
  return out;
}

/** What ADD must delete before it adds this network's elements for `bridge`, and why. */
export interface BridgePlan { stale: { set: string; key: Buffer }[]; note?: string }

/**
 * Plans the bridge's state for an ADD of `network` (see the module header). Throws CniError 7
 * when another network with other settings uses the bridge and has containers on it.
 */
export async function planBridge(nft: Nftables, network: string, bridge: string, p: NetworkPolicy): Promise<BridgePlan> {
  const state = await readBridge(nft, bridge);
  const { stale, missing } = bridgeDifferences(state, network, bridge, p);
  const owner = parseNetworkTag(state.get(SET.BRIDGES)?.comment);
  if (owner === undefined || owner === network) {
    // Ours (or none yet): what is missing is added by the ADD itself; what is there too much goes.
    if (!stale.length) return { stale: [] };
    return { stale, note: `bridge ${bridge}: ${stale.map((x) => x.describe).join('; ')}: updated to the config of network "${network}"` };
  }
  if (!stale.length && !missing.length) return { stale: [] }; // another network with the same settings: shared
  const why = [...missing, ...stale.map((x) => x.describe)].join('; ');
  if ((await bridgesInUse(nft)).has(bridge)) {
    throw new CniError(CniCode.InvalidConfig, `bridge "${bridge}" is already used by network "${owner}" with other firewall settings`,
      `${why}; give the networks the same ingressPolicy, internal, icc, strictIsolation and iptablesAdminChainName, or separate bridges`);
  }
  // Left over from containers of that network whose DEL never came: take the bridge over.
  return { stale: bridgeKeys(bridge).filter((k) => state.has(k.set)), note: `bridge ${bridge} had the settings of network "${owner}" and no container: taken over` };
}

/** Deletes elements (each set in one message); ENOENT (already gone) is fine. */
export async function deleteStale(nft: Nftables, elems: readonly { set: string; key: Buffer }[]): Promise<void> {
  if (!elems.length) return;
  try {
    await nft.transact(groupDeletes(elems));
  } catch (err) {
    if ((err as { errno?: number }).errno !== constants.errno.ENOENT) throw err;
    for (const e of elems) {
      try { await nft.transact(groupDeletes([e])); } catch (e2) { if ((e2 as { errno?: number }).errno !== constants.errno.ENOENT) throw e2; }
    }
  }
}

function groupDeletes(elems: readonly { set: string; key: Buffer }[]): NftMsg[] {
  const bySet = new Map<string, { set: string; key: Buffer }[]>();
  for (const e of elems) bySet.set(e.set, [...(bySet.get(e.set) ?? []), e]);
  return [...bySet].map(([set, list]) => delElements(CNIKIT_TABLE, set, list));
}

/**
 * Removes the state of each of `bridges` that has no container element left, and our foreign
 * rules when no bridge has one (see the module header). Never throws: what it cannot remove now
 * a later DEL or GC removes, and the caller's own work is done. Returns what it removed.
 */
export async function releaseBridges(nft: Nftables, bridges: readonly string[], log: Logger): Promise<{ bridges: string[]; foreignRules: number }> {
  for (let round = 0; round < 8; round++) {
    try {
      const gen = await nft.generation();
      const inUse = await bridgesInUse(nft);
      const free = [...new Set(bridges)].filter((b) => b && !inUse.has(b));
      const msgs: NftMsg[] = [];
      const victims: { set: string; key: Buffer }[] = [];
      for (const b of free) {
        const state = await readBridge(nft, b);
        for (const k of bridgeKeys(b)) if (state.has(k.set)) victims.push(k);
      }
      msgs.push(...groupDeletes(victims));
      const foreign = inUse.size === 0 ? await foreignRemovals(nft) : [];
      msgs.push(...foreign);
      if (!msgs.length) return { bridges: [], foreignRules: 0 };
      await nft.transact(msgs, { genId: gen });
      return { bridges: free.filter((b) => victims.some((v) => bridgeOfKey(v.key) === b)), foreignRules: foreign.length };
    } catch (err) {
      const errno = (err as { errno?: number }).errno;
      // ERESTART: the ruleset changed since we looked; ENOENT: something we meant to delete went.
      if (errno === ERESTART || errno === constants.errno.ENOENT) continue;
      log.warn('firewall: could not remove the state of a bridge without containers', { error: describe(err) });
      return { bridges: [], foreignRules: 0 };
    }
  }
  log.warn('firewall: the ruleset kept changing; the state of bridges without containers stays until the next DEL or GC');
  return { bridges: [], foreignRules: 0 };
}

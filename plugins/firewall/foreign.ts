/**
 * Our one rule in foreign chains (docs/cni-notes.md §11.6-§11.7): every base chain on the
 * forward hook of a table that is not ours (families ip, ip6, inet: iptables-nft's `filter
 * FORWARD`, an admin's `inet filter forward`, Docker's nftables tables) whose policy is drop gets
 * `meta mark & M == M counter accept comment "cnikit firewall: ..."` appended at its end, so it
 * accepts what our chain accepted. Appended, not inserted first: the chain's own rules keep
 * precedence (an admin's explicit drop of a container's traffic still drops it); we only stand in
 * for the default policy. Only that rule is ever touched: a foreign rule is ours when its comment
 * starts with FOREIGN_PREFIX (a rule comment as we write it, or the `-m comment` match that
 * iptables-restore makes of it after an iptables-save), and nothing else in a foreign table is
 * read for more than its chains' hook, priority and policy.
 *
 * Adding is not guarded against a concurrent ADD: two of them may both append, and both then
 * delete every current copy but the lowest handle, so they settle on one (a delete that finds
 * the copy gone already makes the ADD look again). Removal is DEL's and
 * GC's, guarded by the ruleset generation (network.ts), after the last container element went.
 *
 * Not seen from here: iptables-legacy (x_tables is not nf_tables; its FORWARD policy is
 * invisible to netlink), trailing `drop`/`reject` rules in a chain whose policy is accept
 * (firewalld's filter_FORWARD ends in `reject`), and a drop chain created after the ADD: the
 * next ADD adds our rule there, and CHECK reports it missing meanwhile.
 */
import { CniCode, CniError } from '../../pkg/cni/errors.ts';
import { HOOK, NFPROTO, type FamilyName, NF_DROP } from '../../pkg/nftables/consts.ts';
import type { Nftables } from '../../pkg/nftables/handle.ts';
import { CNIKIT_TABLE } from '../../pkg/nftables/model.ts';
import { type ChainInfo, type NftMsg, type RuleInfo, type TableRef, addRule, delRule } from '../../pkg/nftables/objects.ts';
import { FOREIGN_COMMENT, FOREIGN_PREFIX, PRIORITY, foreignRule } from './rules.ts';

/** A base chain on the forward hook in a table that is not ours. */
export interface ForeignChain {
  table: TableRef;
  chain: string;
  priority: number;
  drop: boolean;
}

const FAMILIES: Partial<Record<number, FamilyName>> = { [NFPROTO.ip]: 'ip', [NFPROTO.ip6]: 'ip6', [NFPROTO.inet]: 'inet' };

/** Describes a chain the way `nft list` names it: `ip filter FORWARD`. */
export function chainName(c: ForeignChain): string {
  return `${c.table.family} ${c.table.name} ${c.chain}`;
}

/** Picks the foreign base chains on the forward hook out of a chain dump. */
export function foreignForwardChains(chains: readonly ChainInfo[]): ForeignChain[] {
  const out: ForeignChain[] = [];
  for (const c of chains) {
    const family = FAMILIES[c.family];
    if (!family || c.hook !== HOOK.forward || c.type !== 'filter') continue;
    if (family === CNIKIT_TABLE.family && c.table === CNIKIT_TABLE.name) continue;
    out.push({ table: { family, name: c.table }, chain: c.name, priority: c.priority ?? 0, drop: c.policy === NF_DROP });
  }
  return out;
}

/** True when the mark our chain sets is there while `c` runs (strictly between our two chains). */
export function seesOurMark(c: ForeignChain): boolean {
  return c.priority > PRIORITY.FORWARD && c.priority < PRIORITY.UNMARK;
}

/**
 * Our rule as we write it (comment and expressions: mark test, counter, accept), or as
 * iptables-save + iptables-restore gives it back (the comment as an x_tables match): the same test.
 */
function isCurrent(r: RuleInfo): boolean {
  const exprs = r.exprNames.join(',');
  return (r.comment === FOREIGN_COMMENT && exprs === 'meta,bitwise,cmp,counter,immediate')
    || (r.comment === undefined && r.xtComment === FOREIGN_COMMENT && exprs === 'meta,bitwise,cmp,match,counter,immediate');
}

const isOurs = (r: RuleInfo): boolean => (r.comment ?? r.xtComment)?.startsWith(FOREIGN_PREFIX) === true;

/** The rules of ours in one foreign chain, lowest handle first. */
async function oursIn(nft: Nftables, c: ForeignChain): Promise<RuleInfo[]> {
  return (await nft.listRules(c.table, c.chain)).filter(isOurs).sort((a, b) => (a.handle < b.handle ? -1 : a.handle > b.handle ? 1 : 0));
}

function refuseOutOfWindow(chains: ForeignChain[]): void {
  const bad = chains.filter((c) => c.drop && !seesOurMark(c));
  if (!bad.length) return;
  throw new CniError(CniCode.Internal, 'cannot let containers\' traffic through a forward chain with policy drop',
    `${bad.map((c) => `${chainName(c)} (priority ${c.priority})`).join(', ')} runs outside priorities ${PRIORITY.FORWARD}..${PRIORITY.UNMARK}, where cnikit marks what it accepts; give it a priority in between or accept the containers' traffic there yourself`);
}

/**
 * Makes every foreign drop chain on the forward hook end with exactly one current rule of ours:
 * appends it where missing, replaces an outdated one, drops duplicates (two concurrent ADDs). A
 * drop chain our mark cannot reach (priority) is an error naming it. Returns the chains changed.
 */
export async function ensureForeignRules(nft: Nftables): Promise<string[]> {
  for (let round = 1; ; round++) {
    const chains = foreignForwardChains(await nft.listAllChains());
    refuseOutOfWindow(chains);
    const changed: string[] = [];
    const added: ForeignChain[] = [];
    const msgs: NftMsg[] = [];
    for (const c of chains.filter((x) => x.drop)) {
      const ours = await oursIn(nft, c);
      const keep = ours.find(isCurrent);
      for (const r of ours) if (r !== keep) msgs.push(delRule(c.table, c.chain, r.handle));
      if (!keep) { msgs.push(addRule(c.table, foreignRule(c.chain))); added.push(c); }
      if (msgs.length) changed.push(chainName(c));
    }
    try {
      if (msgs.length) await transactTolerant(nft, msgs, 'add the cnikit firewall rule to a foreign forward chain');
    } catch (err) {
      // A duplicate we meant to delete was deleted meanwhile by the ADD that appended it (its
      // dedupe below): the batch did nothing, so look again (a few times at most).
      if ((err as { code?: string }).code === 'ENOENT' && round < 5) continue;
      throw err;
    }
    // Another ADD may have appended its copy at the same time: keep the lowest handle only.
    for (const c of added) await dedupe(nft, c);
    return changed;
  }
}

/** Deletes all but the lowest-handled current rule of ours in `c`; what vanished meanwhile is fine. */
async function dedupe(nft: Nftables, c: ForeignChain): Promise<void> {
  for (let round = 0; round < 3; round++) {
    const current = (await oursIn(nft, c)).filter(isCurrent);
    if (current.length <= 1) return;
    try {
      await nft.transact(current.slice(1).map((r) => delRule(c.table, c.chain, r.handle)));
      return;
    } catch (err) {
      if ((err as { code?: string }).code !== 'ENOENT') throw err;
    }
  }
}

async function transactTolerant(nft: Nftables, msgs: NftMsg[], what: string): Promise<void> {
  try {
    await nft.transact(msgs);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'EPERM' || code === 'EBUSY') {
      throw new CniError(CniCode.Internal, `failed to ${what}`, `the kernel refused (${code}): the table may be owned by another program (nft "flags owner")`, { cause: err });
    }
    throw err;
  }
}

/** The delete messages for every rule of ours in every foreign forward chain (whatever its policy now). */
export async function foreignRemovals(nft: Nftables): Promise<NftMsg[]> {
  const msgs: NftMsg[] = [];
  for (const c of foreignForwardChains(await nft.listAllChains())) {
    for (const r of await oursIn(nft, c)) msgs.push(delRule(c.table, c.chain, r.handle));
  }
  return msgs;
}

/** Lists what CHECK finds wrong: a drop chain without our current rule, or one our mark cannot reach. */
export async function checkForeignRules(nft: Nftables): Promise<string[]> {
  const problems: string[] = [];
  for (const c of foreignForwardChains(await nft.listAllChains()).filter((x) => x.drop)) {
    if (!seesOurMark(c)) { problems.push(`${chainName(c)} has policy drop at priority ${c.priority}, outside ${PRIORITY.FORWARD}..${PRIORITY.UNMARK}`); continue; }
    const current = (await oursIn(nft, c)).filter(isCurrent);
    if (current.length !== 1) problems.push(`${chainName(c)} has policy drop and ${current.length} cnikit accept rules (expected 1)`);
  }
  return problems;
}

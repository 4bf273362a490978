/**
 * The declarative side of the nftables layer: a plugin states the objects it wants as a
 * `Ruleset` (a value, built by a pure function) and `rulesetMessages()` turns it into the
 * messages of one transaction:
 *
 *   add table; add set/map (each); add chain (each); flush chain + add its rules (each chain);
 *   add element (each, exclusive)
 *
 * Tables, sets and chains are added without NLM_F_EXCL, so they are created once and shared by
 * every later call. Each chain of a Ruleset (but one marked `userRules`, whose rules are the
 * administrator's and are never touched) is owned whole by that Ruleset: it is flushed and its
 * rules re-added in the same transaction, which makes the call idempotent (no duplicate rules
 * when two plugins race: the kernel serialises transactions) and costs the same however many
 * containers exist, because chains hold only fixed rules. Per-container state lives in set and
 * map elements, added with NLM_F_EXCL so that a key someone else holds is an error (EEXIST)
 * instead of a silent takeover; an element several attachments share (`shared`: a network's) is
 * added without, so the first adds it and the others find it there.
 *
 * Every rule carries a comment `cnikit:<fingerprint>` (a hash of its encoded expressions) so that
 * CHECK can tell whether the rules in the kernel are the ones we would write, and every element an
 * owner tag, which is how DEL and GC find what belongs to an attachment (owned.ts).
 */
import { constants } from 'node:os';
import { type Nftables } from './handle.ts';
import {
  type ChainSpec, type ElementInfo, type ElementSpec, type NftMsg, type RuleSpec, type SetSpec, type TableRef,
  addChain, addElements, addRule, addSet, addTable, concatLen, concatType, delElements, delTable, flushChain,
} from './objects.ts';
import { NFT_SET } from './consts.ts';

/** The one table cnikit owns in a namespace. Nothing outside it is ever read or changed. */
export const CNIKIT_TABLE: TableRef = { family: 'inet', name: 'cnikit' };

export interface Ruleset {
  table: TableRef;
  sets: SetSpec[];
  chains: ChainSpec[];
  /** The complete contents of the chains above, in order. */
  rules: RuleSpec[];
  /** Elements to add; each must not exist yet. */
  elements: ElementSpec[];
}

const fingerprints = new WeakMap<RuleSpec, string>();

/**
 * The comment a rule carries: a fingerprint of its expressions (two 32-bit FNV-1a hashes over
 * their JSON form, memoised per rule object). Cheap on purpose: it is computed for every fixed
 * rule on every ADD, in a process that lives for one call, and it needs no secrecy (no
 * node:crypto, whose loading alone costs start-up time). It only has to match what this same
 * code wrote; a different cnikit version may write other fingerprints, and then rewrites the
 * chains once, which is what should happen.
 */
export function ruleFingerprint(r: RuleSpec): string {
  const known = fingerprints.get(r);
  if (known) return known;
  const text = JSON.stringify(r.exprs, (_k, v: unknown) => (v && typeof v === 'object' && (v as { type?: unknown }).type === 'Buffer' ? Buffer.from((v as { data: number[] }).data).toString('hex') : v));
  let a = 0x811c9dc5;
  let b = 0x01000193 ^ text.length;
  for (let i = 0; i < text.length; i++) {
    const x = text.charCodeAt(i);
    a = Math.imul(a ^ x, 0x01000193) >>> 0;
    b = Math.imul(b ^ x ^ (a & 0xff), 0x01000193) >>> 0;
  }
  const out = `cnikit:${a.toString(16).padStart(8, '0')}${b.toString(16).padStart(8, '0')}`;
  fingerprints.set(r, out);
  return out;
}

/** Computes the messages of one transaction that makes `rs` true (see the module header). */
export function rulesetMessages(rs: Ruleset): NftMsg[] {
  const t = rs.table;
  const msgs: NftMsg[] = [addTable(t)];
  rs.sets.forEach((s, i) => msgs.push(addSet(t, s, i + 1)));
  for (const c of rs.chains) msgs.push(addChain(t, c));
  for (const c of rs.chains) {
    if (c.userRules) continue;
    msgs.push(flushChain(t, c.name));
    for (const r of rs.rules.filter((x) => x.chain === c.name)) msgs.push(addRule(t, { ...r, comment: r.comment ?? ruleFingerprint(r) }));
  }
  const unknown = rs.rules.find((r) => !rs.chains.some((c) => c.name === r.chain));
  if (unknown) throw new Error(`rule for chain ${unknown.chain}, which the ruleset does not declare`);
  for (const e of rs.elements) msgs.push(elementMessage(t, e));
  return msgs;
}

/** The add of one element (exclusive unless shared), carrying the element as its `ref` (see NftError.ref). */
function elementMessage(t: TableRef, e: ElementSpec): NftMsg {
  return { ...addElements(t, e.set, [e], !e.shared), ref: e };
}

/**
 * Applies `rs` as one transaction and returns the messages sent. When the kernel refuses an
 * element, the NftError's `ref` is that element of `rs.elements` (the very object).
 *
 * Fast path: when the fixed part is already in place (two dumps of constant size: sets and
 * rules; never elements), only the elements are sent. Besides sending less, this keeps
 * deletions (the chain flushes) out of the transaction: when a socket that changed the ruleset is
 * released, nf_tables waits for its pending destroy work, an RCU grace period of several ms, and
 * only a transaction that deleted something leaves such work. If the elements-only transaction
 * fails with ENOENT (a GC removed the table meanwhile), the full ruleset is sent once more.
 */
export async function applyRuleset(nft: Nftables, rs: Ruleset): Promise<NftMsg[]> {
  if (rs.elements.length && (await diffRuleset(nft, rs)).length === 0) {
    const fast = rs.elements.map((e) => elementMessage(rs.table, e));
    try {
      await nft.transact(fast);
      return fast;
    } catch (err) {
      if ((err as { code?: string }).code !== 'ENOENT') throw err;
    }
  }
  const full = rulesetMessages(rs);
  await nft.transact(full);
  return full;
}

/**
 * Compares the kernel's state with the fixed part of `rs` (sets, chains, rules; not elements)
 * and returns what is missing or different, as readable lines; empty when all is in place.
 */
export async function diffRuleset(nft: Nftables, rs: Ruleset): Promise<string[]> {
  const problems: string[] = [];
  const sets = new Map((await nft.listSets(rs.table)).map((s) => [s.name, s]));
  for (const s of rs.sets) {
    const k = sets.get(s.name);
    if (!k) problems.push(`set ${s.name} is missing`);
    else if (k.keyType !== concatType(s.key) || k.keyLen !== concatLen(s.key) || Boolean(k.flags & NFT_SET.MAP) !== Boolean(s.data)) {
      problems.push(`set ${s.name} has another type`);
    }
  }
  if (problems.length === rs.sets.length && rs.sets.length) return problems; // no table: skip the other dumps
  const rules = await nft.listRules(rs.table);
  // A chain that holds rules exists; list chains only when one is meant to be empty.
  const chains = new Set(rules.map((r) => r.chain));
  if (rs.chains.some((c) => c.userRules || !rs.rules.some((r) => r.chain === c.name))) for (const c of await nft.listChains(rs.table)) chains.add(c.name);
  for (const c of rs.chains) {
    if (!chains.has(c.name)) { problems.push(`chain ${c.name} is missing`); continue; }
    if (c.userRules) continue;
    const want = rs.rules.filter((r) => r.chain === c.name).map((r) => r.comment ?? ruleFingerprint(r));
    const have = rules.filter((r) => r.chain === c.name).map((r) => r.comment ?? '');
    if (want.join(',') !== have.join(',')) problems.push(`chain ${c.name} does not hold the expected rules`);
  }
  return problems;
}

/** The generation id given to a transaction is stale (Linux's ERESTART; Node has no name for it). */
const ERESTART = 85;

/** An element found in the kernel, with the set it lives in. */
export interface FoundElement extends ElementInfo { set: string }

/**
 * Lists the elements of `sets` whose comment satisfies `pred` (a dump of each set: its cost grows
 * with the number of elements, so this is for GC and for DEL without its port mappings).
 */
export async function findElements(nft: Nftables, t: TableRef, sets: readonly string[], pred: (comment: string | undefined) => boolean): Promise<FoundElement[]> {
  const out: FoundElement[] = [];
  for (const set of sets) for (const e of await nft.listElements(t, set)) if (pred(e.comment)) out.push({ ...e, set });
  return out;
}

/**
 * Deletes elements in one transaction (one message per set). An element that vanished meanwhile
 * makes the kernel refuse the whole batch (ENOENT); the caller's retry re-reads what is left.
 */
export async function deleteElements(nft: Nftables, t: TableRef, elems: readonly { set: string; key: Buffer; keyEnd?: Buffer | undefined }[]): Promise<void> {
  const bySet = new Map<string, ElementSpec[]>();
  for (const e of elems) {
    const spec: ElementSpec = { set: e.set, key: e.key };
    if (e.keyEnd) spec.keyEnd = e.keyEnd;
    bySet.set(e.set, [...(bySet.get(e.set) ?? []), spec]);
  }
  await nft.transact([...bySet].map(([set, list]) => delElements(t, set, list)));
}

/**
 * Deletes table `t` when none of its sets holds an element and every rule in it is one of ours
 * (fingerprinted: an administrator's rule in a `userRules` chain keeps the table), guarded by the
 * ruleset generation: if anything changed between the check and the delete (another plugin added
 * an element), the kernel refuses the batch (ERESTART) and the table stays. Returns true when it
 * was deleted.
 */
export async function removeTableIfEmpty(nft: Nftables, t: TableRef): Promise<boolean> {
  const gen = await nft.generation();
  const sets = await nft.listSets(t);
  if (!sets.length && !(await nft.listChains(t)).length) return false;
  for (const s of sets) if ((await nft.listElements(t, s.name)).length) return false;
  if ((await nft.listRules(t)).some((r) => !r.comment?.startsWith('cnikit:'))) return false;
  try {
    await nft.transact([delTable(t)], { genId: gen });
    return true;
  } catch (err) {
    // ERESTART: the generation moved on. ENOENT: already gone.
    const errno = (err as { errno?: number }).errno;
    if (errno === ERESTART || errno === constants.errno.ENOENT) return false;
    throw err;
  }
}

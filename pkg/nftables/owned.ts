/**
 * Owned elements: the per-attachment state a plugin keeps in cnikit's nftables sets and maps.
 * Every such element carries its attachment's owner tag as its comment (`ownerTag()`), which is
 * how DEL, CHECK and GC find what belongs to whom without any state outside the kernel. A plugin
 * (bridge ipMasq, portmap, a firewall) only builds its ruleset and the elements one attachment
 * owns; this module does the rest the same way for all of them:
 *
 * - `deleteOwned`: DEL. With the elements the attachment would own (`candidates`), point queries
 *   on their keys (cost independent of how many elements the sets hold); without, a scan of the
 *   sets for the owner tag. Only elements carrying the tag are deleted, one transaction, and an
 *   ENOENT (something else deleted one meanwhile) is retried once with a fresh look.
 * - `checkOwned`: CHECK. Each wanted element is there with exactly its key, carries the tag and
 *   (for a map) points where it should.
 * - `gcOwned`: GC. Deletes the elements of a network whose attachment is not in the keep-set.
 *
 * Not here: building rulesets and applying them (model.ts), the wire format (objects.ts).
 */
import { attachmentKey, type Attachment } from '../cni/attachment.ts';
import type { Nftables } from './handle.ts';
import { deleteElements, findElements } from './model.ts';
import { type ElementInfo, type ElementSpec, type TableRef, getElement } from './objects.ts';

/** Returns the owner tag stored as the comment of an attachment's elements: `net=N id=C if=I`. */
export function ownerTag(network: string, containerId: string, ifName: string): string {
  return `net=${network} id=${containerId} if=${ifName}`;
}

/** Parses an owner tag; undefined for comments that are not ours. */
export function parseOwnerTag(comment: string | undefined): { network: string; containerId: string; ifName: string } | undefined {
  const m = comment?.match(/^net=(\S+) id=(\S+) if=(\S+)$/);
  return m ? { network: m[1]!, containerId: m[2]!, ifName: m[3]! } : undefined;
}

/** What identifies an element within a table: its set, key and range end. */
export interface ElementRef { set: string; key: Buffer; keyEnd?: Buffer | undefined }

/** Returns a string that is equal for two elements exactly when set, key and keyEnd are (for dedupe). */
export function elementKey(e: ElementRef): string {
  return `${e.set}/${e.key.toString('hex')}/${e.keyEnd?.toString('hex') ?? ''}`;
}

/** True when an element found in the kernel has exactly the key (and range end) of `e`. */
export function sameKey(found: { key: Buffer; keyEnd?: Buffer | undefined }, e: { key: Buffer; keyEnd?: Buffer | undefined }): boolean {
  return found.key.equals(e.key) && (!e.keyEnd || (found.keyEnd !== undefined && found.keyEnd.equals(e.keyEnd)));
}

/** Drops repeated elements (same elementKey), keeping the first. */
export function dedupeElements<T extends ElementRef>(elems: readonly T[]): T[] {
  const seen = new Set<string>();
  return elems.filter((e) => {
    const k = elementKey(e);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/** Looks up each candidate by key in one round trip; returns, per candidate, what the kernel holds there. */
async function lookup(nft: Nftables, t: TableRef, candidates: readonly ElementRef[]): Promise<(ElementInfo | undefined)[]> {
  return nft.getElements(candidates.map((e) => getElement(t, e.set, e.key, e.keyEnd)));
}

/**
 * Deletes the elements of table `t` that carry `owner`, among `candidates` (point queries) or,
 * when `candidates` is undefined, in `sets` (a scan). Idempotent: nothing there is fine.
 * Returns how many elements were deleted.
 */
export async function deleteOwned(nft: Nftables, t: TableRef, sets: readonly string[], owner: string, candidates?: readonly ElementRef[]): Promise<number> {
  const want = candidates && dedupeElements(candidates);
  // Two rounds at most: an element can vanish between the lookup and the delete only if
  // something else deleted it, and then the second round sees what is really left.
  for (let round = 0; ; round++) {
    let victims: ElementRef[];
    if (want) {
      const found = await lookup(nft, t, want);
      // Delete what the kernel returned: for an interval set a query answers with the element
      // that contains the key, which may be another range than the one asked for.
      victims = dedupeElements(want.flatMap((e, i) => {
        const f = found[i];
        return f && f.comment === owner ? [f.keyEnd ? { set: e.set, key: f.key, keyEnd: f.keyEnd } : { set: e.set, key: f.key }] : [];
      }));
    } else {
      victims = await findElements(nft, t, sets, (c) => c === owner);
    }
    try {
      await deleteElements(nft, t, victims);
      return victims.length;
    } catch (err) {
      if ((err as { code?: string }).code !== 'ENOENT' || round >= 1) throw err;
    }
  }
}

/** Why a wanted element is not as it should be. */
export type OwnedProblem<E> =
  | { element: E; problem: 'missing' }
  | { element: E; problem: 'foreign'; owner: string | undefined }
  | { element: E; problem: 'data' };

/**
 * Compares each element of `want` with the kernel (one round trip): missing (or only a
 * different range contains its key), owned by someone else, or a map element whose data differs.
 * Returns the problems, in the order of `want`; empty when all is in place.
 */
export async function checkOwned<E extends ElementSpec>(nft: Nftables, t: TableRef, want: readonly E[], owner: string): Promise<OwnedProblem<E>[]> {
  const found = await lookup(nft, t, want);
  const out: OwnedProblem<E>[] = [];
  want.forEach((e, i) => {
    const f = found[i];
    if (!f || !sameKey(f, e)) out.push({ element: e, problem: 'missing' });
    else if (f.comment !== owner) out.push({ element: e, problem: 'foreign', owner: f.comment });
    else if (e.data && (!f.data || !f.data.equals(e.data))) out.push({ element: e, problem: 'data' });
  });
  return out;
}

/**
 * Deletes, in `sets` of table `t`, the elements of `network` whose attachment is not in `valid`
 * (elements of other networks and without our tag are left alone). Returns how many went.
 */
export async function gcOwned(nft: Nftables, t: TableRef, sets: readonly string[], network: string, valid: readonly Attachment[]): Promise<number> {
  const keep = new Set(valid.map((v) => attachmentKey(v.containerID, v.ifname)));
  // Two rounds at most, as deleteOwned: a DEL running at the same moment may take one of the
  // stale elements between the scan and the delete (ENOENT fails the whole transaction).
  for (let round = 0; ; round++) {
    const stale = await findElements(nft, t, sets, (c) => {
      const o = parseOwnerTag(c);
      return !!o && o.network === network && !keep.has(attachmentKey(o.containerId, o.ifName));
    });
    try {
      await deleteElements(nft, t, stale);
      return stale.length;
    } catch (err) {
      if ((err as { code?: string }).code !== 'ENOENT' || round >= 1) throw err;
    }
  }
}

/**
 * Comparing our encoders with nft's own messages (golden.json, written by capture.ts): the
 * attribute tree of a message, with the attributes nft adds for its own bookkeeping and cnikit
 * does not send stripped from the capture (NFTA_SET_USERDATA: nft's type hints;
 * NFTA_LOOKUP_SET_ID and NFTA_SET_ELEM_LIST_SET_ID: nft refers to sets by transaction id, we by
 * name). Shared by the golden tests of pkg/nftables and of the plugins' rulesets.
 */
import { readFileSync } from 'node:fs';
import { NLA_F_NESTED } from '../../netlink/message.ts';
import { msgType } from '../consts.ts';
import { type NftMsg, encodeBody } from '../objects.ts';

export const golden = JSON.parse(readFileSync(new URL('golden.json', import.meta.url), 'utf8')) as Record<string, { type: number; hex: string }[]>;


export type Tree = [number, string | Tree][];

/** Decodes attributes into a tree, following NLA_F_NESTED as the kernel sets it. */
function tree(b: Buffer): Tree {
  const out: Tree = [];
  for (let off = 0; off + 4 <= b.length;) {
    const len = b.readUInt16LE(off);
    const type = b.readUInt16LE(off + 2);
    const v = b.subarray(off + 4, off + len);
    out.push([type, type & NLA_F_NESTED ? tree(v) : v.toString('hex')]);
    off += (len + 3) & ~3;
  }
  return out;
}

/** Removes attributes whose type path (types with flags masked) matches one of `paths`. */
function strip(t: Tree, paths: number[][], prefix: number[] = []): Tree {
  return t.filter(([type]) => !paths.some((p) => p.length === prefix.length + 1 && p.every((x, i) => x === [...prefix, type & 0x3fff][i])))
    .map(([type, v]) => [type, typeof v === 'string' ? v : strip(v, paths, [...prefix, type & 0x3fff])]);
}

const LOOKUP_NAME = Buffer.from('lookup\0').toString('hex');

/** Removes NFTA_LOOKUP_SET_ID (4) from the lookup expressions of a NEWRULE tree. */
function stripLookupSetId(t: Tree): Tree {
  return t.map(([type, v]) => {
    if ((type & 0x3fff) !== 4 || typeof v === 'string') return [type, v];
    return [type, v.map(([lt, elem]) => {
      if (typeof elem === 'string' || !elem.some(([nt, nv]) => (nt & 0x3fff) === 1 && nv === LOOKUP_NAME)) return [lt, elem];
      return [lt, elem.map(([dt, data]) => [dt, (dt & 0x3fff) === 2 && typeof data !== 'string' ? data.filter(([a]) => (a & 0x3fff) !== 4) : data])];
    })];
  }) as Tree;
}

/** Returns the captured message `name` as a tree, with `paths` stripped (SET_UDATA, ELEM_SET_ID or LOOKUP_SET_ID). */
export function captured(name: string, paths: number[][] = []): { type: number; header: string; tree: Tree } {
  const msgs = golden[name];
  if (!msgs || msgs.length !== 1) throw new Error(`golden ${name}: expected one message`);
  const b = Buffer.from(msgs[0]!.hex, 'hex');
  let t = strip(tree(b.subarray(4)), paths.filter((p) => p !== LOOKUP_SET_ID[0]));
  if (paths === LOOKUP_SET_ID) t = stripLookupSetId(t);
  return { type: msgs[0]!.type, header: b.subarray(0, 4).toString('hex'), tree: t };
}

/** Returns our encoding of `m` as the same tree. */
export function ours(m: NftMsg): { type: number; header: string; tree: Tree } {
  const b = encodeBody(m);
  return { type: msgType(m.msg), header: b.subarray(0, 4).toString('hex'), tree: tree(b.subarray(4)) };
}

/** Strip NFTA_SET_USERDATA from a NEWSET capture. */
export const SET_UDATA = [[13]];
/** Strip NFTA_SET_ELEM_LIST_SET_ID from a NEWSETELEM capture. */
export const ELEM_SET_ID = [[4]];
/** Strip NFTA_LOOKUP_SET_ID from the lookups of a NEWRULE capture. */
export const LOOKUP_SET_ID = [[-1]]; // marker: see stripLookupSetId

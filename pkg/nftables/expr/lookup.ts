/**
 * The lookup expression: match the key in `sreg` against a named set, or, for a map, also copy the
 * element's data into `dreg`. A missing key ends the rule. Equivalent to:
 * `[ lookup reg 1 set pm_addr4 dreg 1 ]`. The set is referenced by name, which the kernel
 * resolves also for sets created earlier in the same transaction.
 */
import { type Attr, attr } from '../../netlink/message.ts';
import { be32, exprAttr } from './common.ts';

const NFTA_LOOKUP = { SET: 1, SREG: 2, DREG: 3, FLAGS: 5 } as const;
const NFT_LOOKUP_F_INV = 1;

export interface Lookup { type: 'lookup'; set: string; sreg: number; dreg?: number; invert?: boolean }

/** Encodes a set or map lookup. */
export function encodeLookup(e: Lookup): Attr {
  const a: Attr[] = [be32(NFTA_LOOKUP.SREG, e.sreg)];
  if (e.dreg !== undefined) a.push(be32(NFTA_LOOKUP.DREG, e.dreg));
  a.push(attr.str(NFTA_LOOKUP.SET, e.set));
  if (e.invert) a.push(be32(NFTA_LOOKUP.FLAGS, NFT_LOOKUP_F_INV));
  return exprAttr('lookup', a);
}

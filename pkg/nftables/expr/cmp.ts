/**
 * Comparisons of a register with constants: cmp (`[ cmp eq reg 1 0x0000007f ]`) and range
 * (`[ range eq reg 1 0x03e8 0x07d0 ]`). A mismatch ends the rule (NFT_BREAK).
 */
import type { Attr } from '../../netlink/message.ts';
import { be32, dataValue, exprAttr } from './common.ts';

export const CMP_OP = { eq: 0, neq: 1, lt: 2, lte: 3, gt: 4, gte: 5 } as const;
const NFTA_CMP = { SREG: 1, OP: 2, DATA: 3 } as const;
const NFTA_RANGE = { SREG: 1, OP: 2, FROM: 3, TO: 4 } as const;

export interface Cmp { type: 'cmp'; op: keyof typeof CMP_OP; sreg: number; data: Buffer }
export interface Range { type: 'range'; op: 'eq' | 'neq'; sreg: number; from: Buffer; to: Buffer }

/** Encodes a cmp. */
export function encodeCmp(e: Cmp): Attr {
  return exprAttr('cmp', [be32(NFTA_CMP.SREG, e.sreg), be32(NFTA_CMP.OP, CMP_OP[e.op]), dataValue(NFTA_CMP.DATA, e.data)]);
}

/** Encodes a range (inclusive bounds, same length, network byte order for ports). */
export function encodeRange(e: Range): Attr {
  return exprAttr('range', [
    be32(NFTA_RANGE.SREG, e.sreg), be32(NFTA_RANGE.OP, CMP_OP[e.op]),
    dataValue(NFTA_RANGE.FROM, e.from), dataValue(NFTA_RANGE.TO, e.to),
  ]);
}

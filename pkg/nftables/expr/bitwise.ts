/**
 * The bitwise expression (mask-and-xor form): `[ bitwise reg 1 = ( reg 1 & 0x00000020 ) ^ 0x00000000 ]`.
 * Used for prefix matches that are not byte aligned and for flag tests such as `ct status dnat`.
 */
import type { Attr } from '../../netlink/message.ts';
import { be32, dataValue, exprAttr } from './common.ts';

const NFTA_BITWISE = { SREG: 1, DREG: 2, LEN: 3, MASK: 4, XOR: 5 } as const;

export interface Bitwise { type: 'bitwise'; sreg: number; dreg: number; mask: Buffer; xor: Buffer }

/** Encodes `dreg = (sreg & mask) ^ xor`; mask and xor have the length of the operand. */
export function encodeBitwise(e: Bitwise): Attr {
  return exprAttr('bitwise', [
    be32(NFTA_BITWISE.SREG, e.sreg), be32(NFTA_BITWISE.DREG, e.dreg), be32(NFTA_BITWISE.LEN, e.mask.length),
    dataValue(NFTA_BITWISE.MASK, e.mask), dataValue(NFTA_BITWISE.XOR, e.xor),
  ]);
}

/**
 * The bitwise expression (mask-and-xor form): `[ bitwise reg 1 = ( reg 1 & 0x00000020 ) ^ 0x00000000 ]`.
 * Used for prefix matches that are not byte aligned, for flag tests such as `ct status dnat` and
 * for mark arithmetic (`meta mark set meta mark | 0x10000`), where nft also sends the operation
 * (NFTA_BITWISE_OP = NFT_BITWISE_BOOL, the kernel's default when it is absent) and so do we, to
 * encode to the same bytes.
 */
import type { Attr } from '../../netlink/message.ts';
import { be32, dataValue, exprAttr } from './common.ts';

const NFTA_BITWISE = { SREG: 1, DREG: 2, LEN: 3, MASK: 4, XOR: 5, OP: 6 } as const;
const NFT_BITWISE_BOOL = 0;

export interface Bitwise { type: 'bitwise'; sreg: number; dreg: number; mask: Buffer; xor: Buffer; /** Send the (default) boolean op explicitly. */ explicitOp?: boolean }

/** Encodes `dreg = (sreg & mask) ^ xor`; mask and xor have the length of the operand. */
export function encodeBitwise(e: Bitwise): Attr {
  return exprAttr('bitwise', [
    be32(NFTA_BITWISE.SREG, e.sreg), be32(NFTA_BITWISE.DREG, e.dreg),
    ...(e.explicitOp ? [be32(NFTA_BITWISE.OP, NFT_BITWISE_BOOL)] : []),
    be32(NFTA_BITWISE.LEN, e.mask.length), dataValue(NFTA_BITWISE.MASK, e.mask), dataValue(NFTA_BITWISE.XOR, e.xor),
  ]);
}

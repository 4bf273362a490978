/**
 * Shared pieces of the expression encoders: the NFTA_LIST_ELEM { NAME, DATA } envelope every
 * expression is wrapped in, nested NFTA_DATA values, and register numbering for concatenations.
 */
import { type Attr, attr } from '../../netlink/message.ts';
import { NFTA_DATA, NFTA_EXPR, NFTA_LIST_ELEM, NFT_REG32_00, NFT_REG_1 } from '../consts.ts';

/** Wraps expression attributes as the kernel expects them inside NFTA_RULE_EXPRESSIONS. */
export function exprAttr(name: string, data: Attr[]): Attr {
  return attr.nested(NFTA_LIST_ELEM, [attr.str(NFTA_EXPR.NAME, name), attr.nested(NFTA_EXPR.DATA, data)]);
}

/** A nested NFTA_DATA_VALUE holding raw bytes (cmp data, bitwise mask, immediate value). */
export function dataValue(type: number, bytes: Buffer): Attr {
  return attr.nested(type, [attr.bytes(NFTA_DATA.VALUE, bytes)]);
}

/**
 * Returns the register that holds the byte at `offset` of a key being built, numbered as nft
 * numbers them: the 16-byte registers (NFT_REG_1...) where the offset is 16-aligned, otherwise
 * the 4-byte ones (NFT_REG32_00 + offset/4). Both address the same register file.
 */
export function regAt(offset: number): number {
  if (offset % 4) throw new Error(`register offset ${offset} is not 4-aligned`);
  return offset % 16 === 0 ? NFT_REG_1 + offset / 16 : NFT_REG32_00 + offset / 4;
}

/** u32 in network byte order: how nf_tables carries registers, ops, lengths and flags. */
export const be32 = attr.u32be;

/**
 * The immediate expression: put a constant or a verdict into a register. Verdicts go to
 * NFT_REG_VERDICT: `[ immediate reg 0 jump -> hostports ]`, `[ immediate reg 0 accept ]`.
 */
import { type Attr, attr } from '../../netlink/message.ts';
import {
  NFTA_DATA, NFTA_VERDICT, NFT_GOTO, NFT_JUMP, NFT_REG_VERDICT, NFT_RETURN, NF_ACCEPT, NF_DROP,
} from '../consts.ts';
import { be32, dataValue, exprAttr } from './common.ts';

const NFTA_IMMEDIATE = { DREG: 1, DATA: 2 } as const;
const CODES = { accept: NF_ACCEPT, drop: NF_DROP, return: NFT_RETURN, jump: NFT_JUMP, goto: NFT_GOTO } as const;

export interface Verdict { type: 'verdict'; verdict: keyof typeof CODES; chain?: string }
export interface Immediate { type: 'immediate'; dreg: number; data: Buffer }

/** Encodes a verdict; jump and goto name the target chain. */
export function encodeVerdict(e: Verdict): Attr {
  // Negative codes (jump, return...) go out as two's complement, which u32be's `>>> 0` gives.
  const v: Attr[] = [attr.u32be(NFTA_VERDICT.CODE, CODES[e.verdict])];
  if (e.verdict === 'jump' || e.verdict === 'goto') {
    if (!e.chain) throw new Error(`${e.verdict} needs a chain`);
    v.push(attr.str(NFTA_VERDICT.CHAIN, e.chain));
  }
  return exprAttr('immediate', [
    be32(NFTA_IMMEDIATE.DREG, NFT_REG_VERDICT),
    attr.nested(NFTA_IMMEDIATE.DATA, [attr.nested(NFTA_DATA.VERDICT, v)]),
  ]);
}

/** Encodes a constant load into a data register. */
export function encodeImmediate(e: Immediate): Attr {
  return exprAttr('immediate', [be32(NFTA_IMMEDIATE.DREG, e.dreg), dataValue(NFTA_IMMEDIATE.DATA, e.data)]);
}

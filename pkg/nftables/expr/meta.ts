/**
 * The meta expression: load packet metadata (nfproto, l4proto, interfaces, mark) into a register
 * (`[ meta load l4proto => reg 9 ]`), or set it from one (`[ meta set mark with reg 1 ]`; cnikit
 * sets only the packet mark).
 */
import type { Attr } from '../../netlink/message.ts';
import { be32, exprAttr } from './common.ts';

export const META_KEY = { len: 0, protocol: 1, mark: 3, iif: 4, oif: 5, iifname: 6, oifname: 7, nfproto: 15, l4proto: 16 } as const;
const NFTA_META = { DREG: 1, KEY: 2, SREG: 3 } as const;

export interface Meta { type: 'meta'; key: keyof typeof META_KEY; dreg: number }
export interface MetaSet { type: 'metaSet'; key: 'mark'; sreg: number }

/** Encodes a meta load. */
export function encodeMeta(e: Meta): Attr {
  return exprAttr('meta', [be32(NFTA_META.KEY, META_KEY[e.key]), be32(NFTA_META.DREG, e.dreg)]);
}

/** Encodes a meta set: the packet's `key` gets the value in `sreg`. */
export function encodeMetaSet(e: MetaSet): Attr {
  return exprAttr('meta', [be32(NFTA_META.KEY, META_KEY[e.key]), be32(NFTA_META.SREG, e.sreg)]);
}

/**
 * The conntrack expression: load connection state into a register. Equivalent to:
 * `[ ct load status => reg 1 ]`. Values are host byte order u32 (IPS_* bits for status).
 */
import type { Attr } from '../../netlink/message.ts';
import { be32, exprAttr } from './common.ts';

export const CT_KEY = { state: 0, direction: 1, status: 2, mark: 3 } as const;
/** IPS_DST_NAT: the connection's destination was rewritten (our DNAT, or anyone's). */
export const IPS_DST_NAT = 0x20;
const NFTA_CT = { DREG: 1, KEY: 2 } as const;

export interface Ct { type: 'ct'; key: keyof typeof CT_KEY; dreg: number }

/** Encodes a ct load. */
export function encodeCt(e: Ct): Attr {
  return exprAttr('ct', [be32(NFTA_CT.KEY, CT_KEY[e.key]), be32(NFTA_CT.DREG, e.dreg)]);
}

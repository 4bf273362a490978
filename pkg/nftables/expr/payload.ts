/**
 * The payload expression: load bytes from a packet header into a register.
 * Equivalent to: `[ payload load 4b @ network header + 16 => reg 1 ]` (nft --debug=netlink).
 */
import type { Attr } from '../../netlink/message.ts';
import { be32, exprAttr } from './common.ts';

export const PAYLOAD_BASE = { ll: 0, network: 1, transport: 2 } as const;
const NFTA_PAYLOAD = { DREG: 1, BASE: 2, OFFSET: 3, LEN: 4 } as const;

export interface Payload { type: 'payload'; base: keyof typeof PAYLOAD_BASE; offset: number; len: number; dreg: number }

/** Encodes a payload load. */
export function encodePayload(e: Payload): Attr {
  return exprAttr('payload', [
    be32(NFTA_PAYLOAD.DREG, e.dreg), be32(NFTA_PAYLOAD.BASE, PAYLOAD_BASE[e.base]),
    be32(NFTA_PAYLOAD.OFFSET, e.offset), be32(NFTA_PAYLOAD.LEN, e.len),
  ]);
}

/**
 * Address translation: nat (`[ nat dnat ip addr_min reg 1 proto_min reg 9 ]`) and masquerade
 * (`[ masq ]`). Both are valid only in chains of type nat. The kernel derives the range flags
 * (MAP_IPS, PROTO_SPECIFIED) from the registers given, as it does for nft.
 */
import type { Attr } from '../../netlink/message.ts';
import { NFPROTO } from '../consts.ts';
import { be32, exprAttr } from './common.ts';

const NFTA_NAT = { TYPE: 1, FAMILY: 2, REG_ADDR_MIN: 3, REG_ADDR_MAX: 4, REG_PROTO_MIN: 5, REG_PROTO_MAX: 6, FLAGS: 7 } as const;
const NFT_NAT = { snat: 0, dnat: 1 } as const;

export interface Nat { type: 'nat'; nat: 'snat' | 'dnat'; family: 'ip' | 'ip6'; addrReg?: number; protoReg?: number }
export interface Masq { type: 'masq' }

/** Encodes a nat statement taking the address (and port) from registers. */
export function encodeNat(e: Nat): Attr {
  const a: Attr[] = [be32(NFTA_NAT.TYPE, NFT_NAT[e.nat]), be32(NFTA_NAT.FAMILY, NFPROTO[e.family])];
  if (e.addrReg !== undefined) a.push(be32(NFTA_NAT.REG_ADDR_MIN, e.addrReg));
  if (e.protoReg !== undefined) a.push(be32(NFTA_NAT.REG_PROTO_MIN, e.protoReg));
  return exprAttr('nat', a);
}

/** Encodes masquerade (source address of the outgoing interface, any port). */
export function encodeMasq(_e: Masq): Attr {
  return exprAttr('masq', []);
}

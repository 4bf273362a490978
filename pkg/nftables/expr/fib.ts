/**
 * The fib expression: ask the routing table about the packet. cnikit uses only the address type
 * of the destination or the source (`fib daddr type local`: is this one of the host's
 * addresses?), which the kernel allows in every hook. Equivalent to: `[ fib daddr type => reg 1 ]`;
 * the result is a host-order u32 RTN_* value (RTN_LOCAL = 2).
 */
import type { Attr } from '../../netlink/message.ts';
import { be32, exprAttr } from './common.ts';

export const FIB_RESULT = { oif: 1, oifname: 2, addrtype: 3 } as const;
export const FIB_F = { saddr: 1, daddr: 2, mark: 4, iif: 8, oif: 16 } as const;
export const RTN_LOCAL = 2;
const NFTA_FIB = { DREG: 1, RESULT: 2, FLAGS: 3 } as const;

export interface Fib { type: 'fib'; result: keyof typeof FIB_RESULT; flags: (keyof typeof FIB_F)[]; dreg: number }

/** Encodes a fib lookup. */
export function encodeFib(e: Fib): Attr {
  const flags = e.flags.reduce((f, k) => f | FIB_F[k], 0);
  return exprAttr('fib', [be32(NFTA_FIB.FLAGS, flags), be32(NFTA_FIB.RESULT, FIB_RESULT[e.result]), be32(NFTA_FIB.DREG, e.dreg)]);
}

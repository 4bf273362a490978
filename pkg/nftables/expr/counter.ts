/** The counter expression: count packets and bytes that reach it. Equivalent to: `[ counter pkts 0 bytes 0 ]`. */
import type { Attr } from '../../netlink/message.ts';
import { exprAttr } from './common.ts';

export interface Counter { type: 'counter' }

/** Encodes a counter starting at zero. */
export function encodeCounter(_e: Counter): Attr {
  return exprAttr('counter', []);
}

/**
 * Every expression cnikit puts in a rule, as one tagged union, and the dispatch to its encoder.
 * Rules are built from these with the helpers in ../match.ts, which pick registers as nft does.
 */
import type { Attr } from '../../netlink/message.ts';
import { type Bitwise, encodeBitwise } from './bitwise.ts';
import { type Cmp, type Range, encodeCmp, encodeRange } from './cmp.ts';
import { type Counter, encodeCounter } from './counter.ts';
import { type Ct, encodeCt } from './ct.ts';
import { type Fib, encodeFib } from './fib.ts';
import { type Immediate, type Verdict, encodeImmediate, encodeVerdict } from './immediate.ts';
import { type Lookup, encodeLookup } from './lookup.ts';
import { type Meta, type MetaSet, encodeMeta, encodeMetaSet } from './meta.ts';
import { type Masq, type Nat, encodeMasq, encodeNat } from './nat.ts';
import { type Payload, encodePayload } from './payload.ts';

export type Expr = Payload | Meta | MetaSet | Cmp | Range | Bitwise | Ct | Nat | Masq | Verdict | Immediate | Lookup | Counter | Fib;

/** Encodes one expression as an NFTA_LIST_ELEM of NFTA_RULE_EXPRESSIONS. */
export function encodeExpr(e: Expr): Attr {
  switch (e.type) {
    case 'payload': return encodePayload(e);
    case 'meta': return encodeMeta(e);
    case 'metaSet': return encodeMetaSet(e);
    case 'cmp': return encodeCmp(e);
    case 'range': return encodeRange(e);
    case 'bitwise': return encodeBitwise(e);
    case 'ct': return encodeCt(e);
    case 'nat': return encodeNat(e);
    case 'masq': return encodeMasq(e);
    case 'verdict': return encodeVerdict(e);
    case 'immediate': return encodeImmediate(e);
    case 'lookup': return encodeLookup(e);
    case 'counter': return encodeCounter(e);
    case 'fib': return encodeFib(e);
  }
}

export type { Bitwise, Cmp, Counter, Ct, Fib, Immediate, Lookup, Masq, Meta, MetaSet, Nat, Payload, Range, Verdict };

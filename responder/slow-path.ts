/**
 * The slow path of query parsing: dns2's general decoder, for the rare query the hand-written
 * parser in wire.ts declines (a compressed question name). dns2 is loaded on the first such
 * query, not before: its index requires node:http, https, http2, tls and crypto (its client and
 * servers), and loading those costs a responder ~8 MiB of resident memory (OpenSSL and the
 * root certificates) that it would otherwise never touch.
 */
import type dns2Module from 'dns2';
import { type Query, TYPE, encodeName } from './wire.ts';

type Dns2 = typeof dns2Module;
let loading: Promise<Dns2> | undefined;

/** The slow parser, once dns2 is loaded (the bundle keeps it inside, evaluated on first use). */
export async function loadSlowParser(): Promise<(m: Buffer) => Query | undefined> {
  loading ??= import('dns2').then((mod) => (mod as { default?: Dns2 }).default ?? (mod as unknown as Dns2));
  const dns2 = await loading;
  return (m) => parseWith(dns2, m);
}

/**
 * The general decoder for what the fast path declines: dns2 parses the message, and the
 * question is rebuilt uncompressed so answers can still point at offset 12. Returns undefined
 * when even dns2 cannot make a single question of it.
 */
function parseWith(dns2: Dns2, m: Buffer): Query | undefined {
  let pkt: ReturnType<typeof dns2.Packet.parse>;
  try {
    pkt = dns2.Packet.parse(m);
  } catch {
    return undefined;
  }
  const errors = (pkt as unknown as { errors?: unknown[] }).errors ?? [];
  const qs = pkt.questions as unknown as { name: string; type: number; class: number }[];
  if (errors.length || qs.length !== 1 || typeof qs[0]?.name !== 'string') return undefined;
  const q0 = qs[0];
  if (q0.name.length > 253) return undefined;
  const name = encodeName(q0.name);
  const question = Buffer.alloc(name.length + 4);
  name.copy(question, 0);
  question.writeUInt16BE(q0.type & 0xffff, name.length);
  question.writeUInt16BE(q0.class & 0xffff, name.length + 2);
  const h = pkt.header as unknown as { id: number; opcode: number; rd: number };
  const opt = (pkt.additionals as unknown as { type: number; udpPayloadSize?: number; class?: number; version?: number; doFlag?: boolean }[])
    .find((r) => r && r.type === TYPE.OPT);
  const edns = opt ? { udpSize: opt.udpPayloadSize ?? opt.class ?? 512, version: opt.version ?? 0, dnssecOk: !!opt.doFlag } : undefined;
  return {
    id: h.id, opcode: h.opcode ?? 0, rd: !!h.rd, key: name.toString('latin1').toLowerCase(),
    qtype: q0.type, qclass: q0.class, question, edns,
  };
}

/**
 * In-process cost of answering one A question: cnikit's hand-written path (parse + backend
 * lookup at 10 and 10,000 names + encode) against dns2's general codec (Packet.parse +
 * createResponseFromRequest + one answer + toBuffer). No sockets, one core. Runnable alone:
 * `node bench/dns-codec.ts`.
 */
import dns2 from 'dns2';
import { Backend, lookup } from '../responder/backend.ts';
import { type Query, encodeResponse, parseQuery, udpLimit } from '../responder/wire.ts';

const { Packet } = dns2;

function query(name: string): Buffer {
  const p = new Packet();
  p.header.id = 0x4242;
  p.header.rd = 1;
  p.questions.push({ name, type: Packet.TYPE.A, class: Packet.CLASS.IN } as never);
  return p.toBuffer();
}

function backend(n: number): Backend {
  const containers = Array.from({ length: n }, (_, i) => ({
    containerId: `c${i}`, ifName: 'eth0', addresses: [`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}/8`], gateways: ['10.0.0.1'], names: [`c${i}`],
  }));
  return new Backend([{ network: 'n', domain: 'dns.podman', port: 53, upstreams: [], containers }], 1, false);
}

function rate(label: string, fn: (i: number) => number): number {
  for (let i = 0; i < 50_000; i++) fn(i); // warm up the JIT
  const n = 1_000_000;
  let sink = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) sink += fn(i);
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  const r = n / s;
  console.log(`${label.padEnd(44)} ${(r / 1000).toFixed(0).padStart(6)} k/s  (${(1e9 / r).toFixed(0)} ns each)${sink < 0 ? '!' : ''}`);
  return r;
}

const results: number[] = [];
for (const n of [10, 10_000]) {
  const b = backend(n);
  const view = b.views.get('n')!;
  const msgs = Array.from({ length: 64 }, (_, i) => query(`c${(i * 7919) % n}.dns.podman`));
  results.push(rate(`cnikit parse+lookup+encode, ${n} names`, (i) => {
    const q = parseQuery(msgs[i & 63]!) as Query;
    const r = lookup(view, q.key, q.qtype, q.qclass);
    return r.kind === 'reply' ? encodeResponse(q, r, udpLimit(q)).length : 0;
  }));
}
const m = query('c5.dns.podman');
const d = rate('dns2 parse+createResponse+answer+toBuffer', () => {
  const req = Packet.parse(m);
  const res = Packet.createResponseFromRequest(req);
  res.answers.push({ name: req.questions[0]!.name, type: Packet.TYPE.A, class: Packet.CLASS.IN, ttl: 0, address: '10.0.0.5' } as never);
  return res.toBuffer().length;
});
console.log(`hand-written path: ${(results[0]! / d).toFixed(1)}x dns2 at 10 names, ${(results[1]! / d).toFixed(1)}x at 10,000`);

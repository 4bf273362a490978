/**
 * Fuzzing the responder over the wire: from inside a container netns, thousands of random and
 * mutated packets over UDP and garbage streams over TCP (seeded, bounded in count and time);
 * afterwards the same responder process must still answer correctly. Run against the gateway
 * and against 127.0.0.11 inside the container (`"resolver": "127.0.0.11"`).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { NODE, Sandbox } from './lib/sandbox.ts';
import { netnsTest } from './lib/netns-test.ts';
import { ask, dnsname, makeCtr, makeNet } from './lib/dns-lib.ts';

const FUZZ = `
const dgram = require('dgram'), net = require('net');
let seed = Number(process.argv[1]);
const target = process.argv[2];
const rnd = (n) => { seed = (seed * 1103515245 + 12345) >>> 0; return seed % n; };
const enc = (n) => Buffer.concat([...n.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])), Buffer.from([0])]);
const q = (name, type, opt) => Buffer.concat([Buffer.from([rnd(256), rnd(256), 1, 0, 0, 1, 0, 0, 0, 0, 0, opt ? 1 : 0]), enc(name), Buffer.from([0, type, 0, 1]),
  opt ? Buffer.from([0, 0, 41, 4, 208, 0, 0, 0x80, 0, 0, 0]) : Buffer.alloc(0)]);
const seeds = [q('web.dns.cnikit', 1, true), q('web', 28, false), q('5.0.89.10.in-addr.arpa', 12, true), q('nosuch.dns.cnikit', 1, false), q('example.org', 1, true)];
function packet(i) {
  switch (i % 6) {
    case 0: { const b = Buffer.alloc(rnd(600)); for (let j = 0; j < b.length; j++) b[j] = rnd(256); return b; }
    case 1: { const b = Buffer.from(seeds[rnd(seeds.length)]); for (let k = 0, n = 1 + rnd(6); k < n; k++) b[rnd(b.length)] = rnd(256); return b; }
    case 2: { const b = seeds[rnd(seeds.length)]; return b.subarray(0, rnd(b.length)); }
    case 3: { const b = Buffer.from(seeds[rnd(seeds.length)]); b.writeUInt16BE(rnd(65536), 4 + 2 * rnd(4)); return b; }
    case 4: { const b = Buffer.from(seeds[rnd(seeds.length)]); b[12 + rnd(4)] = 0xc0 | rnd(64); return b; }
    default: { const b = Buffer.from(seeds[rnd(seeds.length)]); b[2] = rnd(256); b[3] = rnd(256); return b; }
  }
}
const s = dgram.createSocket('udp4');
let replies = 0; s.on('message', () => { replies++; });
const N = 6000; let i = 0;
const deadline = Date.now() + 15000;
function burst() {
  for (let k = 0; k < 100 && i < N; k++, i++) s.send(packet(i), 53, target);
  if (i < N && Date.now() < deadline) setTimeout(burst, 2); else tcpFuzz();
}
function tcpFuzz() {
  let left = 40;
  const one = () => {
    if (left-- <= 0 || Date.now() > deadline) { setTimeout(() => { process.stdout.write(JSON.stringify({ sent: i, replies })); process.exit(0); }, 300); return; }
    const c = net.connect({ host: target, port: 53 });
    c.on('error', () => {});
    c.on('connect', () => {
      const parts = [];
      for (let k = 0, n = 1 + rnd(4); k < n; k++) { const p = packet(rnd(6)); const l = Buffer.alloc(2); l.writeUInt16BE(rnd(4) ? p.length : rnd(65536)); parts.push(l, p); }
      c.end(Buffer.concat(parts));
    });
    c.on('close', one);
    c.setTimeout(500, () => c.destroy());
  };
  one();
}
burst();`;

/** Asks for "web" + a compression pointer to "dns.cnikit" (the parser's slow path); prints the A record's address. */
const COMPRESSED = `
const s = require('dgram').createSocket('udp4');
s.on('message', (m) => { process.stdout.write(m.readUInt16BE(6) === 1 ? [...m.subarray(m.length - 4)].join('.') : 'answers ' + m.readUInt16BE(6)); process.exit(0); });
s.send(Buffer.from([0xab, 0xcd, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, 119, 101, 98, 0xc0, 22, 0, 1, 0, 1, 3, 100, 110, 115, 6, 99, 110, 105, 107, 105, 116, 0]), 53, process.argv[1]);
setTimeout(() => process.exit(1), 3000);`;

for (const [mode, server] of [['gateway', '10.89.0.1'], ['127.0.0.11', '127.0.0.11']] as const) {
  netnsTest(`[${mode}] thousands of random and mutated packets: no crash, no stall, still correct answers`, (t) => {
    const sb = new Sandbox('z');
    t.teardown(() => sb.cleanup());
    const A = makeNet(sb, { name: 'neta', bridge: 'br-a', v4: '10.89.0' });
    const a1 = makeCtr(sb, A, 'a1', 5);
    const add = dnsname(sb, 'ADD', a1, 'web', { resolver: mode });
    t.is(add.code, 0, add.stdout);
    const pid = Number(readFileSync(join(sb.tmp, 'dns', 'responder.pid'), 'utf8'));
    const slow = sb.exec(a1.ns, NODE, ['-e', COMPRESSED, server], { timeout: 10_000 });
    t.is(slow.stdout, '10.89.0.5', 'a compressed question name is answered (dns2, loaded on the first one)');
    const r = sb.exec(a1.ns, NODE, ['-e', FUZZ, '20261128', server], { timeout: 40_000 });
    t.is(r.status, 0, r.stderr);
    const stats = JSON.parse(r.stdout);
    t.is(stats.sent, 6000);
    t.log(`${stats.replies} replies to 6000 packets`);
    t.true(stats.replies > 0, 'some of the packets were valid enough to get a reply (FORMERR and all)');
    process.kill(pid, 0); // still the same process (throws if it died)
    const res = ask(sb, a1.ns, [
      { server, name: 'web.dns.cnikit' },
      { server, name: 'web', tcp: true },
      { server, name: '5.0.89.10.in-addr.arpa', type: 'PTR' },
    ]);
    t.deepEqual(res.map((x) => x.answers), [['10.89.0.5'], ['10.89.0.5'], ['web.dns.cnikit']]);
    t.is(Number(readFileSync(join(sb.tmp, 'dns', 'responder.pid'), 'utf8')), pid);
    t.notRegex(readFileSync(join(sb.tmp, 'dns', 'responder.log'), 'utf8'), /"level":"error"/, 'no handler exceptions');
  });
}

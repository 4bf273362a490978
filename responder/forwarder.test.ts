/**
 * The forwarder against fake upstreams on loopback (no root): the answer comes back under the
 * client's id; a silent upstream, one that cannot be sent to, and a spoofed answer each give way
 * to the next upstream; a truncated answer for a TCP client is fetched again over TCP; with no
 * upstream left the caller gets nothing.
 */
import test from 'ava';
import dgram from 'node:dgram';
import net from 'node:net';
import { silentLogger } from '../pkg/log.ts';
import type { Upstream } from './backend.ts';
import { Forwarder, resolvConfNameservers } from './forwarder.ts';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Query, TYPE, answerCount, answerRecord, encodeQuery, encodeResponse, idOf, isResponse, isTruncated, parseQuery } from './wire.ts';

/** The response a fake upstream gives: `n` A records of 192.0.2.x, TC when `tc`. */
function respond(m: Buffer, n: number, tc = false): Buffer {
  const q = parseQuery(m) as Query;
  const answers = Array.from({ length: n }, (_, i) => answerRecord(TYPE.A, 60, Buffer.from([192, 0, 2, i + 1])));
  return encodeResponse(q, { rcode: 0, aa: false, answers, authority: [] }, tc ? 0 : 65535);
}

interface Fake { up: Upstream; seen: number; close(): void }

/** A UDP upstream on 127.0.0.1; `answer` returns what to send back (undefined = stay silent), and from which socket. */
async function fakeUdp(answer: (m: Buffer) => Buffer | undefined, via?: dgram.Socket): Promise<Fake> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const f: Fake = { up: { address: '127.0.0.1', port: s.address().port, family: 4 }, seen: 0, close: () => s.close() };
  s.on('message', (m, rinfo) => {
    f.seen++;
    const r = answer(m);
    if (r) (via ?? s).send(r, rinfo.port, rinfo.address);
  });
  return f;
}

function ask(fw: Forwarder, msg: Buffer, ups: Upstream[], overTcp = false): Promise<Buffer | undefined> {
  return new Promise((resolve) => fw.forward(msg, ups, overTcp, resolve));
}

test('the answer of the first upstream comes back under the client\'s id', async (t) => {
  const up = await fakeUdp((m) => respond(m, 1));
  const fw = new Forwarder(2000, silentLogger);
  t.teardown(() => { fw.close(); up.close(); });
  const r = await ask(fw, encodeQuery(0x4242, 'example.com', TYPE.A), [up.up]);
  t.truthy(r);
  t.true(isResponse(r!));
  t.is(idOf(r!), 0x4242);
  t.is(answerCount(r!), 1);
});

test('a silent upstream, an unreachable one and a spoofed answer each give way to the next upstream', async (t) => {
  const silent = await fakeUdp(() => undefined);
  const spoofer = dgram.createSocket('udp4');
  await new Promise<void>((r) => spoofer.bind(0, '127.0.0.1', () => r()));
  const spoofed = await fakeUdp((m) => respond(m, 3), spoofer); // answers from another port
  const good = await fakeUdp((m) => respond(m, 2));
  const unsendable: Upstream = { address: '::1', port: 53, family: 4 }; // an IPv6 address on the IPv4 socket
  const fw = new Forwarder(3000, silentLogger);
  t.teardown(() => { fw.close(); silent.close(); spoofed.close(); good.close(); spoofer.close(); });
  const r = await ask(fw, encodeQuery(7, 'example.com', TYPE.A), [silent.up, unsendable, spoofed.up, good.up]);
  t.is(answerCount(r!), 2, 'the good upstream answered');
  t.is(idOf(r!), 7);
  t.deepEqual([silent.seen, spoofed.seen, good.seen], [1, 1, 1], 'each upstream asked once, in order');
});

test('no upstream left, or none answering in time: nothing', async (t) => {
  const silent = await fakeUdp(() => undefined);
  const fw = new Forwarder(600, silentLogger);
  t.teardown(() => { fw.close(); silent.close(); });
  t.is(await ask(fw, encodeQuery(1, 'a.test', TYPE.A), []), undefined);
  t.is(await ask(fw, encodeQuery(2, 'a.test', TYPE.A), [silent.up, silent.up]), undefined);
  t.is(silent.seen, 2);
});

test('a truncated answer is fetched again over TCP for a TCP client, and relayed as it is for a UDP one', async (t) => {
  const udp = await fakeUdp((m) => respond(m, 1, true));
  const tcp = net.createServer((c) => {
    let buf = Buffer.alloc(0);
    c.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length < 2 || buf.length < 2 + buf.readUInt16BE(0)) return;
      const r = respond(buf.subarray(2, 2 + buf.readUInt16BE(0)), 40);
      const len = Buffer.alloc(2);
      len.writeUInt16BE(r.length);
      c.end(Buffer.concat([len, r]));
    });
  });
  await new Promise<void>((r) => tcp.listen(udp.up.port, '127.0.0.1', () => r()));
  const fw = new Forwarder(2000, silentLogger);
  t.teardown(() => { fw.close(); udp.close(); tcp.close(); });
  const overTcp = await ask(fw, encodeQuery(0x0bad, 'many.test', TYPE.A), [udp.up], true);
  t.false(isTruncated(overTcp!));
  t.is(answerCount(overTcp!), 40);
  t.is(idOf(overTcp!), 0x0bad);
  const overUdp = await ask(fw, encodeQuery(0x0bae, 'many.test', TYPE.A), [udp.up], false);
  t.true(isTruncated(overUdp!));
  t.is(idOf(overUdp!), 0x0bae);
});

test('resolv.conf: nameserver lines, zones dropped, junk skipped; a missing file gives none', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cnikit-fwd-'));
  const f = join(dir, 'resolv.conf');
  writeFileSync(f, '# comment\nnameserver 192.0.2.53\n  nameserver fe80::1%eth0\nnameserver dns.example\nsearch x\nnameserver 2001:DB8::1\n');
  t.deepEqual(resolvConfNameservers(f), [
    { address: '192.0.2.53', port: 53, family: 4 },
    { address: 'fe80::1', port: 53, family: 6 },
    { address: '2001:db8::1', port: 53, family: 6 },
  ]);
  t.deepEqual(resolvConfNameservers(join(dir, 'none')), []);
});

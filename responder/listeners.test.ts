/**
 * The listeners on loopback (no root): datagrams that queue up are read and answered in
 * batches (recvmmsg/sendmmsg) and every reply reaches the client that asked, also one made
 * late (after later batches reused the buffers), and over TCP; closing a place closes its
 * sockets and drops its connections at once.
 */
import test from 'ava';
import dgram from 'node:dgram';
import net from 'node:net';
import { silentLogger } from '../pkg/log.ts';
import { Listeners } from './listeners.ts';

async function freePort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const { port } = s.address();
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Echoes `<client port>:<message>`; messages starting with "late" are answered 50 ms later. */
function echo(): Listeners {
  return new Listeners((_on, m, client, _tcp, reply) => {
    const text = `${client}:${m.toString()}`;
    if (m.toString().startsWith('late')) setTimeout(() => reply(Buffer.from(text)), 50);
    else reply(Buffer.from(text));
  }, silentLogger);
}

test('a burst from two clients is answered in full, each reply to its own client, late ones too', async (t) => {
  const port = await freePort();
  const l = echo();
  t.teardown(() => l.close());
  await l.update([{ address: '127.0.0.1', port }]);
  t.deepEqual(l.bound, [`127.0.0.1|${port}`]);
  const clients = [dgram.createSocket('udp4'), dgram.createSocket('udp4')];
  const got: string[][] = [[], []];
  const N = 600;
  await Promise.all(clients.map((c) => new Promise<void>((r) => c.bind(0, '127.0.0.1', () => r()))));
  const done = Promise.all(clients.map((c, k) => new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 5000);
    c.on('message', (m) => { got[k]!.push(m.toString()); if (got[k]!.length === N) { clearTimeout(timer); resolve(); } });
  })));
  // Interleaved, 100 at a time: they queue up and are read in batches (more at once would
  // overflow the socket's receive buffer, and the kernel would drop them).
  for (let i = 0; i < N;) {
    for (const end = i + 50; i < end; i++) {
      for (let k = 0; k < 2; k++) clients[k]!.send(i % 50 === 0 ? `late ${k} ${i}` : `q ${k} ${i}`, port, '127.0.0.1');
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  await done;
  for (let k = 0; k < 2; k++) {
    t.is(got[k]!.length, N, `client ${k} got every reply`);
    t.true(got[k]!.every((s) => s.startsWith('127.0.0.1:') && s.split(':')[1]!.split(' ')[1] === String(k)), `client ${k} got only its own replies`);
    t.is(got[k]!.filter((s) => s.includes(':late ')).length, N / 50, 'late replies arrive too');
  }
  for (const c of clients) c.close();
});

test('TCP answers with RFC 7766 framing; closing the place drops its connections at once', async (t) => {
  const port = await freePort();
  const l = echo();
  t.teardown(() => l.close());
  await l.update([{ address: '127.0.0.1', port }]);
  const c = net.connect({ host: '127.0.0.1', port });
  await new Promise<void>((r) => c.on('connect', () => r()));
  const reply = new Promise<string>((resolve) => c.once('data', (d) => resolve(d.subarray(2, 2 + d.readUInt16BE(0)).toString())));
  const msg = Buffer.from('hello');
  c.write(Buffer.concat([Buffer.from([0, msg.length]), msg]));
  t.regex(await reply, /^127\.0\.0\.1:hello$/);
  const closed = new Promise<void>((r) => c.on('close', () => r()));
  c.on('error', () => {});
  const t0 = Date.now();
  await l.update([]);
  await closed;
  t.true(Date.now() - t0 < 2000, 'the connection did not wait for its idle timeout');
  t.deepEqual(l.bound, []);
});

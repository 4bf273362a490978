/**
 * The native watcher under AsyncNetlinkSocket under stress, against the real kernel in a sandbox
 * namespace. Issue 10's crash (libuv's "uv__io_poll: Assertion `errno == EINTR'" in ava's
 * process) came from a close() of an fd number that was no longer ours, which closed another
 * thread's epoll fd; nearby, a worker thread that ended with a socket still watched could call
 * into JS while its environment was going away (a fatal error), and a full receive queue
 * (ENOBUFS, reported by epoll as POLLERR) stopped the watcher for good. Each of these would have
 * brought this file down or failed an assertion here. Everything is bounded in count and time.
 */
import { closeSync, fstatSync, openSync, readdirSync, readlinkSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { AsyncNetlinkSocket } from '../pkg/netlink/async-socket.ts';
import { NETLINK_ROUTE } from '../pkg/netlink/socket.ts';
import { RouteHandle } from '../pkg/netlink/route.ts';
import { native } from '../pkg/native.ts';
import type { ChurnData, ChurnReport } from './lib/socket-churn.ts';
import { Sandbox } from './lib/sandbox.ts';
import { netnsSerial, netnsTest } from './lib/netns-test.ts';

const CHURN = new URL('./lib/socket-churn.ts', import.meta.url);

/** Runs one churning worker to its end; resolves with its report (and exit code). */
function churn(data: ChurnData): Promise<{ report: ChurnReport | undefined; code: number }> {
  return new Promise((resolve, reject) => {
    const w = new Worker(CHURN, { workerData: data });
    let report: ChurnReport | undefined;
    w.on('message', (m: ChurnReport) => {
      report = m;
      // Terminated with requests in flight and a readable socket: the watcher must go quietly.
      if (data.end === 'terminate') void w.terminate();
    });
    w.on('error', reject);
    w.on('exit', (code) => resolve({ report, code }));
  });
}

/** The socket inodes ("socket:[N]") this process holds open now. */
function openSockets(): Set<string> {
  const out = new Set<string>();
  for (const fd of readdirSync('/proc/self/fd')) {
    try { out.add(readlinkSync(`/proc/self/fd/${fd}`)); } catch { /* closed meanwhile */ }
  }
  return out;
}

// Serial: it runs workers of its own, and heavy churn beside another file's test would only slow both.
netnsSerial('sockets opened and closed while watched, here and in worker threads that end, exit or are terminated with sockets open: nothing aborts, every exchange settles, nothing is left open', async (t) => {
  const sb = new Sandbox('ss');
  t.teardown(() => sb.cleanup());
  const ends: ChurnData['end'][] = ['closed', 'open', 'exit', 'terminate'];
  // Two lanes of workers (three ways of ending each, twice) while this thread churns too.
  const lanes = [0, 1].map(async (lane) => {
    const out = [];
    for (let i = 0; i < 8; i++) out.push(await churn({ netns: sb.hostPath, rounds: 12, deadlineMs: 3000, end: ends[(i + lane) % ends.length]! }));
    return out;
  });
  const here: ChurnReport = { inodes: [], ok: 0, closedWhileWaiting: 0, otherErrors: [], strayClose: 0 };
  const deadline = Date.now() + 3000;
  for (let r = 0; r < 40 && Date.now() < deadline; r++) {
    const socks = Array.from({ length: 8 }, () => AsyncNetlinkSocket.open(NETLINK_ROUTE, sb.hostPath));
    const work = socks.map((s) => new RouteHandle(s).linkList().then(() => { here.ok++; }, (err: { code?: string }) => {
      if (err.code === 'EBADF') here.closedWhileWaiting++;
      else here.otherErrors.push(String(err.code));
    }));
    for (const s of socks.slice(0, 4)) s.close();
    await Promise.all(work);
    for (const s of socks) s.close();
  }
  const runs = (await Promise.all(lanes)).flat();
  for (const [i, run] of runs.entries()) {
    t.truthy(run.report, `worker ${i} reported`);
    t.deepEqual(run.report!.otherErrors, [], `worker ${i}: every exchange was answered or failed as closed`);
    t.is(run.report!.strayClose, 0, `worker ${i}: a Netns closed twice never closed another file`);
    t.true(run.report!.ok > 0, `worker ${i} got answers`);
  }
  t.deepEqual(here.otherErrors, []);
  t.true(here.ok > 0 && here.closedWhileWaiting > 0, 'this thread got answers and saw requests of closed sockets fail');
  // Every socket the workers opened is closed, those they left open included (with their thread).
  const still = openSockets();
  const leaked = runs.flatMap((r) => r.report!.inodes).filter((ino) => still.has(ino));
  t.deepEqual(leaked, [], 'no socket of a worker that ended is still open');
});

netnsTest('a full receive queue (ENOBUFS) fails what was in flight, and the socket goes on answering', async (t) => {
  const sb = new Sandbox('nb');
  t.teardown(() => sb.cleanup());
  const sock = AsyncNetlinkSocket.open(NETLINK_ROUTE, sb.hostPath, { timeoutMs: 1000 });
  t.teardown(() => sock.close());
  const h = new RouteHandle(sock);
  // 4000 requests in one turn of the loop: each one's replies are read as it is sent, so none overflows.
  const many = await Promise.allSettled(Array.from({ length: 4000 }, () => h.linkGet('lo')));
  t.deepEqual(new Set(many.map((r) => r.status)), new Set(['fulfilled']), 'concurrent requests do not overflow the queue');
  // 3000 requests in one datagram: the kernel answers them all before anything is read (~4 MB
  // of replies), and the receive buffer overflows.
  const getLo = { type: 18 /* RTM_GETLINK */, flags: 0, body: Buffer.from([0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), op: 'RTM_GETLINK #1' };
  const flood = await sock.batch(Array.from({ length: 3000 }, () => getLo)).then(() => 'ok', (err: { code?: string }) => String(err.code));
  t.is(flood, 'ENOBUFS', 'the overflow is reported');
  t.is(sock.inFlight, 0, 'nothing is left waiting');
  // The kernel drops replies silently until the queue has drained, so the first request after
  // the flood may time out; a few tries (bounded) must get an answer from the same socket.
  let lo: string | undefined;
  for (let i = 0; i < 5 && !lo; i++) lo = await h.linkGet('lo').then((l) => l?.name, () => undefined);
  t.is(lo, 'lo', 'the socket still answers');
});

netnsTest('nlClose closes only a socket of nlOpen, once: a second close leaves the file that took the number alone', (t) => {
  const sb = new Sandbox('nc');
  t.teardown(() => sb.cleanup());
  const fd = native().nlOpen(NETLINK_ROUTE, sb.hostPath);
  t.true(native().nlClose(fd));
  const file = openSync('/proc/self/stat', 'r'); // the lowest free number: most likely fd's
  t.teardown(() => closeSync(file));
  t.false(native().nlClose(fd), 'a number closed already is not closed again');
  t.false(native().nlClose(file), 'nor one nlOpen never made');
  t.notThrows(() => fstatSync(file), 'the file is still open');
  t.throws(() => native().nlWatch(file, () => {}), { message: /not an open socket of nlOpen/ });
});

/**
 * The body of a worker thread for netns-tests/async-socket-stress.test.ts: it opens and closes
 * AsyncNetlinkSockets in a sandbox namespace as fast as it can, with requests and dumps in
 * flight on each, closing half of them while their requests wait, and reports what it saw to the
 * parent: how the exchanges ended and the inode of every socket it opened (so the parent can
 * check that none is left open once the thread has gone). How it ends is the parent's choice
 * (`workerData.end`): return normally with every socket closed, return with sockets still open,
 * call process.exit() with requests in flight, or wait to be terminated. It also closes a Netns
 * twice on every round: the second close must never hit the fd that took the number since.
 * Bounded by `rounds` and `deadlineMs`.
 */
import { openSync, closeSync, fstatSync, readlinkSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { AsyncNetlinkSocket } from '../../pkg/netlink/async-socket.ts';
import { Netns } from '../../pkg/netlink/netns.ts';
import { NETLINK_ROUTE } from '../../pkg/netlink/socket.ts';
import { RouteHandle } from '../../pkg/netlink/route.ts';

/** What the parent passes in. */
export interface ChurnData {
  netns: string;
  rounds: number;
  deadlineMs: number;
  end: 'closed' | 'open' | 'exit' | 'terminate';
}

/** What the worker reports (one message, before it ends; 'terminate' reports before it waits). */
export interface ChurnReport {
  inodes: string[];
  ok: number;
  closedWhileWaiting: number;
  otherErrors: string[];
  strayClose: number;
}

const d = workerData as ChurnData;
const report: ChurnReport = { inodes: [], ok: 0, closedWhileWaiting: 0, otherErrors: [], strayClose: 0 };
const deadline = Date.now() + d.deadlineMs;
let left: AsyncNetlinkSocket[] = [];

const tally = (p: Promise<unknown>) => p.then(() => { report.ok++; }, (err: { code?: string; message?: string }) => {
  if (err.code === 'EBADF' && /socket closed/.test(String(err.message))) report.closedWhileWaiting++;
  else report.otherErrors.push(`${err.code} ${err.message}`);
});

for (let r = 0; r < d.rounds && Date.now() < deadline; r++) {
  const socks = Array.from({ length: 8 }, () => AsyncNetlinkSocket.open(NETLINK_ROUTE, d.netns));
  for (const s of socks) report.inodes.push(readlinkSync(`/proc/self/fd/${s.fd}`));
  const work = socks.flatMap((s) => {
    const h = new RouteHandle(s);
    return [tally(h.linkGet('lo')), tally(h.linkList()), tally(h.addrList())];
  });
  for (const s of socks.slice(0, 4)) s.close();
  // A Netns closed twice, with a file opened in between that is likely to get its number.
  const ns = Netns.open('/proc/self/ns/net', { CNI_NETNS_OVERRIDE: '1' });
  ns.close();
  const file = openSync('/proc/self/stat', 'r');
  ns.close();
  try { fstatSync(file); } catch { report.strayClose++; }
  closeSync(file);
  const last = r === d.rounds - 1 || Date.now() >= deadline;
  if (last && d.end !== 'closed') {
    left = socks.slice(4);
    break;
  }
  await Promise.all(work);
  for (const s of socks) s.close();
}
parentPort!.postMessage(report);
if (d.end === 'exit') process.exit(0);
if (d.end === 'terminate') setInterval(() => {}, 1000); // until the parent terminates it
void left;

/**
 * formatRecords as a warm engine calls it, write after write of the same network with a
 * container added, removed or replaced: every text is exactly the one written from scratch.
 */
import test from 'ava';
import { type ContainerRecord, type NetworkRecords, formatRecords, parseRecords } from './records.ts';

const ctr = (i: number): ContainerRecord => ({ containerId: `c${i}`, ifName: 'eth0', addresses: [`10.89.${i >> 8}.${i & 255}/16`], gateways: ['10.89.0.1'], names: [`n${i}`], netns: { ino: 4026532000 + i, path: `/run/netns/c${i}` } });

/** The text as written with nothing remembered: header lines, then one line per container. */
function fromScratch(r: NetworkRecords): string {
  const header = formatRecords({ ...r, network: `${r.network}-fresh`, containers: [] }).replace(`network ${r.network}-fresh`, `network ${r.network}`);
  return header + r.containers.map((c) => `container ${c.containerId} ${c.ifName} ${c.addresses.join(',')} ${c.gateways.join(',')} ${c.names.join(',')} ${c.netns!.ino} ${c.netns!.path}\n`).join('');
}

test('each write after an edit of the container list is the text written from scratch', (t) => {
  const r: NetworkRecords = { network: 'edits', domain: 'dns.test', port: 53, upstreams: [], hostNetns: 1, containers: [] };
  const edits: ((l: ContainerRecord[]) => ContainerRecord[])[] = [
    (l) => [...l, ctr(l.length)],
    (l) => l.filter((_, i) => i !== 2),
    (l) => [ctr(100), ...l],
    (l) => l.map((c, i) => (i === 3 ? ctr(200) : c)),
    (l) => l.slice(0, -1),
    (l) => [...l].reverse(),
    () => [],
    (l) => [...l, ctr(7)],
  ];
  for (let i = 0; i < 10; i++) r.containers.push(ctr(i));
  t.is(formatRecords(r), fromScratch(r));
  for (let round = 0; round < 3; round++) {
    for (const edit of edits) {
      r.containers = edit(r.containers);
      const text = formatRecords(r);
      t.is(text, fromScratch(r));
      t.deepEqual(parseRecords(text, 'edits').records?.containers, r.containers);
    }
  }
});

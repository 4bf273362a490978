/**
 * Regenerates tc-golden.json: the rtnetlink messages that real tools send (and the kernel answers)
 * for the traffic-control objects the bandwidth plugin makes, read from `strace -e write=all
 * -e read=all` hex dumps. Two sources:
 *
 * - `tc` itself (iproute2) for the ingress qdisc, the u32 filter with its mirred redirect, the
 *   deletes and the dump requests, plus the kernel's dump replies while those objects exist;
 * - the reference bandwidth plugin (/usr/lib/cni/bandwidth, vishvananda/netlink) for the TBF
 *   qdiscs (parameters without rate tables, TCA_TBF_RATE64 above 2^32 B/s) and the ifb link, whose
 *   encoding tc does not share (tc adds a rate table and TCA_TBF_BURST: docs/cni-notes.md §12.4).
 *
 * pkg/netlink/tc.test.ts and route.test.ts encode the same objects and compare bytes, and decode
 * the captured replies. Runs only inside throwaway network namespaces it creates and deletes,
 * never in the machine's own. Needs root, strace, tc and the reference plugin:
 *   npx node pkg/netlink/testdata/tc-capture.ts
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const REF = '/usr/lib/cni/bandwidth';
const TRACE = join(tmpdir(), `cnikit-tc-capture-${process.pid}.strace`);

/** One netlink message: type, flags and the bytes after the 16-byte header (seq and pid vary). */
interface Msg { type: number; flags: number; hex: string }
interface Capture { sent: Msg[]; received: Msg[] }

/** Splits a datagram into messages. */
function split(buf: Buffer): Msg[] {
  const out: Msg[] = [];
  for (let off = 0; off + 16 <= buf.length;) {
    const len = buf.readUInt32LE(off);
    if (len < 16 || off + len > buf.length) break;
    out.push({ type: buf.readUInt16LE(off + 4), flags: buf.readUInt16LE(off + 6), hex: buf.subarray(off + 16, off + len).toString('hex') });
    off += (len + 3) & ~3;
  }
  return out;
}

/** Reads strace's hex dumps: each block follows the syscall line it belongs to. */
function parseTrace(text: string): Capture {
  const cap: Capture = { sent: [], received: [] };
  let dir: 'sent' | 'received' | undefined;
  let bytes: number[] = [];
  const flush = (): void => {
    if (dir && bytes.length) cap[dir].push(...split(Buffer.from(bytes)));
    bytes = [];
  };
  for (const line of text.split('\n')) {
    const call = line.match(/^(?:\d+\s+)?(?:<\.\.\. )?(sendto|sendmsg|recvmsg|recvfrom)\b/);
    if (call) { flush(); dir = call[1]!.startsWith('send') ? 'sent' : 'received'; continue; }
    const dump = line.match(/^ \| ([0-9a-f]{5}) {2}(.{49})/);
    if (dump) {
      if (dump[1] === '00000') flush();
      for (const h of dump[2]!.match(/[0-9a-f]{2}/g) ?? []) bytes.push(parseInt(h, 16));
    }
  }
  flush();
  return cap;
}

/** Runs `cmd` under strace inside namespace `ns` and returns the rtnetlink traffic. */
function traced(ns: string, cmd: string[], input?: string, env?: NodeJS.ProcessEnv): Capture {
  const r = spawnSync('ip', ['netns', 'exec', ns, 'strace', '-f', '-o', TRACE, '-e', 'trace=sendto,sendmsg,recvmsg,recvfrom',
    '-e', 'write=all', '-e', 'read=all', ...cmd], { input, env: env ?? process.env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd.join(' ')}: ${r.stdout}${r.stderr}`);
  return parseTrace(readFileSync(TRACE, 'utf8'));
}

const RTM = { NEWLINK: 16, NEWQDISC: 36, DELQDISC: 37, GETQDISC: 38, NEWTFILTER: 44, DELTFILTER: 45, GETTFILTER: 46 };
const TC_TYPES = new Set([RTM.NEWQDISC, RTM.DELQDISC, RTM.GETQDISC, RTM.NEWTFILTER, RTM.DELTFILTER, RTM.GETTFILTER]);

const run = (...args: string[]): string => execFileSync(args[0]!, args.slice(1), { encoding: 'utf8' });
const golden: Record<string, unknown> = {};
const namespaces: string[] = [];
const netns = (name: string): string => {
  run('ip', 'netns', 'add', name);
  namespaces.push(name);
  return name;
};

try {
  // ---- tc: host veth "vethh" (ifindex 2), ifb "ifbx" (ifindex 4), in one namespace ----
  const ns = netns(`cnktc${process.pid}`);
  run('ip', '-n', ns, 'link', 'add', 'vethh', 'type', 'veth', 'peer', 'name', 'vethc');
  run('ip', '-n', ns, 'link', 'add', 'ifbx', 'type', 'ifb');
  for (const l of ['vethh', 'vethc', 'ifbx']) run('ip', '-n', ns, 'link', 'set', l, 'up');
  const index = (l: string): number => JSON.parse(run('ip', '-n', ns, '-j', 'link', 'show', l))[0].ifindex;
  const tc = (...args: string[]): Capture => traced(ns, ['tc', ...args]);
  const sentOf = (c: Capture): Msg[] => c.sent.filter((m) => TC_TYPES.has(m.type));
  const devices = { vethh: index('vethh'), ifbx: index('ifbx') };

  golden.tc = {
    devices,
    ingress: sentOf(tc('qdisc', 'add', 'dev', 'vethh', 'handle', 'ffff:', 'ingress')),
    filter: sentOf(tc('filter', 'add', 'dev', 'vethh', 'parent', 'ffff:', 'protocol', 'all', 'prio', '1', 'u32', 'match', 'u32', '0', '0',
      'flowid', '1:1', 'action', 'mirred', 'egress', 'redirect', 'dev', 'ifbx')),
    // With the ingress qdisc, its filter and a TBF in place, so that the replies carry them.
    tbfByTc: sentOf(tc('qdisc', 'add', 'dev', 'vethh', 'root', 'handle', '1:', 'tbf', 'rate', '8mbit', 'burst', '10000', 'latency', '25ms')),
    qdiscShow: ((c) => ({ request: sentOf(c), replies: c.received.filter((m) => m.type === RTM.NEWQDISC) }))(tc('qdisc', 'show', 'dev', 'vethh')),
    filterShow: ((c) => ({ request: sentOf(c), replies: c.received.filter((m) => m.type === RTM.NEWTFILTER) }))(tc('filter', 'show', 'dev', 'vethh', 'parent', 'ffff:')),
    delIngress: sentOf(tc('qdisc', 'del', 'dev', 'vethh', 'ingress')),
    delRoot: sentOf(tc('qdisc', 'del', 'dev', 'vethh', 'root')),
  };

  // ---- the reference plugin, chained after a veth pair as bridge would leave it ----
  for (const [name, bw] of [
    ['reference', { ingressRate: 8_000_000, ingressBurst: 80_000, egressRate: 4_000_000, egressBurst: 40_000 }],
    ['reference40G', { ingressRate: 40_000_000_000, ingressBurst: 80_000_000 }],
  ] as const) {
    const host = netns(`cnktc${process.pid}${name.length}h`);
    const ctr = netns(`cnktc${process.pid}${name.length}c`);
    run('ip', '-n', host, 'link', 'add', 'vethh', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ctr);
    run('ip', '-n', host, 'link', 'set', 'vethh', 'up');
    run('ip', '-n', ctr, 'link', 'set', 'eth0', 'up');
    const mac = JSON.parse(run('ip', '-n', host, '-j', 'link', 'show', 'vethh'))[0].address;
    const conf = {
      cniVersion: '1.0.0', name: 'bwnet', type: 'bandwidth', ...bw,
      prevResult: { cniVersion: '1.0.0', interfaces: [{ name: 'vethh', mac }, { name: 'eth0', sandbox: `/run/netns/${ctr}` }] },
    };
    const env = { PATH: process.env.PATH, CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'ctr1', CNI_NETNS: `/run/netns/${ctr}`, CNI_IFNAME: 'eth0', CNI_PATH: '/usr/lib/cni' };
    const add = traced(host, [REF], JSON.stringify(conf), env);
    const hostIndex = JSON.parse(run('ip', '-n', host, '-j', 'link', 'show', 'vethh'))[0].ifindex;
    const ifb = JSON.parse(run('ip', '-n', host, '-j', 'link', 'show', 'type', 'ifb'))[0];
    const entry: Record<string, unknown> = {
      config: bw,
      devices: { vethh: hostIndex, ...(ifb ? { [ifb.ifname]: ifb.ifindex } : {}) },
      qdiscs: add.sent.filter((m) => m.type === RTM.NEWQDISC),
      filters: add.sent.filter((m) => m.type === RTM.NEWTFILTER),
      ifb: add.sent.filter((m) => m.type === RTM.NEWLINK),
    };
    const show = traced(host, ['tc', 'qdisc', 'show']);
    entry.qdiscReplies = show.received.filter((m) => m.type === RTM.NEWQDISC);
    if (ifb) entry.filterReplies = traced(host, ['tc', 'filter', 'show', 'dev', 'vethh', 'parent', 'ffff:']).received.filter((m) => m.type === RTM.NEWTFILTER);
    golden[name] = entry;
  }

  writeFileSync(new URL('tc-golden.json', import.meta.url), JSON.stringify(golden, null, 1) + '\n');
  console.log(`captured ${Object.keys(golden).join(', ')}`);
} finally {
  for (const ns of namespaces.reverse()) spawnSync('ip', ['netns', 'del', ns]);
  rmSync(TRACE, { force: true });
}

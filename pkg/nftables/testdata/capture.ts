/**
 * Regenerates golden.json: the nf_tables messages that `nft` itself sends for each ruleset
 * fragment in CASES, decoded from `nft --debug=mnl` (libmnl's hex dump of every message).
 * The unit tests in ../*.test.ts encode the same objects with our builders and compare bytes.
 *
 * Runs only inside a throwaway network namespace it creates and deletes (`ip netns exec NS nft`),
 * never against the machine's own ruleset. Needs root and nft:
 *   node plugins/core/nftables/testdata/capture.ts
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';

/** By absolute path: under npm/npx, node_modules/.bin holds an unrelated `nft` (@vercel/nft). */
const NFT = '/usr/sbin/nft';

interface Case { name: string; setup: string; cmd: string }

const SETUP = `table inet cnikit {
  map pm_any4 { type inet_proto . inet_service : ipv4_addr . inet_service; }
  map pm_addr6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; }
  set hp4 { type ipv4_addr . ipv4_addr; flags interval; }
  chain post { type nat hook postrouting priority srcnat; policy accept; }
  chain hostports { }
}`;

const CASES: Case[] = [
  { name: 'table', setup: '', cmd: 'add table inet cnikit' },
  { name: 'baseChain', setup: 'add table inet cnikit', cmd: 'add chain inet cnikit pre { type nat hook prerouting priority dstnat; policy accept; }' },
  { name: 'chain', setup: 'add table inet cnikit', cmd: 'add chain inet cnikit hostports' },
  { name: 'mapAny4', setup: 'add table inet cnikit', cmd: 'add map inet cnikit pm_any4 { type inet_proto . inet_service : ipv4_addr . inet_service; }' },
  { name: 'mapAddr6', setup: 'add table inet cnikit', cmd: 'add map inet cnikit pm_addr6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; }' },
  { name: 'setConcatInterval4', setup: 'add table inet cnikit', cmd: 'add set inet cnikit hp4 { type ipv4_addr . ipv4_addr; flags interval; }' },
  { name: 'ruleFibJump', setup: SETUP, cmd: 'add rule inet cnikit post fib daddr type local jump hostports' },
  { name: 'ruleDnatMap', setup: SETUP, cmd: 'add rule inet cnikit hostports meta nfproto ipv4 dnat ip to meta l4proto . th dport map @pm_any4' },
  { name: 'ruleDnatMap6', setup: SETUP, cmd: 'add rule inet cnikit hostports meta nfproto ipv6 dnat ip6 to ip6 daddr . meta l4proto . th dport map @pm_addr6' },
  { name: 'ruleMasqLocalnet', setup: SETUP, cmd: 'add rule inet cnikit post ct status dnat meta nfproto ipv4 ip saddr 127.0.0.0/8 masquerade' },
  { name: 'ruleMasqLookup', setup: SETUP, cmd: 'add rule inet cnikit post ct status dnat meta nfproto ipv4 ip saddr . ip daddr @hp4 masquerade' },
  { name: 'ruleReturnMulticast6', setup: SETUP, cmd: 'add rule inet cnikit post meta nfproto ipv6 ip6 daddr ff00::/8 return' },
  { name: 'ruleCounterRange', setup: SETUP, cmd: 'add rule inet cnikit post meta nfproto ipv4 tcp dport 1000-2000 counter accept' },
  { name: 'elemMap', setup: SETUP, cmd: 'add element inet cnikit pm_any4 { tcp . 8080 comment "net=n id=c if=eth0" : 10.77.0.5 . 80 }' },
  { name: 'elemMap6', setup: SETUP, cmd: 'add element inet cnikit pm_addr6 { 2001:db8::1 . udp . 53 : fd77::5 . 5353 }' },
  { name: 'elemInterval', setup: SETUP, cmd: 'add element inet cnikit hp4 { 10.77.1.0/24 . 10.77.1.5 comment "x" }' },
  { name: 'delElemMap', setup: `${SETUP}\nadd element inet cnikit pm_any4 { tcp . 8080 : 10.77.0.5 . 80 }`, cmd: 'delete element inet cnikit pm_any4 { tcp . 8080 }' },
];

// nfnetlink message types: BATCH_BEGIN=16, BATCH_END=17.
interface Msg { type: number; hex: string }

function parseMnl(text: string): Msg[] {
  const clean = text.replace(/\x1b\[[0-9;]*m/g, '');
  const out: Msg[] = [];
  let cur: { type: number; bytes: number[] } | undefined;
  let expectType = false;
  for (const line of clean.split('\n')) {
    let m: RegExpMatchArray | null;
    if ((m = line.match(/^\|\s+(\d{10})\s+\|\s+\|\s+message length/))) {
      if (cur) out.push({ type: cur.type, hex: Buffer.from(cur.bytes).toString('hex') });
      cur = { type: -1, bytes: [] };
      expectType = true;
    } else if (expectType && (m = line.match(/^\|\s+(\d{5})\s+\|/))) {
      cur!.type = Number(m[1]);
      expectType = false;
    } else if ((m = line.match(/^\|\s?([0-9a-f]{2}) ([0-9a-f]{2}) ([0-9a-f]{2}) ([0-9a-f]{2})\s+\|\s+\|\s+(extra header|data)/))) {
      cur!.bytes.push(...m.slice(1, 5).map((h) => parseInt(h, 16)));
    } else if ((m = line.match(/^\|(\d{5})\|([N-])([B-])\|(\d{5})\|/))) {
      const len = Number(m[1]);
      const type = Number(m[4]) | (m[2] === 'N' ? 0x8000 : 0) | (m[3] === 'B' ? 0x4000 : 0);
      cur!.bytes.push(len & 0xff, len >> 8, type & 0xff, type >> 8);
    }
  }
  if (cur) out.push({ type: cur.type, hex: Buffer.from(cur.bytes).toString('hex') });
  // Keep what lies between BATCH_BEGIN and BATCH_END.
  const begin = out.findIndex((x) => x.type === 16);
  const end = out.findIndex((x) => x.type === 17);
  return out.slice(begin + 1, end);
}

const ns = `cnkcap${process.pid}`;
execFileSync('ip', ['netns', 'add', ns]);
try {
  const golden: Record<string, Msg[]> = {};
  for (const c of CASES) {
    spawnSync('ip', ['netns', 'exec', ns, NFT, 'flush', 'ruleset']);
    if (c.setup) execFileSync('ip', ['netns', 'exec', ns, NFT, '-f', '-'], { input: c.setup });
    const r = spawnSync('ip', ['netns', 'exec', ns, NFT, '--debug=mnl', '-f', '-'], { input: c.cmd, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${c.name}: ${r.stderr}`);
    golden[c.name] = parseMnl(r.stdout + r.stderr);
  }
  writeFileSync(new URL('golden.json', import.meta.url), JSON.stringify(golden, null, 1) + '\n');
  console.log(`captured ${Object.keys(golden).length} cases`);
} finally {
  execFileSync('ip', ['netns', 'del', ns]);
}

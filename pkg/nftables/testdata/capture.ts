/**
 * Regenerates golden.json: the nf_tables messages that `nft` itself sends for each ruleset
 * fragment in CASES, decoded from `nft --debug=mnl` (libmnl's hex dump of every message).
 * The unit tests in ../*.test.ts encode the same objects with our builders and compare bytes.
 *
 * Runs only inside a throwaway network namespace it creates and deletes (`ip netns exec NS nft`),
 * never against the machine's own ruleset. Needs root and nft:
 *   npx node pkg/nftables/testdata/capture.ts
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

/** The firewall plugin's objects (plugins/firewall/rules.ts), for its rule shapes. */
const FW_SETUP = `table inet cnikit {
  set firewall_bridges { type ifname; }
  set firewall_same { type ifname . ifname; }
  set firewall_isolated { type ifname; }
  set firewall_internal { type ifname; }
  set firewall_noicc { type ifname . ifname; }
  set firewall_strict { type ifname; }
  set firewall_ctr4 { type ifname . ipv4_addr; }
  set firewall_ctr6 { type ifname . ipv6_addr; }
  chain CNI-ADMIN { }
  map firewall_admin { type ifname : verdict; }
  chain firewall_forward { type filter hook forward priority -200; policy accept; }
  chain firewall_unmark { type filter hook forward priority 200; policy accept; }
}`;

/** A foreign iptables-nft filter table, as \`iptables -P FORWARD DROP\` leaves it. */
const IPT_SETUP = `table ip filter {
  chain FORWARD { type filter hook forward priority filter; policy drop; }
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
  // The firewall plugin's objects and each of its rules (plugins/firewall/rules.ts).
  { name: 'filterChainDrop', setup: 'add table ip filter', cmd: 'add chain ip filter FORWARD { type filter hook forward priority filter; policy drop; }' },
  { name: 'fwForwardChain', setup: 'add table inet cnikit', cmd: 'add chain inet cnikit firewall_forward { type filter hook forward priority -200; policy accept; }' },
  { name: 'fwUnmarkChain', setup: 'add table inet cnikit', cmd: 'add chain inet cnikit firewall_unmark { type filter hook forward priority 200; policy accept; }' },
  { name: 'setIfname', setup: 'add table inet cnikit', cmd: 'add set inet cnikit firewall_bridges { type ifname; }' },
  { name: 'setIfnamePair', setup: 'add table inet cnikit', cmd: 'add set inet cnikit firewall_same { type ifname . ifname; }' },
  { name: 'setIfnameAddr4', setup: 'add table inet cnikit', cmd: 'add set inet cnikit firewall_ctr4 { type ifname . ipv4_addr; }' },
  { name: 'setIfnameAddr6', setup: 'add table inet cnikit', cmd: 'add set inet cnikit firewall_ctr6 { type ifname . ipv6_addr; }' },
  { name: 'vmapIfname', setup: 'add table inet cnikit', cmd: 'add map inet cnikit firewall_admin { type ifname : verdict; }' },
  { name: 'fwMarkClear', setup: FW_SETUP, cmd: 'add rule inet cnikit firewall_forward meta mark set meta mark & 0xfffeffff' },
  { name: 'fwNotOurs', setup: FW_SETUP, cmd: 'add rule inet cnikit firewall_forward iifname != @firewall_bridges oifname != @firewall_bridges return' },
  { name: 'fwMarkSet', setup: FW_SETUP, cmd: 'add rule inet cnikit firewall_forward meta mark set meta mark | 0x10000' },
  { name: 'fwAdminOut', setup: FW_SETUP, cmd: 'add rule inet cnikit firewall_forward oifname vmap @firewall_admin' },
  { name: 'fwAdminIn', setup: FW_SETUP, cmd: 'add rule inet cnikit firewall_forward iifname . oifname != @firewall_same iifname vmap @firewall_admin' },
  { name: 'fwInternalOut', setup: FW_SETUP, cmd: 'add rule inet cnikit firewall_forward iifname @firewall_internal iifname . oifname != @firewall_same drop' },
  { name: 'fwInternalIn', setup: FW_SETUP, cmd: 'add rule inet cnikit firewall_forward oifname @firewall_internal iifname . oifname != @firewall_same drop' },
  { name: 'fwEstablished', setup: FW_SETUP, cmd: 'add rule inet cnikit firewall_forward ct state established,related meta mark set meta mark | 0x10000 accept' },
  { name: 'fwPublished4', setup: FW_SETUP, cmd: 'add rule inet cnikit firewall_forward ct status dnat meta nfproto ipv4 oifname . ip daddr @firewall_ctr4 meta mark set meta mark | 0x10000 accept' },
  { name: 'fwPublished6', setup: FW_SETUP, cmd: 'add rule inet cnikit firewall_forward ct status dnat meta nfproto ipv6 oifname . ip6 daddr @firewall_ctr6 meta mark set meta mark | 0x10000 accept' },
  { name: 'fwNoIcc', setup: FW_SETUP, cmd: 'add rule inet cnikit firewall_forward iifname . oifname @firewall_noicc drop' },
  { name: 'fwIsolated', setup: FW_SETUP, cmd: 'add rule inet cnikit firewall_forward oifname @firewall_isolated iifname @firewall_bridges iifname . oifname != @firewall_same drop' },
  { name: 'fwStrict', setup: FW_SETUP, cmd: 'add rule inet cnikit firewall_forward iifname @firewall_strict oifname @firewall_bridges iifname . oifname != @firewall_same drop' },
  { name: 'fwFromCtr4', setup: FW_SETUP, cmd: 'add rule inet cnikit firewall_forward meta nfproto ipv4 iifname . ip saddr @firewall_ctr4 meta mark set meta mark | 0x10000 accept' },
  { name: 'fwFromCtr6', setup: FW_SETUP, cmd: 'add rule inet cnikit firewall_forward meta nfproto ipv6 iifname . ip6 saddr @firewall_ctr6 meta mark set meta mark | 0x10000 accept' },
  { name: 'fwUnmark', setup: FW_SETUP, cmd: 'add rule inet cnikit firewall_unmark meta mark set meta mark & 0xfffeffff' },
  { name: 'fwForeignMarkAccept', setup: IPT_SETUP, cmd: 'add rule ip filter FORWARD meta mark and 0x10000 == 0x10000 counter accept comment "cnikit firewall: accepted by table inet cnikit (mark 0x10000)"' },
  { name: 'delRuleHandle', setup: `${IPT_SETUP}\nadd rule ip filter FORWARD counter accept`, cmd: 'delete rule ip filter FORWARD handle 2' },
  { name: 'elemIfname', setup: FW_SETUP, cmd: 'add element inet cnikit firewall_bridges { "cnk0" comment "net=n" }' },
  { name: 'elemIfnamePair', setup: FW_SETUP, cmd: 'add element inet cnikit firewall_same { "cnk0" . "cnk0" comment "net=n" }' },
  { name: 'elemIfnameAddr4', setup: FW_SETUP, cmd: 'add element inet cnikit firewall_ctr4 { "cnk0" . 10.77.0.5 comment "net=n id=c if=eth0" }' },
  { name: 'elemIfnameAddr6', setup: FW_SETUP, cmd: 'add element inet cnikit firewall_ctr6 { "cnk0" . fd77::5 comment "net=n id=c if=eth0" }' },
  { name: 'elemVmapJump', setup: FW_SETUP, cmd: 'add element inet cnikit firewall_admin { "cnk0" comment "net=n" : jump CNI-ADMIN }' },
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

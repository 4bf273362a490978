/**
 * bridge + host-local + portmap with one port mapping: ADD and DEL wall time when 0, 100 and
 * 1000 other containers already have a mapping, cnikit next to the reference Go plugins 1.1.1
 * (/usr/lib/cni, whose portmap drives iptables; iptables-nft here). Runnable alone:
 * `node bench/portmap.ts [--runs N]`; `npm run bench` runs it through bench/run.ts.
 *
 * Everything happens in throwaway namespaces: for each (implementation, N) a fresh sandbox host
 * netns plus one container netns, and the timing loop re-executes this file inside the host
 * netns so that each plugin is exec'd directly (no `ip netns exec` in the measured time).
 *
 * The N background mappings are written in bulk, in the form each implementation's own ADD
 * leaves them (1000 sequential iptables-based ADDs would take many minutes): for cnikit the
 * owner-tagged map and hairpin elements (built by the same portmapElements() the plugin uses),
 * for the reference the CNI-HOSTPORT-DNAT jump and CNI-DN-<hash> chain per container with its
 * SETMARK/SETMARK/DNAT rules (CNI-NOTES §5.2), loaded with one iptables-restore. The background
 * containers have no veth: the bench measures how the port-mapping state scales.
 */
import { createHash } from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const OURS = join(ROOT, 'dist/bin');
const REF = '/usr/lib/cni';
const runsArg = process.argv.indexOf('--runs');
const RUNS = Math.min(100, Math.max(5, runsArg > 0 ? Number(process.argv[runsArg + 1]) : 15));
const SIZES = [0, 100, 1000] as const;
const NET = 'benchpm';
const PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

interface Stats { median: number; mean: number; min: number; p90: number }
type Impl = 'cnikit' | 'reference';

function stats(xs: number[]): Stats {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
  return { median: at(0.5), mean: s.reduce((a, b) => a + b, 0) / s.length, min: s[0]!, p90: at(0.9) };
}

function call(file: string, env: NodeJS.ProcessEnv, input: string): { ms: number; status: number | null; out: string } {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(file, [], { env, input, encoding: 'utf8', timeout: 60_000 });
  return { ms: Number(process.hrtime.bigint() - t0) / 1e6, status: r.status, out: r.stdout + r.stderr };
}

function bridgeConf(dataDir: string): Record<string, unknown> {
  return {
    cniVersion: '1.0.0', name: NET, type: 'bridge', bridge: 'cnkbench0', isGateway: true,
    ipam: { type: 'host-local', dataDir, ranges: [[{ subnet: '10.77.0.0/16' }]], routes: [{ dst: '0.0.0.0/0' }] },
  };
}

function portmapConf(prevResult: unknown): Record<string, unknown> {
  return {
    cniVersion: '1.0.0', name: NET, type: 'portmap', capabilities: { portMappings: true }, snat: true,
    runtimeConfig: { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }] }, prevResult,
  };
}

/** Runs inside the sandbox host netns: RUNS times ADD (bridge, portmap) then DEL (portmap, bridge). */
function inner(impl: Impl, ctrNs: string): void {
  const dir = impl === 'cnikit' ? OURS : REF;
  const tmp = mkdtempSync(join(tmpdir(), 'cnikit-benchpm-'));
  const add: number[] = [];
  const del: number[] = [];
  try {
    const bconf = JSON.stringify(bridgeConf(join(tmp, 'ipam')));
    for (let i = -2; i < RUNS; i++) { // two warm-up rounds (they also create the bridge and skeleton)
      const env = { PATH, CNI_IFNAME: 'eth0', CNI_CONTAINERID: `measured${i + 2}`, CNI_NETNS: `/run/netns/${ctrNs}`, CNI_PATH: dir, CNI_ARGS: '' };
      const b = call(join(dir, 'bridge'), { ...env, CNI_COMMAND: 'ADD' }, bconf);
      if (b.status !== 0) throw new Error(`${impl} bridge ADD: ${b.out}`);
      const pconf = JSON.stringify(portmapConf(JSON.parse(b.out)));
      const p = call(join(dir, 'portmap'), { ...env, CNI_COMMAND: 'ADD' }, pconf);
      if (p.status !== 0) throw new Error(`${impl} portmap ADD: ${p.out}`);
      const pd = call(join(dir, 'portmap'), { ...env, CNI_COMMAND: 'DEL' }, pconf);
      if (pd.status !== 0) throw new Error(`${impl} portmap DEL: ${pd.out}`);
      const bd = call(join(dir, 'bridge'), { ...env, CNI_COMMAND: 'DEL' }, bconf);
      if (bd.status !== 0) throw new Error(`${impl} bridge DEL: ${bd.out}`);
      if (i >= 0) { add.push(b.ms + p.ms); del.push(pd.ms + bd.ms); }
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  process.stdout.write(JSON.stringify({ add: stats(add), del: stats(del) }));
}

const bgIp = (i: number): string => `10.99.${i >> 8}.${i & 255}`;
const bgPort = (i: number): number => 20000 + i;

/** Writes n background mappings the way cnikit's ADD leaves them, in transactions of 100 containers. */
async function populateOurs(hostPath: string, n: number): Promise<void> {
  if (!n) return;
  const [{ openNftables }, { rulesetMessages }, { portmapElements, portmapSkeleton }, { parseCidr }] = await Promise.all([
    import('../plugins/core/nftables/handle.ts'), import('../plugins/core/nftables/model.ts'),
    import('../plugins/portmap/rules.ts'), import('../plugins/core/ip/cidr.ts'),
  ]);
  const nft = openNftables(hostPath);
  try {
    for (let start = 0; start < n; start += 100) {
      const elements = [];
      for (let i = start; i < Math.min(n, start + 100); i++) {
        elements.push(...portmapElements({
          network: NET, containerId: `bg${i}`, ifName: 'eth0', v4: parseCidr(`${bgIp(i)}/16`), snat: true, masqAll: false,
          mappings: [{ hostPort: bgPort(i), containerPort: 80, protocol: 'tcp' }],
        }));
      }
      nft.transact(rulesetMessages({ ...portmapSkeleton(), elements }));
    }
  } finally {
    nft.close();
  }
}

/** Writes n background mappings the way the reference (iptables backend) leaves them. */
function populateReference(host: string, n: number): void {
  if (!n) return;
  const chain = (i: number) => `CNI-DN-${createHash('sha512').update(NET + `bg${i}`).digest('hex').slice(0, 21)}`;
  const lines = ['*nat', ':CNI-HOSTPORT-DNAT - [0:0]', ':CNI-HOSTPORT-SETMARK - [0:0]', ':CNI-HOSTPORT-MASQ - [0:0]'];
  for (let i = 0; i < n; i++) lines.push(`:${chain(i)} - [0:0]`);
  lines.push(
    '-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT',
    '-A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT',
    '-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ',
    '-A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000',
    '-A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE',
  );
  for (let i = 0; i < n; i++) {
    const p = bgPort(i);
    lines.push(
      `-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \\"${NET}\\" id: \\"bg${i}\\"" -m multiport --dports ${p} -j ${chain(i)}`,
      `-A ${chain(i)} -s ${bgIp(i)}/16 -p tcp -m tcp --dport ${p} -j CNI-HOSTPORT-SETMARK`,
      `-A ${chain(i)} -s 127.0.0.1/32 -p tcp -m tcp --dport ${p} -j CNI-HOSTPORT-SETMARK`,
      `-A ${chain(i)} -p tcp -m tcp --dport ${p} -j DNAT --to-destination ${bgIp(i)}:80`,
    );
  }
  lines.push('COMMIT', '');
  execFileSync('ip', ['netns', 'exec', host, 'iptables-restore', '--noflush'], { input: lines.join('\n'), env: { PATH } });
}

function ipCmd(...args: string[]): void {
  execFileSync('ip', args, { stdio: 'ignore' });
}

export type PortmapBench = Record<Impl, Record<number, { add: Stats; del: Stats }>>;

/** Runs every (implementation, N) cell in its own sandbox, prints the table, returns the numbers. */
export async function benchPortmap(): Promise<PortmapBench> {
  const res = { cnikit: {}, reference: {} } as PortmapBench;
  const id = `cnkp${process.pid.toString(36)}`;
  let cell = 0;
  for (const n of SIZES) {
    for (const impl of ['cnikit', 'reference'] as const) {
      const host = `${id}${cell}-h`;
      const ctr = `${id}${cell++}-c`;
      const made: string[] = [];
      try {
        for (const ns of [host, ctr]) { ipCmd('netns', 'add', ns); made.push(ns); }
        ipCmd('-n', host, 'link', 'set', 'lo', 'up');
        if (impl === 'cnikit') await populateOurs(`/run/netns/${host}`, n);
        else populateReference(host, n);
        const r = spawnSync('ip', ['netns', 'exec', host, process.execPath, fileURLToPath(import.meta.url), '--inner', impl, ctr, '--runs', String(RUNS)],
          { encoding: 'utf8', timeout: 900_000 });
        if (r.status !== 0) throw new Error(`bench ${impl} N=${n} failed: ${r.stderr || r.stdout}`);
        res[impl][n] = JSON.parse(r.stdout);
      } finally {
        for (const ns of made.reverse()) { try { ipCmd('netns', 'del', ns); } catch { /* gone */ } }
      }
    }
  }
  const f = (x: number) => x.toFixed(1).padStart(8);
  console.log(`\nbridge + host-local + portmap (one mapping), ${RUNS} runs per cell, median wall ms (sum of the two plugin calls)`);
  console.log(`${'already mapped'.padEnd(15)} ${'ADD ours'.padStart(9)} ${'ADD ref'.padStart(9)} ${'DEL ours'.padStart(9)} ${'DEL ref'.padStart(9)}`);
  for (const n of SIZES) {
    const o = res.cnikit[n]!;
    const r = res.reference[n]!;
    console.log(`${String(n).padEnd(15)} ${f(o.add.median)} ${f(r.add.median)} ${f(o.del.median)} ${f(r.del.median)}`);
  }
  const ratio = (impl: Impl, k: 'add' | 'del') => res[impl][1000]![k].median / res[impl][0]![k].median;
  console.log(`ratio 1000/0: ours ADD ${ratio('cnikit', 'add').toFixed(2)} DEL ${ratio('cnikit', 'del').toFixed(2)}; reference ADD ${ratio('reference', 'add').toFixed(2)} DEL ${ratio('reference', 'del').toFixed(2)}  (target for ours: <= 1.10)`);
  return res;
}

if (process.argv.includes('--inner')) {
  const i = process.argv.indexOf('--inner');
  inner(process.argv[i + 1] as Impl, process.argv[i + 2]!);
} else if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await benchPortmap();
}

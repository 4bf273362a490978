/**
 * bridge + host-local + portmap with one port mapping: ADD and DEL wall time when 0, 100 and
 * 1000 other containers already have a mapping, cnikit next to the reference Go plugins 1.1.1
 * (/usr/lib/cni, whose portmap drives iptables; iptables-nft here). Runnable alone:
 * `node bench/portmap.ts [--runs N]`; `npm run bench` runs it through bench/run.ts.
 *
 * Everything happens in throwaway namespaces: for each (implementation, N) a sandbox host netns
 * plus one container netns, each with a worker (this file re-executed inside the host netns, so
 * that each plugin is exec'd directly, without `ip netns exec` in the measured time). The cells
 * are sampled round-robin, one ADD+DEL each per round, so machine load drift hits all alike.
 *
 * The N background mappings are written in bulk, in the form each implementation's own ADD
 * leaves them (1000 sequential iptables-based ADDs would take many minutes): for cnikit the
 * owner-tagged map and hairpin elements (built by the same portmapElements() the plugin uses),
 * for the reference the CNI-HOSTPORT-DNAT jump and CNI-DN-<hash> chain per container with its
 * SETMARK/SETMARK/DNAT rules (docs/cni-notes.md §5.2), loaded with one iptables-restore. The background
 * containers have no veth: the bench measures how the port-mapping state scales.
 */
import { createHash } from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LineWorker, answerLines, removeNamespaces } from './lib/worker.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const OURS = join(ROOT, 'dist/bin');
const REF = '/usr/lib/cni';
const runsArg = process.argv.indexOf('--runs');
const RUNS = Math.min(100, Math.max(5, runsArg > 0 ? Number(process.argv[runsArg + 1]) : 30));
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

function call(file: string, env: NodeJS.ProcessEnv, input: string): { ms: number; status: number | null; stdout: string; out: string } {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(file, [], { env, input, encoding: 'utf8', timeout: 60_000 });
  return { ms: Number(process.hrtime.bigint() - t0) / 1e6, status: r.status, stdout: r.stdout ?? '', out: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}` };
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

interface Sample { add: number; del: number; bridgeAdd: number; portmapAdd: number; portmapDel: number; bridgeDel: number }

/**
 * Runs inside a sandbox host netns as a long-lived worker: for every line on stdin, one ADD
 * (bridge, then portmap with bridge's result) and one DEL (portmap, then bridge) of a container,
 * answered with one JSON line of timings. The orchestrator drives all cells round-robin, so
 * load drift on the machine hits every cell alike.
 */
function worker(impl: Impl, ctrNs: string): void {
  const dir = impl === 'cnikit' ? OURS : REF;
  const tmp = mkdtempSync(join(tmpdir(), 'cnikit-benchpm-'));
  const bconf = JSON.stringify(bridgeConf(join(tmp, 'ipam')));
  let i = 0;
  const once = (): Sample => {
    const env = { PATH, CNI_IFNAME: 'eth0', CNI_CONTAINERID: `measured${i++}`, CNI_NETNS: `/run/netns/${ctrNs}`, CNI_PATH: dir, CNI_ARGS: '' };
    const b = call(join(dir, 'bridge'), { ...env, CNI_COMMAND: 'ADD' }, bconf);
    if (b.status !== 0) throw new Error(`${impl} bridge ADD: ${b.out}`);
    const pconf = JSON.stringify(portmapConf(JSON.parse(b.stdout)));
    const p = call(join(dir, 'portmap'), { ...env, CNI_COMMAND: 'ADD' }, pconf);
    if (p.status !== 0) throw new Error(`${impl} portmap ADD: ${p.out}`);
    const pd = call(join(dir, 'portmap'), { ...env, CNI_COMMAND: 'DEL' }, pconf);
    if (pd.status !== 0) throw new Error(`${impl} portmap DEL: ${pd.out}`);
    const bd = call(join(dir, 'bridge'), { ...env, CNI_COMMAND: 'DEL' }, bconf);
    if (bd.status !== 0) throw new Error(`${impl} bridge DEL: ${bd.out}`);
    return { add: b.ms + p.ms, del: pd.ms + bd.ms, bridgeAdd: b.ms, portmapAdd: p.ms, portmapDel: pd.ms, bridgeDel: bd.ms };
  };
  answerLines(() => once(), () => rmSync(tmp, { recursive: true, force: true }));
}

/** A worker process in a cell's host netns, asked for one sample at a time. */
class Cell {
  private readonly w: LineWorker;
  constructor(host: string, impl: Impl, ctr: string) {
    this.w = new LineWorker(host, fileURLToPath(import.meta.url), ['--worker', impl, ctr]);
  }

  sample(): Promise<Sample> {
    return this.w.ask<Sample>('go');
  }

  stop(): Promise<void> {
    return this.w.stop();
  }
}

const bgIp = (i: number): string => `10.99.${i >> 8}.${i & 255}`;
const bgPort = (i: number): number => 20000 + i;

/** Writes n background mappings the way cnikit's ADD leaves them, in transactions of 100 containers. */
async function populateOurs(hostPath: string, n: number): Promise<void> {
  if (!n) return;
  const [{ openNftables }, { rulesetMessages }, { portmapElements, portmapSkeleton }, { parseCidr }] = await Promise.all([
    import('../pkg/nftables/handle.ts'), import('../pkg/nftables/model.ts'),
    import('../plugins/portmap/rules.ts'), import('../pkg/ip/cidr.ts'),
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
      await nft.transact(rulesetMessages({ ...portmapSkeleton(), elements }));
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

/**
 * The nftables layer alone, in this process (no exec, no Node start-up): one attachment's ADD
 * transaction (applyRuleset, fast path) and DEL (point queries + delete), each on a fresh socket
 * as a plugin process would use it, `rounds` times against the sandbox at `hostPath`.
 */
async function layerTimes(hostPath: string, rounds: number): Promise<{ add: Stats; del: Stats }> {
  const [{ openNftables }, { CNIKIT_TABLE, applyRuleset, deleteElements }, { portmapElements, portmapRuleset }, { parseCidr }, { getElement }] = await Promise.all([
    import('../pkg/nftables/handle.ts'), import('../pkg/nftables/model.ts'),
    import('../plugins/portmap/rules.ts'), import('../pkg/ip/cidr.ts'), import('../pkg/nftables/objects.ts'),
  ]);
  const add: number[] = [];
  const del: number[] = [];
  for (let i = -5; i < rounds; i++) {
    const input = {
      network: NET, containerId: `layer${i + 5}`, ifName: 'eth0', v4: parseCidr('10.98.0.2/16'), snat: true, masqAll: false,
      mappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' as const }],
    };
    let t0 = process.hrtime.bigint();
    let nft = openNftables(hostPath);
    await applyRuleset(nft, portmapRuleset(input));
    nft.close();
    const a = Number(process.hrtime.bigint() - t0) / 1e6;
    t0 = process.hrtime.bigint();
    nft = openNftables(hostPath);
    const want = portmapElements(input);
    const found = await nft.getElements(want.map((e) => getElement(CNIKIT_TABLE, e.set, e.key, e.keyEnd)));
    await deleteElements(nft, CNIKIT_TABLE, want.filter((_, j) => found[j]));
    nft.close();
    const d = Number(process.hrtime.bigint() - t0) / 1e6;
    if (i >= 0) { add.push(a); del.push(d); }
  }
  return { add: stats(add), del: stats(del) };
}

function ipCmd(...args: string[]): void {
  execFileSync('ip', args, { stdio: 'ignore' });
}

type Part = keyof Sample;
export type PortmapBench = Record<Impl, Record<number, Record<Part, Stats>>>;

/** Prepares every (implementation, N) cell, samples them round-robin, prints the table, returns the numbers. */
export async function benchPortmap(): Promise<PortmapBench> {
  const id = `cnkp${process.pid.toString(36)}`;
  const made: string[] = [];
  const cells: { impl: Impl; n: number; cell: Cell; samples: Sample[] }[] = [];
  const layer: Record<number, { add: Stats; del: Stats }> = {};
  try {
    let k = 0;
    for (const n of SIZES) {
      for (const impl of ['cnikit', 'reference'] as const) {
        const host = `${id}${k}-h`;
        const ctr = `${id}${k++}-c`;
        for (const ns of [host, ctr]) { ipCmd('netns', 'add', ns); made.push(ns); }
        ipCmd('-n', host, 'link', 'set', 'lo', 'up');
        if (impl === 'cnikit') {
          await populateOurs(`/run/netns/${host}`, n);
          layer[n] = await layerTimes(`/run/netns/${host}`, 200);
        } else populateReference(host, n);
        cells.push({ impl, n, cell: new Cell(host, impl, ctr), samples: [] });
      }
    }
    for (let r = -2; r < RUNS; r++) { // two warm-up rounds: page cache, bridge and skeleton creation
      for (const c of r % 2 ? [...cells].reverse() : cells) {
        const s = await c.cell.sample();
        if (r >= 0) c.samples.push(s);
      }
    }
  } finally {
    await Promise.all(cells.map((c) => c.cell.stop()));
    removeNamespaces(made);
  }
  const res = { cnikit: {}, reference: {} } as PortmapBench;
  for (const c of cells) {
    const out = {} as Record<Part, Stats>;
    for (const p of ['add', 'del', 'bridgeAdd', 'portmapAdd', 'portmapDel', 'bridgeDel'] as const) out[p] = stats(c.samples.map((s) => s[p]));
    res[c.impl][c.n] = out;
  }
  const f = (x: number) => x.toFixed(1).padStart(8);
  console.log(`\nbridge + host-local + portmap (one mapping), ${RUNS} rounds over all cells, median wall ms per call (exec to exit)`);
  console.log(`${'mapped'.padEnd(7)} ${'impl'.padEnd(10)} ${'ADD'.padStart(8)} ${'DEL'.padStart(8)}   ${'bridge ADD'.padStart(10)} ${'portmap ADD'.padStart(11)} ${'portmap DEL'.padStart(11)} ${'bridge DEL'.padStart(10)}`);
  for (const n of SIZES) {
    for (const impl of ['cnikit', 'reference'] as const) {
      const o = res[impl][n]!;
      console.log(`${String(n).padEnd(7)} ${impl.padEnd(10)} ${f(o.add.median)} ${f(o.del.median)}   ${f(o.bridgeAdd.median).padStart(10)} ${f(o.portmapAdd.median).padStart(11)} ${f(o.portmapDel.median).padStart(11)} ${f(o.bridgeDel.median).padStart(10)}`);
    }
  }
  const ratio = (impl: Impl, k: Part) => (res[impl][1000]![k].median / res[impl][0]![k].median).toFixed(2);
  // Paired: per round, the 1000-cell sample over the 0-cell sample taken seconds apart, so load
  // drift between rounds cancels out; the median of those.
  const paired = (impl: Impl, k: Part) => {
    const a = cells.find((c) => c.impl === impl && c.n === 1000)!.samples;
    const b = cells.find((c) => c.impl === impl && c.n === 0)!.samples;
    return stats(a.map((x, i) => x[k] / b[i]![k])).median.toFixed(2);
  };
  for (const [name, f2] of [['ratio of medians', ratio], ['paired ratio', paired]] as const) {
    console.log(`${name} 1000/0: ours ADD ${f2('cnikit', 'add')} DEL ${f2('cnikit', 'del')} (portmap alone ${f2('cnikit', 'portmapAdd')} / ${f2('cnikit', 'portmapDel')}); ` +
      `reference ADD ${f2('reference', 'add')} DEL ${f2('reference', 'del')} (portmap alone ${f2('reference', 'portmapAdd')} / ${f2('reference', 'portmapDel')})`);
  }
  console.log('target for ours: <= 1.10');
  console.log(`nftables layer alone (in-process, 200 rounds, median ms): ${SIZES.map((n) => `N=${n} ADD ${layer[n]!.add.median.toFixed(2)} DEL ${layer[n]!.del.median.toFixed(2)}`).join('; ')}`);
  return res;
}

if (process.argv.includes('--worker')) {
  const i = process.argv.indexOf('--worker');
  worker(process.argv[i + 1] as Impl, process.argv[i + 2]!);
} else if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await benchPortmap();
}

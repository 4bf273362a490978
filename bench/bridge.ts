/**
 * bridge + host-local, ours next to the reference Go plugins (/usr/lib/cni), in one run:
 * VERSION start-up, ADD and DEL wall time per call, and their ratios. Runnable alone:
 * `node bench/bridge.ts [--runs N]`. Everything happens in throwaway namespaces: a sandbox
 * host netns in which the plugins run (the runner re-executes itself there) and one container
 * netns per call. Calls alternate between the two implementations so that machine load drifts
 * hit both alike.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const OURS = join(ROOT, 'dist/bin');
const REF = '/usr/lib/cni';
const runsArg = process.argv.indexOf('--runs');
const RUNS = Math.min(200, Math.max(5, runsArg > 0 ? Number(process.argv[runsArg + 1]) : 40));

interface Stats { median: number; mean: number; min: number; p90: number }

function stats(xs: number[]): Stats {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
  return { median: at(0.5), mean: s.reduce((a, b) => a + b, 0) / s.length, min: s[0]!, p90: at(0.9) };
}

function timeCall(file: string, env: NodeJS.ProcessEnv, input: string): { ms: number; status: number | null; out: string } {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(file, [], { env, input, encoding: 'utf8' });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  return { ms, status: r.status, out: r.stdout + r.stderr };
}

function conf(dataDir: string, bridge: string): string {
  return JSON.stringify({
    cniVersion: '0.4.0', name: 'benchnet', type: 'bridge', bridge, isGateway: true,
    ipam: { type: 'host-local', dataDir, ranges: [[{ subnet: '10.123.0.0/16' }]], routes: [{ dst: '0.0.0.0/0' }] },
  });
}

/** Runs inside the sandbox host netns: the timing loop proper. Prints JSON. */
function inner(containerNs: string[]): void {
  const tmp = mkdtempSync(join(tmpdir(), 'cnikit-bench-'));
  const impls = [{ name: 'cnikit', dir: OURS, bridge: 'bench-ours' }, { name: 'reference', dir: REF, bridge: 'bench-ref' }];
  const res: Record<string, { version: number[]; add: number[]; del: number[] }> = {};
  for (const im of impls) res[im.name] = { version: [], add: [], del: [] };
  const base = { PATH: process.env.PATH, CNI_IFNAME: 'eth0' };
  // Warm-up: page cache, bridge creation (first ADD creates the bridge; not what we measure).
  for (const im of impls) {
    for (let i = 0; i < 3; i++) timeCall(join(im.dir, 'bridge'), { ...base, CNI_COMMAND: 'VERSION' }, '{"cniVersion":"1.0.0"}');
    const env = { ...base, CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'warm', CNI_NETNS: `/run/netns/${containerNs[0]}`, CNI_PATH: im.dir };
    const c = conf(join(tmp, im.name), im.bridge);
    const a = timeCall(join(im.dir, 'bridge'), env, c);
    if (a.status !== 0) throw new Error(`${im.name} warm-up ADD failed: ${a.out}`);
    timeCall(join(im.dir, 'bridge'), { ...env, CNI_COMMAND: 'DEL' }, c);
  }
  for (let i = 0; i < RUNS; i++) {
    for (const im of i % 2 ? [...impls].reverse() : impls) {
      const r = res[im.name]!;
      r.version.push(timeCall(join(im.dir, 'bridge'), { ...base, CNI_COMMAND: 'VERSION' }, '{"cniVersion":"1.0.0"}').ms);
      const env = { ...base, CNI_CONTAINERID: `b${i}`, CNI_NETNS: `/run/netns/${containerNs[i % containerNs.length]}`, CNI_PATH: im.dir };
      const c = conf(join(tmp, im.name), im.bridge);
      const a = timeCall(join(im.dir, 'bridge'), { ...env, CNI_COMMAND: 'ADD' }, c);
      if (a.status !== 0) throw new Error(`${im.name} ADD failed: ${a.out}`);
      r.add.push(a.ms);
      const d = timeCall(join(im.dir, 'bridge'), { ...env, CNI_COMMAND: 'DEL' }, c);
      if (d.status !== 0) throw new Error(`${im.name} DEL failed: ${d.out}`);
      r.del.push(d.ms);
    }
  }
  rmSync(tmp, { recursive: true, force: true });
  const out: Record<string, Record<string, Stats>> = {};
  for (const [k, v] of Object.entries(res)) out[k] = { version: stats(v.version), add: stats(v.add), del: stats(v.del) };
  process.stdout.write(JSON.stringify(out));
}

function ipCmd(...args: string[]): void {
  execFileSync('ip', args, { stdio: 'ignore' });
}

/** Creates the namespaces, runs the loop inside the sandbox host, prints the table, cleans up. */
export function benchBridge(): Record<string, Record<string, Stats>> {
  const id = `cnkb${process.pid.toString(36)}`;
  const host = `${id}-h`;
  const ctrs = Array.from({ length: 4 }, (_, i) => `${id}-c${i}`);
  const made: string[] = [];
  try {
    for (const ns of [host, ...ctrs]) { ipCmd('netns', 'add', ns); made.push(ns); }
    ipCmd('-n', host, 'link', 'set', 'lo', 'up');
    const r = spawnSync('ip', ['netns', 'exec', host, process.execPath, fileURLToPath(import.meta.url), '--inner', ...ctrs, '--runs', String(RUNS)], { encoding: 'utf8', timeout: 600_000 });
    if (r.status !== 0) throw new Error(`bench failed: ${r.stderr || r.stdout}`);
    const res = JSON.parse(r.stdout) as Record<string, Record<string, Stats>>;
    const ours = res.cnikit!;
    const ref = res.reference!;
    const row = (what: string, k: 'version' | 'add' | 'del') =>
      `${what.padEnd(22)} ${ours[k]!.median.toFixed(1).padStart(8)} ${ref[k]!.median.toFixed(1).padStart(10)} ${(ours[k]!.median / ref[k]!.median).toFixed(2).padStart(7)}x   (mean ${ours[k]!.mean.toFixed(1)} / ${ref[k]!.mean.toFixed(1)})`;
    console.log(`\nbridge + host-local, ${RUNS} calls each, median wall ms per call (exec to exit)`);
    console.log(`${'call'.padEnd(22)} ${'cnikit'.padStart(8)} ${'reference'.padStart(10)} ${'ratio'.padStart(8)}`);
    console.log(row('VERSION (bridge)', 'version'));
    console.log(row('ADD (bridge+host-local)', 'add'));
    console.log(row('DEL (bridge+host-local)', 'del'));
    console.log(`targets: ADD ratio <= 1.0, DEL ratio <= 0.6, VERSION <= 32 ms`);
    return res;
  } finally {
    for (const ns of made.reverse()) { try { ipCmd('netns', 'del', ns); } catch { /* gone */ } }
  }
}

if (process.argv.includes('--inner')) {
  const i = process.argv.indexOf('--inner');
  const ctrs = process.argv.slice(i + 1).filter((a, n, all) => !a.startsWith('--') && all[n - 1] !== '--runs');
  inner(ctrs);
} else if (process.argv[1] === fileURLToPath(import.meta.url)) {
  benchBridge();
}

/**
 * The warm engine side by side with the reference Go plugins 1.1.1 (/usr/lib/cni) and with the
 * fresh-process plugins, in one run: VERSION, one bridge ADD (with host-local), and a
 * cnitool-like chain (bridge then portmap with bridge's result on ADD, portmap then bridge on
 * DEL) with no other containers. Runnable alone: `node bench/engine.ts [--runs N] [--base DIR]`.
 *
 * Cells, each in its own sandbox host netns (so each has its own engine, bridge and ruleset)
 * with one container netns and a worker (this file re-executed inside the host netns, so the
 * plugins are exec'd directly, as a runtime does):
 *   warm       dist/bin with a running engine
 *   fresh      dist/bin with CNIKIT_ENGINE=off (launcher, then Node on the bundle)
 *   cold       dist/bin, engine on, but stopped before each sample: the first call on a host
 *   base       --base DIR/dist/bin (default /work/wt/base): the plugins before the launchers
 *   reference  /usr/lib/cni
 * The cells are sampled round-robin, one sample of each measure per round, so load drift on
 * the machine hits all alike; cold samples wait for the engine they start to be up before the
 * next cell runs, so that its start-up never lands in another cell's time.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LineWorker, answerLines, removeNamespaces } from './lib/worker.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const OURS = join(ROOT, 'dist/bin');
const REF = '/usr/lib/cni';
const arg = (name: string) => { const i = process.argv.indexOf(name); return i > 0 ? process.argv[i + 1] : undefined; };
const RUNS = Math.min(200, Math.max(3, Number(arg('--runs') ?? 30)));
const BASE = join(arg('--base') ?? '/work/wt/base', 'dist/bin');
const NET = 'benchen';
const PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type CellName = 'warm' | 'fresh' | 'cold' | 'base' | 'reference';
type Measure = 'version' | 'add' | 'chainAdd' | 'chainDel';
const MEASURES: Record<CellName, Measure[]> = {
  warm: ['version', 'add', 'chainAdd', 'chainDel'],
  fresh: ['version', 'add', 'chainAdd', 'chainDel'],
  cold: ['version', 'add'],
  base: ['version', 'add', 'chainAdd', 'chainDel'],
  reference: ['version', 'add', 'chainAdd', 'chainDel'],
};

function call(file: string, env: NodeJS.ProcessEnv, input: string): { ms: number; status: number | null; stdout: string; out: string } {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(file, [], { env, input, encoding: 'utf8', timeout: 60_000 });
  return { ms: Number(process.hrtime.bigint() - t0) / 1e6, status: r.status, stdout: r.stdout ?? '', out: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}` };
}

function bridgeConf(dataDir: string): string {
  return JSON.stringify({
    cniVersion: '1.0.0', name: NET, type: 'bridge', bridge: 'cnkbench0', isGateway: true,
    ipam: { type: 'host-local', dataDir, ranges: [[{ subnet: '10.77.0.0/16' }]], routes: [{ dst: '0.0.0.0/0' }] },
  });
}

function portmapConf(prevResult: unknown): string {
  return JSON.stringify({
    cniVersion: '1.0.0', name: NET, type: 'portmap', capabilities: { portMappings: true }, snat: true,
    runtimeConfig: { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }] }, prevResult,
  });
}

/** Runs inside a cell's host netns: one sample of `measure` per stdin line, one JSON line back. */
async function worker(cell: CellName, ctrNs: string): Promise<void> {
  const dir = cell === 'base' ? BASE : cell === 'reference' ? REF : OURS;
  const tmp = mkdtempSync(join(tmpdir(), 'cnikit-benchen-'));
  const bconf = bridgeConf(join(tmp, 'ipam'));
  const { engineExchange, engineSocketName, engineStatus, MAGIC } = await import('../engine/protocol.ts');
  const name = engineSocketName(realpathSync(join(OURS, '.lib')));
  const base: NodeJS.ProcessEnv = { PATH, CNI_IFNAME: 'eth0', CNI_NETNS: `/run/netns/${ctrNs}`, CNI_PATH: dir, CNI_ARGS: '', ...(cell === 'fresh' ? { CNIKIT_ENGINE: 'off' } : {}) };
  const engineUp = async () => {
    for (let i = 0; i < 200; i++) {
      if (await engineStatus(name, 1000)) return;
      await sleep(25);
    }
    throw new Error('the engine did not come up');
  };
  const engineDown = async () => {
    const s = await engineStatus(name, 1000);
    if (!s) return;
    await engineExchange(name, Buffer.concat([MAGIC, Buffer.from('Q')]), 2000);
    for (let i = 0; i < 400; i++) {
      try {
        process.kill(s.pid, 0);
      } catch {
        // A cold host has no engine, not one that exited a moment ago: let the kernel finish
        // tearing that one down (its sockets, its memory) before the measured call.
        return sleep(300);
      }
      await sleep(10);
    }
    throw new Error('the engine did not stop');
  };
  let n = 0;
  const check = (what: string, r: { status: number | null; out: string }) => {
    if (r.status !== 0) throw new Error(`${cell} ${what}: ${r.out}`);
  };
  const sample = async (m: Measure): Promise<number> => {
    const env = { ...base, CNI_CONTAINERID: `m${n++}` };
    if (cell === 'cold') await engineDown();
    let ms: number;
    if (m === 'version') {
      const r = call(join(dir, 'bridge'), { ...env, CNI_COMMAND: 'VERSION' }, '{"cniVersion":"1.0.0"}');
      check('VERSION', r);
      ms = r.ms;
    } else if (m === 'add') {
      const r = call(join(dir, 'bridge'), { ...env, CNI_COMMAND: 'ADD' }, bconf);
      check('bridge ADD', r);
      ms = r.ms;
      if (cell === 'cold') await engineUp();
      check('bridge DEL', call(join(dir, 'bridge'), { ...env, CNI_COMMAND: 'DEL' }, bconf));
    } else {
      const b = call(join(dir, 'bridge'), { ...env, CNI_COMMAND: 'ADD' }, bconf);
      check('bridge ADD', b);
      const pconf = portmapConf(JSON.parse(b.stdout));
      const p = call(join(dir, 'portmap'), { ...env, CNI_COMMAND: 'ADD' }, pconf);
      check('portmap ADD', p);
      const pd = call(join(dir, 'portmap'), { ...env, CNI_COMMAND: 'DEL' }, pconf);
      check('portmap DEL', pd);
      const bd = call(join(dir, 'bridge'), { ...env, CNI_COMMAND: 'DEL' }, bconf);
      check('bridge DEL', bd);
      ms = m === 'chainAdd' ? b.ms + p.ms : pd.ms + bd.ms;
    }
    if (cell === 'cold' && m === 'version') await engineUp();
    return ms;
  };
  // Warm-up: the bridge exists, page cache and compile cache are filled, the engine runs.
  for (const m of ['version', 'add'] as const) await sample(m);
  if (cell === 'warm') await engineUp();
  answerLines(async (line) => ({ ms: await sample(line as Measure) }), () => rmSync(tmp, { recursive: true, force: true }));
}

/** A worker process in a cell's host netns, asked for one sample at a time. */
class Cell {
  private readonly w: LineWorker;
  constructor(host: string, cell: CellName, ctr: string) {
    this.w = new LineWorker(host, fileURLToPath(import.meta.url), ['--worker', cell, ctr, '--base', join(BASE, '../..')]);
  }

  async sample(m: Measure): Promise<number> {
    return (await this.w.ask<{ ms: number }>(m)).ms;
  }

  stop(): Promise<void> {
    return this.w.stop();
  }
}

interface Stats { min: number; median: number }
function stats(xs: number[]): Stats {
  const s = [...xs].sort((a, b) => a - b);
  return { min: s[0]!, median: s[Math.floor(s.length / 2)]! };
}

/** Runs every cell round-robin and prints min / median per measure and the ratios. */
export async function benchEngine(): Promise<Record<string, Record<string, Stats>>> {
  const cells = (Object.keys(MEASURES) as CellName[]).filter((c) => c !== 'base' || existsSync(join(BASE, 'bridge')));
  const id = `cnke${process.pid.toString(36)}`;
  const made: string[] = [];
  const ip = (...a: string[]) => execFileSync('ip', a, { stdio: 'ignore' });
  const workers = new Map<CellName, Cell>();
  try {
    for (const c of cells) {
      const host = `${id}-${c}`;
      const ctr = `${id}-${c}-c`;
      for (const ns of [host, ctr]) { ip('netns', 'add', ns); made.push(ns); }
      ip('-n', host, 'link', 'set', 'lo', 'up');
      workers.set(c, new Cell(host, c, ctr));
    }
    const samples = new Map<string, number[]>();
    for (let round = 0; round < RUNS; round++) {
      const order = round % 2 ? [...cells].reverse() : cells;
      for (const c of order) {
        for (const m of MEASURES[c]) {
          const k = `${c} ${m}`;
          if (!samples.has(k)) samples.set(k, []);
          samples.get(k)!.push(await workers.get(c)!.sample(m));
        }
      }
    }
    const out: Record<string, Record<string, Stats>> = {};
    for (const [k, v] of samples) {
      const [c, m] = k.split(' ') as [CellName, Measure];
      (out[c] ??= {})[m] = stats(v);
    }
    const f = (s: Stats | undefined) => (s ? `${s.min.toFixed(1)} / ${s.median.toFixed(1)}` : '-').padStart(14);
    const ratio = (a: Stats | undefined, b: Stats | undefined) => (a && b ? `${(a.median / b.median).toFixed(2)}x` : '-').padStart(11);
    const label: Record<Measure, string> = { version: 'VERSION (bridge)', add: 'ADD bridge+host-local', chainAdd: 'chain ADD (+portmap)', chainDel: 'chain DEL' };
    console.log(`\nThe warm engine, ${RUNS} rounds; ms per call, exec to exit, min / median; ratios of medians`);
    console.log(`${''.padEnd(22)}${'warm'.padStart(14)}${'reference'.padStart(14)}${'warm/ref'.padStart(11)}${'fresh'.padStart(14)}${'base'.padStart(14)}${'fresh/base'.padStart(11)}${'cold'.padStart(14)}${'cold/base'.padStart(11)}`);
    for (const m of ['version', 'add', 'chainAdd', 'chainDel'] as const) {
      console.log(`${label[m].padEnd(22)}${f(out.warm?.[m])}${f(out.reference?.[m])}${ratio(out.warm?.[m], out.reference?.[m])}${f(out.fresh?.[m])}${f(out.base?.[m])}${ratio(out.fresh?.[m], out.base?.[m]).padStart(11)}${f(out.cold?.[m])}${ratio(out.cold?.[m], out.base?.[m]).padStart(11)}`);
    }
    console.log('warm: engine running; fresh: CNIKIT_ENGINE=off; cold: no engine before the call (it starts one); base: before the launchers');
    console.log('goals: chain ADD and DEL <= 0.3x the reference, VERSION <= 2x, cold first call <= 1.1x base');
    return out;
  } finally {
    await Promise.all([...workers.values()].map((w) => w.stop()));
    removeNamespaces(made);
  }
}

if (process.argv.includes('--worker')) {
  const i = process.argv.indexOf('--worker');
  void worker(process.argv[i + 1] as CellName, process.argv[i + 2]!);
} else if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await benchEngine();
}

/**
 * A chain as a runtime runs it, side by side with the reference Go plugins 1.1.1 (/usr/lib/cni)
 * in one run: bridge (host-local, ipMasq) + portmap with one published port, driven by Go's
 * libcni (netns-tests/fixtures/libcni-driver: the library cnitool, containerd and CRI-O use,
 * built here from Debian's golang-github-appc-cni-dev), with its results cache, as cnitool does.
 * cnikit runs with its warm engine (the launchers start it on the first call).
 * Runnable alone: `node bench/chain.ts [--runs N] [--population N] [--shared-population-netns]
 * [--profile DIR]`.
 *
 * Measures, each a wall-clock time of libcni-driver processes (exec to exit):
 *   chain ADD / DEL of one container on a host with no other container, and with `--population`
 *   (default 400) containers attached already (each through the same chain, with a port of its
 *   own); and 50 ADDs, 8 at a time, then their 50 DELs, on the empty host. Each container of the
 *   population has its own network namespace, as on a real host. With `--shared-population-netns`
 *   they all share one (the earlier layout): then every IPv6 multicast packet a new
 *   container sends (DAD, MLD, router solicitation), which the bridge floods to every port, is
 *   received 400 times in one namespace holding 400 per-device routes for it, a cost that grows
 *   with the square of the population (measured: 5.8 ms of CPU per packet at 400 against 2.4 ms
 *   with a namespace each) and that no real host has.
 * Cells (ours and the reference, at 0 and at the population) each have their own sandbox host
 * netns (so their own bridge, iptables or nftables state and engine) and a worker there (this file
 * re-executed inside it) that runs the driver; cells are sampled round-robin, alternating the
 * order, so load drift on the shared machine hits all alike. The 50-parallel measures have cells
 * of their own, so the 0 and population cells differ only in their population; our 0-container
 * engines serve as many warm-up chains as the population cell's served (JIT warmth is not
 * growth). Reported: min / median, spread
 * (p90 / min), ratios of medians.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { alive } from '../netns-tests/lib/sandbox.ts';
import { LineWorker, answerLines, removeNamespaces } from './lib/worker.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const OURS = join(ROOT, 'dist/bin');
const REF = '/usr/lib/cni';
const arg = (name: string) => { const i = process.argv.indexOf(name); return i > 0 ? process.argv[i + 1] : undefined; };
const RUNS = Math.min(100, Math.max(3, Number(arg('--runs') ?? 15)));
const POPULATION = Math.min(1000, Math.max(1, Number(arg('--population') ?? 400)));
const PAR_N = 50;
const SHARED_POP = process.argv.includes('--shared-population-netns');
/**
 * --profile DIR: each of our cells' engines takes a CPU profile of the measured rounds
 * (engine/config.ts CNIKIT_ENGINE_PROFILE; SIGUSR2 after the warm-up starts it over), written
 * to DIR/<cell>/engine-PID.cpuprofile as the bench stops it. Build with CNIKIT_BUILD_NAMES=1.
 */
const PROFILE = arg('--profile');
const PAR_AT = 8;
const NET = 'benchchain';
const PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

type Impl = 'ours' | 'reference';
type Measure = 'add' | 'del' | 'par' | 'parDel';
type Query = Measure | 'perCall';
interface CellDef { name: string; impl: Impl; population: number; measures: Measure[] }

function conflist(dataDir: string): string {
  return JSON.stringify({
    cniVersion: '1.0.0', name: NET, plugins: [
      { type: 'bridge', bridge: 'cnkchain0', isGateway: true, ipMasq: true, ipam: { type: 'host-local', dataDir, ranges: [[{ subnet: '10.76.0.0/16' }]], routes: [{ dst: '0.0.0.0/0' }] } },
      { type: 'portmap', capabilities: { portMappings: true }, snat: true },
    ],
  });
}

const ports = (hostPort: number) => JSON.stringify({ portMappings: [{ hostPort, containerPort: 80, protocol: 'tcp' }] });

/** Runs `cmd` (async), resolves with its wall time; rejects with its output when it fails. */
function timed(cmd: string, args: string[], env: NodeJS.ProcessEnv, input?: string): Promise<{ ms: number; stdout: string }> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const c = spawn(cmd, args, { env });
    let out = '';
    let err = '';
    c.stdout.on('data', (d) => { out += d; });
    c.stderr.on('data', (d) => { err += d; });
    c.on('close', (code) => {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (code === 0) resolve({ ms, stdout: out }); else reject(new Error(`${cmd} ${args.join(' ')}: ${out}${err}`));
    });
    c.stdin.end(input ?? '');
  });
}

/** Where population container `i` lives: CNI_NETNS and CNI_IFNAME. */
function popNetns(prefix: string, i: number): { CNI_NETNS: string; CNI_IFNAME: string } {
  return SHARED_POP ? { CNI_NETNS: `/run/netns/${prefix}-pop`, CNI_IFNAME: `p${i}` } : { CNI_NETNS: `/run/netns/${prefix}-q${i}`, CNI_IFNAME: 'eth0' };
}

/** The namespaces of a cell's population. */
function popNamespaces(prefix: string, population: number): string[] {
  if (!population) return [];
  return SHARED_POP ? [`${prefix}-pop`] : Array.from({ length: population }, (_, i) => `${prefix}-q${i}`);
}

/** Runs fn over items, `at` at a time. */
async function pool<T>(items: T[], at: number, fn: (x: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(at, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]!);
  }));
}

/** Inside a cell's host netns: sets it up, then one sample per stdin line, one JSON line back. */
async function worker(impl: Impl, population: number, prefix: string, driver: string): Promise<void> {
  const dir = impl === 'ours' ? OURS : REF;
  const tmp = mkdtempSync(join(tmpdir(), 'cnikit-benchchain-'));
  const confDir = join(tmp, 'net.d');
  mkdirSync(confDir);
  const dataDir = join(tmp, 'ipam');
  const list = conflist(dataDir);
  writeFileSync(join(confDir, `${NET}.conflist`), list);
  const profileDir = PROFILE && impl === 'ours' ? join(PROFILE, `${impl}@${population}`) : undefined;
  if (profileDir) mkdirSync(profileDir, { recursive: true });
  const env: NodeJS.ProcessEnv = {
    PATH, NETCONFPATH: confDir, CNI_PATH: dir, CNI_CACHE_DIR: join(tmp, 'cache'), CNI_IFNAME: 'eth0', CNI_ARGS: '',
    ...(profileDir ? { CNIKIT_ENGINE_PROFILE: profileDir } : {}),
  };
  const driverRun = (cmd: 'add' | 'del', ns: string, port: number) => timed(driver, [cmd, NET, `/run/netns/${ns}`], { ...env, CAP_ARGS: ports(port) });

  // The population: containers in a namespace each (or all in one, --shared-population-netns),
  // attached through the same chain with plugin calls as a runtime makes them, 8 at a time.
  if (population > 0) {
    const [bridge, portmap] = JSON.parse(list).plugins as Record<string, unknown>[];
    const one = async (i: number) => {
      const e = { ...env, CNI_COMMAND: 'ADD', CNI_CONTAINERID: `pop${i}`, ...popNetns(prefix, i) };
      const b = await timed(join(dir, 'bridge'), [], e, JSON.stringify({ cniVersion: '1.0.0', name: NET, ...bridge }));
      await timed(join(dir, 'portmap'), [], e, JSON.stringify({
        cniVersion: '1.0.0', name: NET, ...portmap, runtimeConfig: { portMappings: [{ hostPort: 20000 + i, containerPort: 80, protocol: 'tcp' }] }, prevResult: JSON.parse(b.stdout),
      }));
    };
    await pool(Array.from({ length: population }, (_, i) => i), 8, one);
  }
  // Warm-up: the bridge and the rules exist, caches are filled, our engine is up. Our engines
  // also serve as many chains before the measures as a population cell's did (its population):
  // V8 optimizes a function after enough calls, so an engine that served 30 calls runs colder
  // code than one that served 800, whatever the number of containers.
  const warmups = impl === 'ours' && population === 0 ? POPULATION : 3;
  for (let i = 0; i < warmups; i++) {
    await driverRun('add', `${prefix}-c`, 8080);
    await driverRun('del', `${prefix}-c`, 8080);
  }
  const { engineSocketName, engineStatus } = await import('../engine/protocol.ts');
  const status = () => engineStatus(engineSocketName(realpathSync(join(OURS, '.lib'))), 2000);
  const perCall = async (): Promise<string> => JSON.stringify((await status())?.perCall ?? null);
  const enginePid = profileDir ? (await status())?.pid : undefined;
  if (enginePid) process.kill(enginePid, 'SIGUSR2');
  const sample = async (m: Measure): Promise<number> => {
    if (m === 'add') return (await driverRun('add', `${prefix}-c`, 8080)).ms;
    if (m === 'del') return (await driverRun('del', `${prefix}-c`, 8080)).ms;
    const t0 = process.hrtime.bigint();
    await pool(Array.from({ length: PAR_N }, (_, i) => i), PAR_AT, (i) => driverRun(m === 'par' ? 'add' : 'del', `${prefix}-p${i}`, 9000 + i));
    return Number(process.hrtime.bigint() - t0) / 1e6;
  };
  process.stdout.write('{"ready":true}\n');
  answerLines(async (line) => {
    const m = line as Query;
    return m === 'perCall' ? { perCall: await perCall() } : { ms: await sample(m) };
  }, () => {
    // The engine writes its profile as it exits (SIGTERM); it is waited for, by pid, for 10 s at most.
    if (enginePid) {
      try { process.kill(enginePid, 'SIGTERM'); } catch { /* gone */ }
      for (let i = 0; i < 200 && alive(enginePid); i++) execFileSync('sleep', ['0.05']);
    }
    rmSync(tmp, { recursive: true, force: true });
  });
}

/** A worker in a cell's host netns, asked for one sample at a time. */
class Cell {
  private readonly w: LineWorker;
  constructor(host: string, def: CellDef, prefix: string, driver: string) {
    this.w = new LineWorker(host, fileURLToPath(import.meta.url), ['--worker', def.impl, String(def.population), prefix, driver, '--population', String(POPULATION), ...(SHARED_POP ? ['--shared-population-netns'] : []), ...(PROFILE ? ['--profile', PROFILE] : [])], { stderr: true });
  }

  /** Waits until the worker has set its host up (the population can take minutes). */
  async ready(): Promise<void> {
    const r = JSON.parse(await this.w.next(900_000)) as { ready?: boolean; error?: string };
    if (!r.ready) throw new Error(r.error ?? 'worker failed to start');
  }

  async sample(m: Measure): Promise<number> {
    return (await this.w.ask<{ ms: number }>(m, 300_000)).ms;
  }

  /** The engine's own per-call times in this cell (ours only): where a chain's time goes. */
  async perCall(): Promise<Record<string, { count: number; p50: number; p99: number }> | null> {
    return JSON.parse((await this.w.ask<{ perCall: string }>('perCall', 30_000)).perCall) as Record<string, { count: number; p50: number; p99: number }> | null;
  }

  stop(): Promise<void> {
    return this.w.stop();
  }
}

export interface Stats { min: number; median: number; p90: number; n: number }
export function stats(xs: number[]): Stats {
  const s = [...xs].sort((a, b) => a - b);
  return { min: s[0]!, median: s[Math.floor(s.length / 2)]!, p90: s[Math.min(s.length - 1, Math.floor(s.length * 0.9))]!, n: s.length };
}

/** Builds the libcni driver; undefined (with the reason printed) when Go or libcni is missing. */
async function driverBuilt(): Promise<{ driver: string; remove(): void } | undefined> {
  const { LIBCNI_NEED, buildLibcniDriver } = await import('../netns-tests/lib/libcni-lib.ts');
  if (!LIBCNI_NEED.met) {
    console.log(`\nchain bench skipped: ${LIBCNI_NEED.reason}`);
    return undefined;
  }
  return buildLibcniDriver();
}

/** Runs every cell round-robin; prints the table; returns the stats by cell and measure. */
export async function benchChain(): Promise<Record<string, Record<string, Stats>> | undefined> {
  if (!existsSync(join(REF, 'bridge'))) {
    console.log(`\nchain bench skipped: no reference plugins in ${REF}`);
    return undefined;
  }
  const built = await driverBuilt();
  if (!built) return undefined;
  const defs: CellDef[] = [
    { name: 'ours', impl: 'ours', population: 0, measures: ['add', 'del'] },
    { name: 'reference', impl: 'reference', population: 0, measures: ['add', 'del'] },
    { name: `ours@${POPULATION}`, impl: 'ours', population: POPULATION, measures: ['add', 'del'] },
    { name: `reference@${POPULATION}`, impl: 'reference', population: POPULATION, measures: ['add', 'del'] },
    { name: 'ours-par', impl: 'ours', population: 0, measures: ['par', 'parDel'] },
    { name: 'reference-par', impl: 'reference', population: 0, measures: ['par', 'parDel'] },
  ];
  const id = `cnkc${process.pid.toString(36)}`;
  const made: string[] = [];
  const ip = (...a: string[]) => execFileSync('ip', a, { stdio: 'ignore' });
  const cells = new Map<string, Cell>();
  try {
    for (const [k, d] of defs.entries()) {
      const prefix = `${id}${k}`;
      const host = `${prefix}-h`;
      const nss = [host, `${prefix}-c`, ...popNamespaces(prefix, d.population), ...(d.measures.includes('par') ? Array.from({ length: PAR_N }, (_, i) => `${prefix}-p${i}`) : [])];
      for (const ns of nss) { ip('netns', 'add', ns); made.push(ns); }
      ip('-n', host, 'link', 'set', 'lo', 'up');
      cells.set(d.name, new Cell(host, d, prefix, built.driver));
    }
    // The populations are made one cell at a time (both at once would only slow each other).
    for (const d of defs) await cells.get(d.name)!.ready();
    const samples = new Map<string, number[]>();
    for (let round = 0; round < RUNS; round++) {
      const order = round % 2 ? [...defs].reverse() : defs;
      for (const d of order) {
        for (const m of d.measures) {
          const k = `${d.name} ${m}`;
          if (!samples.has(k)) samples.set(k, []);
          samples.get(k)!.push(await cells.get(d.name)!.sample(m));
        }
      }
    }
    const out: Record<string, Record<string, Stats>> = {};
    for (const [k, v] of samples) {
      const [c, m] = k.split(' ') as [string, Measure];
      (out[c] ??= {})[m] = stats(v);
    }
    const f = (s: Stats | undefined) => (s ? `${s.min.toFixed(1)} / ${s.median.toFixed(1)} (${(s.p90 / s.min).toFixed(2)})` : '-').padStart(24);
    const ratio = (a: Stats | undefined, b: Stats | undefined) => (a && b ? `${(a.median / b.median).toFixed(2)}x` : '-').padStart(10);
    const P = POPULATION;
    console.log(`\nA chain through libcni (bridge+host-local+ipMasq, portmap with one port), ${RUNS} rounds; ms, min / median (p90/min); ratios of medians; population ${SHARED_POP ? 'in one shared netns' : 'in a netns each'}`);
    console.log(`${''.padEnd(30)}${'cnikit (engine)'.padStart(24)}${'reference 1.1.1'.padStart(24)}${'ratio'.padStart(10)}`);
    const row = (label: string, a: Stats | undefined, b: Stats | undefined) => console.log(`${label.padEnd(30)}${f(a)}${f(b)}${ratio(a, b)}`);
    row('chain ADD, 0 containers', out.ours?.add, out.reference?.add);
    row('chain DEL, 0 containers', out.ours?.del, out.reference?.del);
    row(`chain ADD, ${P} containers`, out[`ours@${P}`]?.add, out[`reference@${P}`]?.add);
    row(`chain DEL, ${P} containers`, out[`ours@${P}`]?.del, out[`reference@${P}`]?.del);
    row(`${PAR_N} ADDs, ${PAR_AT} at a time (wall)`, out['ours-par']?.par, out['reference-par']?.par);
    row(`${PAR_N} DELs, ${PAR_AT} at a time (wall)`, out['ours-par']?.parDel, out['reference-par']?.parDel);
    console.log(`${`ours at ${P} / ours at 0, ADD`.padEnd(30)}${ratio(out[`ours@${P}`]?.add, out.ours?.add).padStart(24)}${ratio(out[`reference@${P}`]?.add, out.reference?.add).padStart(24)}`);
    // The best case of each cell, next to the medians: on this shared machine a host with 400
    // namespaces has kernel work of its own (timers, floods, teardown), which moves medians most.
    const minRatio = (a: Stats | undefined, b: Stats | undefined) => (a && b ? `${(a.min / b.min).toFixed(2)}x` : '-').padStart(24);
    console.log(`${`  the same, of minimums`.padEnd(30)}${minRatio(out[`ours@${P}`]?.add, out.ours?.add)}${minRatio(out[`reference@${P}`]?.add, out.reference?.add)}`);
    for (const d of defs.filter((x) => x.impl === 'ours')) {
      const pc = await cells.get(d.name)!.perCall();
      if (pc) console.log(`${`engine p50 per call, ${d.name}`.padEnd(30)}  ${Object.entries(pc).map(([k, v]) => `${k} ${v.p50.toFixed(1)}`).join(', ')}`);
    }
    console.log(`goals: chain ADD and DEL <= 0.3x; ADD at ${P} <= 0.1x and ours at ${P} / at 0 <= 1.1; ${PAR_N} ADDs ${PAR_AT} at a time <= 0.25x`);
    return out;
  } finally {
    await Promise.all([...cells.values()].map((c) => c.stop()));
    removeNamespaces(made);
    built.remove();
  }
}

if (process.argv.includes('--worker')) {
  const i = process.argv.indexOf('--worker');
  worker(process.argv[i + 1] as Impl, Number(process.argv[i + 2]), process.argv[i + 3]!, process.argv[i + 4]!).catch((err: unknown) => {
    process.stdout.write(JSON.stringify({ error: String(err) }) + '\n');
  });
} else if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await benchChain();
}

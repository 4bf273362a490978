/**
 * dnsname ADD through CNI on a network that already has N names (default 1000): cnikit's
 * dnsname with the warm engine hosting the responder, next to the reference containers/dnsname
 * (/usr/lib/cni/dnsname, which writes dnsmasq's files and signals its dnsmasq), in one run,
 * sampled round-robin; and the engine's RSS while it serves those names (one process: no
 * responder process beside it). Runnable alone: `node bench/dns-engine.ts [--names N] [--runs N]
 * [--profile DIR] [--smaps FILE] [--gap MS]`.
 *
 * Each side has its own sandbox host netns (netns-tests/lib/sandbox.ts) with a bridge (gateway
 * 10.88.0.1/16) and one container netns that every record names (the names are bound to a live
 * netns, as after real ADDs); a worker (this file re-executed inside the host netns) execs the
 * plugin as a runtime does. The reference keeps its state in /run/containers/cni/dnsname, a
 * fixed path: its worker mounts a tmpfs over /run in its own mount namespace (the one `ip netns
 * exec` made, a slave of the machine's: nothing propagates back) with the sandbox's /run/netns
 * bound back in, so its files and its dnsmasq's pid file live only there; its dnsmasq runs in
 * the sandbox host netns and is stopped by its pid at the end (the sandbox cleanup then kills
 * whatever is left in the namespaces, by pid). Our records directory is a tmpfs as well, mounted
 * the same way: on a real host both live under /run, a tmpfs, and this machine's /run is not one
 * (an fsync on its disk would be measured for one side only). No query leaves the sandbox: the names are only
 * written, and one local name is asked of each side to check it serves them.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { EngineStatus } from '../engine/protocol.ts';
import { alive } from '../netns-tests/lib/sandbox.ts';
import { LineWorker, answerLines, removeNamespaces } from './lib/worker.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const OURS = join(ROOT, 'dist/bin');
const REF = '/usr/lib/cni';
const arg = (name: string) => { const i = process.argv.indexOf(name); return i > 0 ? process.argv[i + 1] : undefined; };
const NAMES = Math.min(5000, Math.max(1, Number(arg('--names') ?? 1000)));
const RUNS = Math.min(200, Math.max(3, Number(arg('--runs') ?? 30)));
/** --profile DIR: the engine takes a CPU profile (engine/config.ts CNIKIT_ENGINE_PROFILE), written when the bench stops it. */
const PROFILE = arg('--profile');
/** --smaps FILE: a copy of the engine's /proc/PID/smaps as it serves, to see where its RSS is. */
const SMAPS = arg('--smaps');
/**
 * --gap MS: an idle pause before each round, as between a runtime's calls on a real host (over
 * 10,000 the responder's idle full GC runs in it: responder/serve.ts GC_IDLE_MS).
 */
const GAP = Math.min(30_000, Math.max(0, Number(arg('--gap') ?? 0)));
const NET = 'benchdns';
const BRIDGE = 'cnkbdns0';
const PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Side = 'ours' | 'reference';

const mib = (b: number | undefined) => `${((b ?? NaN) / 1048576).toFixed(1)} MiB`;
const addressOf = (i: number) => `10.88.${1 + (i >> 8)}.${i & 255}`;

function prevResult(ctrNs: string, i: number) {
  return {
    cniVersion: '0.4.0',
    interfaces: [{ name: BRIDGE, mac: '02:00:00:00:00:01' }, { name: 'vethbench', mac: '02:00:00:00:00:02' }, { name: 'eth0', mac: '02:00:00:00:00:03', sandbox: `/run/netns/${ctrNs}` }],
    ips: [{ version: '4', address: `${addressOf(i)}/16`, gateway: '10.88.0.1', interface: 2 }],
    routes: [{ dst: '0.0.0.0/0' }],
  };
}

/** Runs inside a side's host netns: one sample per stdin line (`fill N`, `add`, `info`, `end`), one JSON line back. */
async function worker(side: Side, ctrNs: string): Promise<void> {
  const tmp = mkdtempSync(join(tmpdir(), 'cnikit-benchdns-'));
  const run = (cmd: string, ...a: string[]) => execFileSync(cmd, a, { stdio: 'ignore' });
  if (side === 'reference') {
    // Private /run for the reference's fixed state path (see the header): only in this mount namespace.
    const keep = join(tmp, 'netns');
    mkdirSync(keep);
    run('mount', '--bind', '/run/netns', keep);
    run('mount', '-t', 'tmpfs', 'tmpfs', '/run');
    mkdirSync('/run/netns');
    run('mount', '--bind', keep, '/run/netns');
  } else {
    mkdirSync(join(tmp, 'dns'));
    run('mount', '-t', 'tmpfs', 'tmpfs', join(tmp, 'dns'));
  }
  const dir = side === 'reference' ? REF : OURS;
  const { engineSocketName, engineStatus } = await import('../engine/protocol.ts');
  const engine = engineSocketName(realpathSync(join(OURS, '.lib')));
  const conf = (i: number) => JSON.stringify({
    cniVersion: '0.4.0', name: NET, type: 'dnsname', domainName: 'dns.bench', capabilities: { aliases: true },
    ...(side === 'ours' ? { recordsDir: join(tmp, 'dns'), upstreams: [] } : {}), prevResult: prevResult(ctrNs, i),
  });
  const env = (command: string, i: number): NodeJS.ProcessEnv => ({
    PATH, CNI_COMMAND: command, CNI_CONTAINERID: `bench${i}`, CNI_NETNS: `/run/netns/${ctrNs}`, CNI_IFNAME: 'eth0', CNI_PATH: dir,
    CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAME=name${i}`,
  });
  const call = (command: string, i: number) => {
    const t0 = process.hrtime.bigint();
    const r = spawnSync(join(dir, 'dnsname'), [], { env: env(command, i), input: conf(i), encoding: 'utf8', timeout: 60_000 });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (r.status !== 0) throw new Error(`${side} ${command} name${i}: ${r.stdout}${r.stderr}${r.error ?? ''}`);
    return ms;
  };
  if (side === 'ours') {
    spawnSync(join(OURS, 'bridge'), [], { env: { PATH, CNI_COMMAND: 'VERSION', ...(PROFILE ? { CNIKIT_ENGINE_PROFILE: PROFILE, CNIKIT_ENGINE_LOG: join(PROFILE, 'engine.log') } : {}) }, input: '{"cniVersion":"1.0.0"}' });
    for (let i = 0; i < 200 && !(await engineStatus(engine, 1000)); i++) await sleep(25);
  }
  const dnsmasqPid = () => {
    try { return Number(readFileSync(`/run/containers/cni/dnsname/${NET}/pidfile`, 'utf8').trim()); } catch { return undefined; }
  };
  let next = NAMES;
  const op = async (line: string): Promise<unknown> => {
    const [what, n] = line.split(' ');
    if (what === 'fill') {
      const t0 = Date.now();
      for (let i = 0; i < Number(n); i++) call('ADD', i);
      return { ms: Date.now() - t0 };
    }
    if (what === 'add') {
      const i = next++;
      const ms = call('ADD', i);
      const del = call('DEL', i);
      const t0 = process.hrtime.bigint();
      spawnSync(join(dir, 'dnsname'), [], { env: { PATH, CNI_COMMAND: 'VERSION' }, input: '{"cniVersion":"1.0.0"}' });
      const ver = Number(process.hrtime.bigint() - t0) / 1e6;
      return { ms, del, ver };
    }
    if (what === 'info') {
      const s = side === 'ours' ? await engineStatus(engine, 2000) : undefined;
      const dig = spawnSync('ip', ['netns', 'exec', ctrNs, process.execPath, '-e', `
        const s = require('dgram').createSocket('udp4');
        const enc = (n) => Buffer.concat([...n.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])), Buffer.from([0])]);
        const m = Buffer.concat([Buffer.from([0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]), enc('name1.dns.bench'), Buffer.from([0, 1, 0, 1])]);
        s.on('message', (r) => { console.log(r.readUInt16BE(6) || -(r[3] & 15)); process.exit(0); }); s.send(m, 53, '10.88.0.1'); setTimeout(() => { console.log(-1); process.exit(0); }, 2000);`], { encoding: 'utf8' });
      return { rss: s?.rss, heap: s?.heap, dns: s?.dns, engine: s?.pid, perCall: s?.perCall, dnsmasq: dnsmasqPid(), answers: Number(dig.stdout.trim()) };
    }
    if (what === 'profile') {
      const pid = (await engineStatus(engine, 2000))?.pid;
      if (pid) process.kill(pid, 'SIGUSR2');
      return { pid };
    }
    if (what === 'end') {
      if (side === 'reference') { try { run('umount', join(tmp, 'netns')); } catch { /* kept */ } }
      const pid = side === 'ours' ? (PROFILE ? (await engineStatus(engine, 2000))?.pid : undefined) : dnsmasqPid();
      if (pid) { try { process.kill(pid, 'SIGTERM'); } catch { /* gone */ } }
      // The engine writes its profile as it exits.
      for (let i = 0; side === 'ours' && pid && i < 200 && alive(pid); i++) await sleep(50);
      return { stopped: pid };
    }
    throw new Error(`unknown op ${line}`);
  };
  answerLines(op, () => {
    // The bind mount of /run/netns under tmp is this mount namespace's own (see the header).
    try { run('umount', '-l', join(tmp, side === 'reference' ? 'netns' : 'dns')); } catch { /* not mounted */ }
    try { rmSync(tmp, { recursive: true, force: true }); } catch (err) { process.stderr.write(`cannot remove ${tmp}: ${String(err)}\n`); }
  });
}

/** A worker process in a side's host netns. */
class Worker {
  private readonly w: LineWorker;
  /** The worker's pid (it runs in the host netns beside what it measures). */
  get pid(): number | undefined {
    return this.w.child.pid;
  }

  constructor(host: string, side: Side, ctr: string) {
    this.w = new LineWorker(host, fileURLToPath(import.meta.url), ['--worker', side, ctr, '--names', String(NAMES), ...(PROFILE ? ['--profile', PROFILE] : [])], { stderr: true });
  }

  ask<T = { ms: number }>(op: string): Promise<T> {
    return this.w.ask<T>(op, 300_000);
  }

  stop(): Promise<void> {
    return this.w.stop();
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const min = (xs: number[]) => Math.min(...xs);

export async function benchDnsEngine(): Promise<void> {
  if (!existsSync(join(REF, 'dnsname'))) {
    console.log(`no reference dnsname at ${REF}/dnsname: skipped`);
    return;
  }
  const id = `cnkd${process.pid.toString(36)}`;
  const made: string[] = [];
  const ip = (...a: string[]) => execFileSync('ip', a, { stdio: 'ignore' });
  const workers = new Map<Side, Worker>();
  const hosts = new Map<Side, string>();
  try {
    for (const side of ['ours', 'reference'] as const) {
      const host = `${id}-${side.slice(0, 3)}`;
      const ctr = `${host}-c`;
      for (const ns of [host, ctr]) { ip('netns', 'add', ns); made.push(ns); }
      ip('-n', host, 'link', 'set', 'lo', 'up');
      ip('-n', host, 'link', 'add', BRIDGE, 'type', 'bridge');
      ip('-n', host, 'addr', 'add', '10.88.0.1/16', 'dev', BRIDGE);
      ip('-n', host, 'link', 'set', BRIDGE, 'up');
      ip('-n', host, 'link', 'add', 'vethbench', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ctr);
      ip('-n', host, 'link', 'set', 'vethbench', 'master', BRIDGE, 'up');
      ip('-n', ctr, 'addr', 'add', '10.88.0.2/16', 'dev', 'eth0');
      ip('-n', ctr, 'link', 'set', 'eth0', 'up');
      ip('-n', ctr, 'link', 'set', 'lo', 'up');
      hosts.set(side, host);
      workers.set(side, new Worker(host, side, ctr));
    }
    const fill: Record<string, number> = {};
    for (const [side, w] of workers) fill[side] = (await w.ask(`fill ${NAMES}`)).ms;
    // The profile covers the measured rounds only (engine/main.ts: SIGUSR2 starts it over).
    if (PROFILE) await workers.get('ours')!.ask('profile');
    // Per round and side: an ADD of a new name (the measured call), its DEL, and a VERSION (the cost of an exec alone).
    const samples: Record<Side, Record<'ADD' | 'DEL' | 'VERSION', number[]>> = { ours: { ADD: [], DEL: [], VERSION: [] }, reference: { ADD: [], DEL: [], VERSION: [] } };
    for (let round = 0; round < RUNS + 3; round++) {
      if (GAP) await sleep(GAP);
      const order: Side[] = round % 2 ? ['reference', 'ours'] : ['ours', 'reference'];
      for (const side of order) {
        const r = await workers.get(side)!.ask<{ ms: number; del: number; ver: number }>('add');
        if (round < 3) continue; // 3 rounds of warm-up
        samples[side].ADD.push(r.ms);
        samples[side].DEL.push(r.del);
        samples[side].VERSION.push(r.ver);
      }
    }
    type Info = { rss?: number; heap?: EngineStatus['heap']; dns?: { names: number; networks: number }[]; engine?: number; perCall?: Record<string, { p50: number }>; dnsmasq?: number; answers: number };
    // RSS as it serves, idle: after the full GC the responder runs once left alone for 10 s
    // (responder/serve.ts GC_IDLE_MS).
    await sleep(11_000);
    const oursInfo = await workers.get('ours')!.ask<Info>('info');
    const refInfo = await workers.get('reference')!.ask<Info>('info');
    const pidsOf = (ns: string) => execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).split(/\s+/).filter(Boolean).map(Number);
    const oursPids = pidsOf(hosts.get('ours')!).filter((p) => p !== workers.get('ours')!.pid);
    /** A size field of /proc/PID/status (VmRSS, RssAnon, RssFile) in MiB; NaN when unreadable. */
    const statusMib = (pid: number | undefined, key: string) => {
      try { return Number(new RegExp(`${key}:\\s+(\\d+)`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024; } catch { return NaN; }
    };
    const dnsmasqRss = statusMib(refInfo.dnsmasq, 'VmRSS');
    const rssParts = (pid: number | undefined) => `anonymous ${statusMib(pid, 'RssAnon').toFixed(1)} MiB, file-backed ${statusMib(pid, 'RssFile').toFixed(1)} MiB`;
    const engineParts = rssParts(oursInfo.engine);
    if (SMAPS && oursInfo.engine) writeFileSync(SMAPS, readFileSync(`/proc/${oursInfo.engine}/smaps`));
    const refStopped = await workers.get('reference')!.ask<{ stopped?: number }>('end');
    if (PROFILE) await workers.get('ours')!.ask('end');

    console.log(`\ndnsname through CNI at ${NAMES} existing names, ${RUNS} rounds; ms per call, exec to exit (min / median)`);
    console.log(`${''.padEnd(10)}${'cnikit (engine, DNS in it)'.padStart(28)}${'reference (dnsmasq)'.padStart(22)}${'ratio'.padStart(9)}`);
    for (const cmd of ['ADD', 'DEL', 'VERSION'] as const) {
      const o = samples.ours[cmd];
      const r = samples.reference[cmd];
      const cell = (xs: number[]) => `${min(xs).toFixed(1)} / ${median(xs).toFixed(1)}`;
      console.log(`${cmd.padEnd(10)}${cell(o).padStart(28)}${cell(r).padStart(22)}${`${(median(o) / median(r)).toFixed(2)}x`.padStart(9)}`);
    }
    console.log(`goal: ADD ratio <= 1.0 (VERSION is what an exec costs each side before any work)`);
    console.log(`inside the engine: dnsname ADD p50 ${oursInfo.perCall?.['dnsname ADD']?.p50} ms, DEL p50 ${oursInfo.perCall?.['dnsname DEL']?.p50} ms`);
    console.log(`filling ${NAMES} names: cnikit ${fill.ours} ms, reference ${fill.reference} ms`);
    const names = oursInfo.dns?.reduce((n, d) => n + d.names, 0);
    console.log(`cnikit: processes in the host netns ${JSON.stringify(oursPids)} (engine ${oursInfo.engine}), serving ${names} names; engine RSS ${mib(oursInfo.rss)} (goal <= 70; V8 heap ${mib(oursInfo.heap?.used)} used of ${mib(oursInfo.heap?.total)}, external ${mib(oursInfo.heap?.external)}; ${engineParts})`);
    console.log(`answers to name1: cnikit ${oursInfo.answers}, reference ${refInfo.answers}; reference dnsmasq ${refInfo.dnsmasq} (RSS ${dnsmasqRss.toFixed(1)} MiB) stopped: ${refStopped.stopped}`);
  } finally {
    await Promise.all([...workers.values()].map((w) => w.stop()));
    removeNamespaces(made);
  }
}

if (process.argv.includes('--worker')) {
  const i = process.argv.indexOf('--worker');
  void worker(process.argv[i + 1] as Side, process.argv[i + 2]!);
} else if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await benchDnsEngine();
}

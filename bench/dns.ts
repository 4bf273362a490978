/**
 * DNS responder benchmark: cnikit's responder next to aardvark-dns (Podman's, 1.4) and dnsmasq
 * (as the dnsname plugin runs it: addn-hosts + expand-hosts + local=/domain/), in one run, with
 * the same names in each one's own format. Runnable alone: `node bench/dns.ts [--seconds N]
 * [--rounds N] [--only case,...] [--cpu-prof DIR]` (cases: gateway-1000, gateway-10000,
 * embedded-1000, embedded-10000, forward; --cpu-prof writes a V8 profile of each cnikit run).
 *
 * Everything runs in throwaway namespaces (Sandbox): a bridge in the sandbox host netns with the
 * gateway 10.89.0.1 and a client netns on it, where dnsperf runs. Cases:
 * - `gateway-N`: N container names served on the gateway, from the host netns;
 * - `embedded-N`: the same names at 127.0.0.11 inside the client's netns (cnikit: its sockets
 *   made there by the responder in the host netns; dnsmasq and aardvark-dns run inside it,
 *   the only way either can answer there);
 * - `forward`: 1000 external names (`e17.example.org`), forwarded to a fake upstream the bench
 *   starts (10.89.0.53 in the host netns, TTL 300) and measured with a warm cache: cnikit and
 *   dnsmasq (`--cache-size=10000`) answer them locally; aardvark-dns has no cache.
 * The name mix is 30% short names (`c17`), 30% qualified (`c17.dns.podman`), 20% AAAA
 * (qualified) and 20% misses in the domain (`nosuch17.dns.podman`). Reported: queries per
 * second, p50/p99 latency (from dnsperf -v, per query), the server's CPU time per query (user +
 * system, every thread: the figure least moved by other load on the machine), the response codes,
 * and each server's resident memory. Servers take turns, `--rounds` times per case in alternating order, so load
 * drift hits them alike; the best round of each is shown.
 *
 * No server ever sees the machine's resolver: dnsmasq runs with --no-resolv, aardvark-dns with
 * a resolv.conf of the bench bind-mounted in its private mount namespace, cnikit with explicit
 * upstreams.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BIN, NODE, ROOT, Sandbox, alive, ip, ipJson } from '../netns-tests/lib/sandbox.ts';
import { RESPONDER_NODE_FLAGS } from '../responder/ensure.ts';
import { type ContainerRecord, formatRecords } from '../responder/records.ts';

const AARDVARK = '/usr/lib/podman/aardvark-dns';
const DOMAIN = 'dns.podman';
const GW = '10.89.0.1';
const UPSTREAM = '10.89.0.53';
const EMBEDDED = '127.0.0.11';
const arg = (name: string) => { const i = process.argv.indexOf(name); return i > 0 ? process.argv[i + 1] : undefined; };
const SECONDS = Math.min(30, Math.max(1, Number(arg('--seconds') ?? 4)));
const ROUNDS = Math.min(9, Math.max(1, Number(arg('--rounds') ?? 3)));
const ONLY = arg('--only')?.split(',');
const SERVERS = arg('--servers')?.split(',');
const FORWARDED_NAMES = 1000;

const v4 = (i: number) => `10.89.${((i + 10) >> 8) & 255}.${(i + 10) & 255}`;
const v6 = (i: number) => `fd89::${(i + 10).toString(16)}`;
const cid = (i: number) => (`c${i}`.padEnd(12, '0') + '0'.repeat(52)).slice(0, 64);

interface Case { name: string; where: 'gateway' | 'embedded'; names: number; forward: boolean }

const CASES: Case[] = [
  { name: 'gateway-1000', where: 'gateway', names: 1000, forward: false },
  { name: 'gateway-10000', where: 'gateway', names: 10_000, forward: false },
  { name: 'embedded-1000', where: 'embedded', names: 1000, forward: false },
  { name: 'embedded-10000', where: 'embedded', names: 10_000, forward: false },
  { name: 'forward', where: 'gateway', names: 1000, forward: true },
];

/** What a server's setup knows of the sandbox. */
interface Ctx { sb: Sandbox; client: string; hostIno: number; clientIno: number; bridgeIndex: number }

interface Server {
  name: string;
  /** Writes its config for the case under dir; returns [netns to run in, argv]. */
  setup(ctx: Ctx, c: Case, dir: string): [string, string[]];
  pidOf?(dir: string, spawned: number): number;
}

const servers: Server[] = [
  {
    name: 'cnikit',
    setup(ctx, c, dir) {
      // Every record is bound to a live netns (the client's: one netns per container would be
      // N more namespaces), so the responder's once-a-second liveness sweep stats N paths as it
      // would on a host with N containers.
      const netns = { ino: ctx.clientIno, path: Sandbox.path(ctx.client) };
      const containers: ContainerRecord[] = Array.from({ length: c.names }, (_, i) => ({
        containerId: `c${i}`, ifName: 'eth0', addresses: [`${v4(i)}/16`, `${v6(i)}/64`], gateways: [GW], names: [`c${i}`], netns,
      }));
      // The client is a container of the network too (at 127.0.0.11 its netns is where the responder listens).
      containers.push({ containerId: 'client', ifName: 'eth0', addresses: ['10.89.255.254/16'], gateways: [GW], names: ['client'], netns });
      writeFileSync(join(dir, 'bench.records'), formatRecords({
        network: 'bench', domain: DOMAIN, port: 53, upstreams: c.forward ? [UPSTREAM] : [], containers,
        hostNetns: ctx.hostIno, bridge: { name: 'br0', index: ctx.bridgeIndex }, ...(c.where === 'embedded' ? { resolver: EMBEDDED } : {}),
      }));
      const prof = arg('--cpu-prof') ? [`--cpu-prof`, `--cpu-prof-dir=${arg('--cpu-prof')}`] : [];
      // dist/bin/dnsname is a native launcher: run the bundle as it does (pkg/bundle.ts freshArgv).
      return [ctx.sb.host, [NODE, ...RESPONDER_NODE_FLAGS, ...prof, join(BIN, '.lib', 'launch.cjs'), 'dnsname', join(BIN, 'dnsname'), '--responder', '--records', dir, '--run-dir', dir]];
    },
  },
  {
    name: 'aardvark-dns',
    setup(ctx, c, dir) {
      // aardvark-dns reads every file of its config directory as a network: give it its own.
      const conf = join(dir, 'conf');
      mkdirSync(conf);
      const lines = [c.where === 'embedded' ? EMBEDDED : GW];
      for (let i = 0; i < c.names; i++) lines.push(`${cid(i)} ${v4(i)} ${v6(i)} c${i}`);
      writeFileSync(join(conf, 'bench'), lines.join('\n') + '\n');
      // It forwards to the nameservers of /etc/resolv.conf: ours, in its own mount namespace.
      writeFileSync(join(dir, 'resolv.conf'), `nameserver ${UPSTREAM}\n`);
      const ns = c.where === 'embedded' ? ctx.client : ctx.sb.host;
      return [ns, ['sh', '-c', `mount --bind ${join(dir, 'resolv.conf')} /etc/resolv.conf && exec ${AARDVARK} --config ${conf} -p 53 run`]];
    },
    pidOf(dir, spawned) {
      try { return Number(readFileSync(join(dir, 'conf', 'aardvark.pid'), 'utf8').trim()) || spawned; } catch { return spawned; }
    },
  },
  {
    name: 'dnsmasq',
    setup(ctx, c, dir) {
      const lines: string[] = [];
      for (let i = 0; i < c.names; i++) lines.push(`${v4(i)}\tc${i}`, `${v6(i)}\tc${i}`);
      writeFileSync(join(dir, 'addnhosts'), lines.join('\n') + '\n');
      const embedded = c.where === 'embedded';
      return [embedded ? ctx.client : ctx.sb.host, ['dnsmasq', '--keep-in-foreground', '--conf-file=/dev/null', '--no-resolv', '--no-hosts', '--user=root',
        `--pid-file=${join(dir, 'pid')}`, `--listen-address=${embedded ? EMBEDDED : GW}`, '--bind-interfaces', '--port=53', '--strict-order',
        `--local=/${DOMAIN}/`, `--domain=${DOMAIN}`, '--expand-hosts', `--addn-hosts=${join(dir, 'addnhosts')}`,
        ...(embedded ? [] : ['--except-interface=lo']), ...(c.forward ? [`--server=${UPSTREAM}`, '--cache-size=10000'] : [])]];
    },
  },
];

function queries(c: Case, file: string): void {
  let seed = 42;
  const rnd = () => { seed = (seed * 1103515245 + 12345) >>> 0; return seed / 2 ** 32; };
  const lines: string[] = [];
  for (let k = 0; k < 20_000; k++) {
    if (c.forward) { lines.push(`e${Math.floor(rnd() * FORWARDED_NAMES)}.example.org A`); continue; }
    const i = Math.floor(rnd() * c.names);
    const r = rnd();
    if (r < 0.3) lines.push(`c${i} A`);
    else if (r < 0.6) lines.push(`c${i}.${DOMAIN} A`);
    else if (r < 0.8) lines.push(`c${i}.${DOMAIN} AAAA`);
    else lines.push(`nosuch${i}.${DOMAIN} A`);
  }
  writeFileSync(file, lines.join('\n') + '\n');
}

/** Every external name once, to warm the caches. */
function warmQueries(file: string): void {
  writeFileSync(file, Array.from({ length: FORWARDED_NAMES }, (_, i) => `e${i}.example.org A`).join('\n') + '\n');
}

const FAKE_UPSTREAM = `
const dgram = require('dgram');
const s = dgram.createSocket('udp4');
// Answers every question with one A record 203.0.113.7, TTL 300 (a copy of the question, QR/RA set).
s.on('message', (m, r) => {
  if (m.length < 12) return;
  let p = 12; while (p < m.length && m[p] !== 0) p += m[p] + 1; p += 5;
  const q = m.subarray(0, p);
  const out = Buffer.alloc(p + 16);
  q.copy(out); out[2] = 0x81; out[3] = 0x80; out.writeUInt16BE(1, 6); out.writeUInt16BE(0, 8); out.writeUInt16BE(0, 10);
  out.writeUInt16BE(0xc00c, p); out.writeUInt16BE(1, p + 2); out.writeUInt16BE(1, p + 4); out.writeUInt32BE(300, p + 6); out.writeUInt16BE(4, p + 10);
  out[p + 12] = 203; out[p + 13] = 0; out[p + 14] = 113; out[p + 15] = 7;
  s.send(out, r.port, r.address);
});
s.bind(53, ${JSON.stringify(UPSTREAM)}, () => process.stdout.write('ready\\n'));`;

const sleep = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

function stop(pid: number): void {
  try { process.kill(pid, 'SIGTERM'); } catch { return; }
  for (let i = 0; i < 100 && alive(pid); i++) sleep(20);
  if (alive(pid)) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  for (let i = 0; i < 50 && alive(pid); i++) sleep(20);
}

function rssKb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

interface Run { qps: number; p50: number; p99: number; lost: string; codes: string; rssKb: number; cpuUs: number }

/** CPU time (user + system, all threads) the process has used, in microseconds. */
function cpuUsOf(pid: number): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').slice(readFileSync(`/proc/${pid}/stat`, 'utf8').lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) * 1e4; // utime, stime in clock ticks of 10 ms
  } catch {
    return NaN;
  }
}

function dnsperf(sb: Sandbox, client: string, server: string, file: string, seconds: number, out: string, once = false): { stats: string; latencies: number[] } {
  const limit = once ? '-n 1' : `-l ${seconds}`;
  const r = sb.exec(client, 'sh', ['-c', `dnsperf -s ${server} -p 53 -d ${file} ${limit} -c 4 -q 100 -T 1 -t 2 -v > ${out} 2>&1`], { timeout: (seconds + 30) * 1000 });
  if (r.status !== 0) throw new Error(`dnsperf failed: ${r.stderr}`);
  const text = readFileSync(out, 'utf8');
  const latencies: number[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('> ')) continue;
    const sp = line.lastIndexOf(' ');
    latencies.push(Number(line.slice(sp + 1)));
  }
  const stats = text.slice(text.indexOf('Statistics:'));
  return { stats, latencies };
}

function measure(ctx: Ctx, s: Server, c: Case, dir: string, qfile: string): Run {
  const { sb, client } = ctx;
  mkdirSync(dir, { recursive: true });
  const [ns, argv] = s.setup(ctx, c, dir);
  const child = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: ['ignore', 'ignore', 'ignore'], detached: false });
  child.unref();
  const server = c.where === 'embedded' ? EMBEDDED : GW;
  let pid = child.pid!;
  try {
    // Ready when one query is answered.
    const probe = join(dir, 'probe.txt');
    writeFileSync(probe, `c0.${DOMAIN} A\n`);
    let ready = false;
    for (let i = 0; i < 200 && !ready; i++) {
      const r = sb.exec(client, 'dnsperf', ['-s', server, '-d', probe, '-n', '1', '-t', '1'], { timeout: 10_000 });
      ready = /Queries completed:\s+1 /.test(r.stdout);
      if (!ready) sleep(50);
    }
    if (!ready) throw new Error(`${s.name} did not answer`);
    pid = s.pidOf ? s.pidOf(dir, pid) : pid;
    if (c.forward) {
      const warm = join(dir, 'warm-names.txt');
      warmQueries(warm);
      dnsperf(sb, client, server, warm, 1, join(dir, 'fill.txt'), true);
    }
    dnsperf(sb, client, server, qfile, 1, join(dir, 'warm.txt'));
    const cpu0 = cpuUsOf(pid);
    const { stats, latencies } = dnsperf(sb, client, server, qfile, SECONDS, join(dir, 'perf.txt'));
    const cpu = cpuUsOf(pid) - cpu0;
    const completed = Number(/Queries completed:\s+(\d+)/.exec(stats)?.[1] ?? NaN);
    latencies.sort((a, b) => a - b);
    const at = (q: number) => (latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN) * 1000;
    return {
      qps: Number(/Queries per second:\s+([\d.]+)/.exec(stats)?.[1] ?? NaN),
      p50: at(0.5), p99: at(0.99),
      lost: /Queries lost:\s+(.*)/.exec(stats)?.[1]?.trim() ?? '?',
      codes: /Response codes:\s+(.*)/.exec(stats)?.[1]?.trim() ?? '?',
      rssKb: rssKb(pid),
      cpuUs: cpu / completed,
    };
  } finally {
    stop(pid);
    if (pid !== child.pid) stop(child.pid!);
  }
}

function startUpstream(sb: Sandbox): number {
  const child = spawn('ip', ['netns', 'exec', sb.host, NODE, '-e', FAKE_UPSTREAM], { stdio: 'ignore' });
  child.unref();
  let ready = false;
  for (let i = 0; i < 100 && !ready; i++) {
    sleep(50);
    ready = sb.exec(sb.host, 'sh', ['-c', `ss -uln | grep -q ${UPSTREAM}:53`]).status === 0;
  }
  if (!ready) throw new Error('fake upstream did not start');
  return child.pid!;
}

function main(): void {
  if (process.getuid?.() !== 0) { console.log('bench/dns.ts needs root (network namespaces); skipped'); return; }
  for (const tool of ['dnsperf', 'dnsmasq', AARDVARK]) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) { console.log(`bench/dns.ts: ${tool} not installed; skipped`); return; }
  }
  const sb = new Sandbox('b');
  try {
    ip('-n', sb.host, 'link', 'add', 'br0', 'type', 'bridge');
    ip('-n', sb.host, 'addr', 'add', `${GW}/16`, 'dev', 'br0');
    ip('-n', sb.host, 'addr', 'add', `${UPSTREAM}/16`, 'dev', 'br0');
    ip('-n', sb.host, 'addr', 'add', 'fd89::1/64', 'dev', 'br0', 'nodad');
    ip('-n', sb.host, 'link', 'set', 'br0', 'up');
    const client = sb.container('cli');
    ip('-n', sb.host, 'link', 'add', 'vcli', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', client);
    ip('-n', sb.host, 'link', 'set', 'vcli', 'master', 'br0', 'up');
    ip('-n', client, 'addr', 'add', '10.89.255.254/16', 'dev', 'eth0');
    ip('-n', client, 'link', 'set', 'eth0', 'up');
    const ctx: Ctx = {
      sb, client, hostIno: statSync(Sandbox.path(sb.host)).ino, clientIno: statSync(Sandbox.path(client)).ino,
      bridgeIndex: ipJson(sb.host, 'link', 'show', 'br0')[0].ifindex,
    };
    startUpstream(sb);

    const rows: { server: string; c: Case; run: Run }[] = [];
    for (const c of CASES.filter((x) => !ONLY || ONLY.includes(x.name))) {
      const qfile = join(sb.tmp, `q-${c.name}.txt`);
      queries(c, qfile);
      const best = new Map<string, Run>();
      for (let round = 0; round < ROUNDS; round++) {
        const chosen = servers.filter((x) => !SERVERS || SERVERS.includes(x.name));
        const order = round % 2 ? [...chosen].reverse() : chosen;
        for (const s of order) {
          const run = measure(ctx, s, c, join(sb.tmp, `${s.name}-${c.name}-${round}`), qfile);
          process.stderr.write(`  ${s.name} ${c.name} round ${round + 1}: ${run.qps.toFixed(0)} qps, p50 ${run.p50.toFixed(2)} ms, p99 ${run.p99.toFixed(2)} ms, ${run.cpuUs.toFixed(1)} µs CPU/query\n`);
          const prev = best.get(s.name);
          if (!prev || run.qps > prev.qps) best.set(s.name, run);
        }
      }
      for (const s of servers) if (best.has(s.name)) rows.push({ server: s.name, c, run: best.get(s.name)! });
    }

    const fmt = (r: Run) => `${r.qps.toFixed(0).padStart(7)} | ${r.p50.toFixed(2).padStart(6)} | ${r.p99.toFixed(2).padStart(6)} | ${r.cpuUs.toFixed(1).padStart(6)} | ${(r.rssKb / 1024).toFixed(1).padStart(6)} | ${r.lost} | ${r.codes}`;
    console.log(`\nDNS responders, dnsperf -c 4 -q 100, ${SECONDS} s per run, best of ${ROUNDS} (load ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}; ${ROOT})`);
    console.log('server       | case           |     QPS | p50 ms | p99 ms | CPU µs | RSS MB | lost | response codes');
    for (const r of rows) console.log(`${r.server.padEnd(12)} | ${r.c.name.padEnd(14)} | ${fmt(r.run)}`);
    for (const c of new Set(rows.map((r) => r.c))) {
      const q = (name: string) => rows.find((r) => r.server === name && r.c === c)?.run;
      const ours = q('cnikit');
      const dm = q('dnsmasq');
      const av = q('aardvark-dns');
      if (!ours || !dm || !av) continue;
      console.log(`${c.name}: cnikit/dnsmasq ${(ours.qps / dm.qps).toFixed(2)}x QPS, p99 ${ours.p99.toFixed(2)} vs ${dm.p99.toFixed(2)} ms; cnikit/aardvark-dns ${(ours.qps / av.qps).toFixed(2)}x QPS`);
    }
  } finally {
    sb.cleanup();
  }
}

main();

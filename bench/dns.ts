/**
 * DNS responder benchmark: cnikit's responder next to aardvark-dns (Podman's, 1.4) and dnsmasq
 * (as the dnsname plugin runs it: addn-hosts + expand-hosts + local=/domain/), in one run, with
 * the same names in each one's own format. Runnable alone: `node bench/dns.ts [--seconds N]`.
 *
 * Everything runs in throwaway namespaces (Sandbox): the servers listen on a bridge gateway
 * (10.89.0.1:53) in the sandbox host netns and dnsperf runs in a client netns on that bridge.
 * The query mix is 30% short names (`c17`), 30% qualified (`c17.dns.podman`), 20% AAAA
 * (qualified) and 20% misses in the domain (`nosuch17.dns.podman`). Reported: queries per
 * second, p50/p99 latency (from dnsperf -v, per query), the response codes, and each server's
 * resident memory. Servers take turns, twice each per size, so load drift hits them alike; the
 * better of the two rounds is shown.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BIN, NODE, Sandbox, ip } from '../netns-tests/lib/sandbox.ts';
import { RESPONDER_NODE_FLAGS } from '../responder/ensure.ts';
import { formatRecords } from '../responder/records.ts';

const AARDVARK = '/usr/lib/podman/aardvark-dns';
const DOMAIN = 'dns.podman';
const GW = '10.89.0.1';
const secArg = process.argv.indexOf('--seconds');
const SECONDS = Math.min(30, Math.max(1, secArg > 0 ? Number(process.argv[secArg + 1]) : 4));
const SIZES = [100, 1000];
const FLAT_SIZES = [10, 10_000];
const ROUNDS = 2;

const v4 = (i: number) => `10.89.${((i + 10) >> 8) & 255}.${(i + 10) & 255}`;
const v6 = (i: number) => `fd89::${(i + 10).toString(16)}`;
const cid = (i: number) => (`c${i}`.padEnd(12, '0') + '0'.repeat(52)).slice(0, 64);

interface Server {
  name: string;
  /** Writes its config for n names under dir; returns argv to run in the host netns. */
  setup(dir: string, n: number): string[];
  pidOf?(dir: string, spawned: number): number;
}

const servers: Server[] = [
  {
    name: 'cnikit',
    setup(dir, n) {
      const containers = Array.from({ length: n }, (_, i) => ({
        containerId: `c${i}`, ifName: 'eth0', addresses: [`${v4(i)}/16`, `${v6(i)}/64`], gateways: [GW], names: [`c${i}`],
      }));
      writeFileSync(join(dir, 'bench.records'), formatRecords({ network: 'bench', domain: DOMAIN, port: 53, upstreams: [], containers }));
      return [NODE, ...RESPONDER_NODE_FLAGS, join(BIN, 'dnsname'), '--responder', '--records', dir, '--run-dir', dir];
    },
  },
  {
    name: 'aardvark-dns',
    setup(dir, n) {
      // aardvark-dns reads every file of its config directory as a network: give it its own.
      const conf = join(dir, 'conf');
      mkdirSync(conf);
      const lines = [GW];
      for (let i = 0; i < n; i++) lines.push(`${cid(i)} ${v4(i)} ${v6(i)} c${i}`);
      writeFileSync(join(conf, 'bench'), lines.join('\n') + '\n');
      return [AARDVARK, '--config', conf, '-p', '53', 'run'];
    },
    pidOf(dir, spawned) {
      try { return Number(readFileSync(join(dir, 'conf', 'aardvark.pid'), 'utf8').trim()) || spawned; } catch { return spawned; }
    },
  },
  {
    name: 'dnsmasq',
    setup(dir, n) {
      const lines: string[] = [];
      for (let i = 0; i < n; i++) lines.push(`${v4(i)}\tc${i}`, `${v6(i)}\tc${i}`);
      writeFileSync(join(dir, 'addnhosts'), lines.join('\n') + '\n');
      return ['dnsmasq', '--keep-in-foreground', '--conf-file=/dev/null', '--no-resolv', '--no-hosts', '--user=root',
        `--pid-file=${join(dir, 'pid')}`, `--listen-address=${GW}`, '--bind-interfaces', '--port=53', '--strict-order',
        `--local=/${DOMAIN}/`, `--domain=${DOMAIN}`, '--expand-hosts', `--addn-hosts=${join(dir, 'addnhosts')}`, '--except-interface=lo'];
    },
  },
];

function queries(n: number, file: string): void {
  let seed = 42;
  const rnd = () => { seed = (seed * 1103515245 + 12345) >>> 0; return seed / 2 ** 32; };
  const lines: string[] = [];
  for (let k = 0; k < 20_000; k++) {
    const i = Math.floor(rnd() * n);
    const r = rnd();
    if (r < 0.3) lines.push(`c${i} A`);
    else if (r < 0.6) lines.push(`c${i}.${DOMAIN} A`);
    else if (r < 0.8) lines.push(`c${i}.${DOMAIN} AAAA`);
    else lines.push(`nosuch${i}.${DOMAIN} A`);
  }
  writeFileSync(file, lines.join('\n') + '\n');
}

const sleep = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch { return false; }
}

function stop(pid: number): void {
  try { process.kill(pid, 'SIGTERM'); } catch { return; }
  for (let i = 0; i < 100 && alive(pid); i++) sleep(20);
  if (alive(pid)) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  for (let i = 0; i < 50 && alive(pid); i++) sleep(20);
}

function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

interface Run { qps: number; p50: number; p99: number; lost: string; codes: string; rssKb: number }

function dnsperf(sb: Sandbox, client: string, file: string, seconds: number, out: string): { stats: string; latencies: number[] } {
  const r = sb.exec(client, 'sh', ['-c', `dnsperf -s ${GW} -p 53 -d ${file} -l ${seconds} -c 4 -q 100 -T 1 -t 2 -v > ${out} 2>&1`], { timeout: (seconds + 30) * 1000 });
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

function measure(sb: Sandbox, client: string, s: Server, n: number, dir: string, qfile: string): Run {
  mkdirSync(dir, { recursive: true });
  const argv = s.setup(dir, n);
  const child = spawn('ip', ['netns', 'exec', sb.host, ...argv], { stdio: ['ignore', 'ignore', 'ignore'], detached: false });
  child.unref();
  let pid = child.pid!;
  try {
    // Ready when one query is answered.
    const probe = join(dir, 'probe.txt');
    writeFileSync(probe, `c0.${DOMAIN} A\n`);
    let ready = false;
    for (let i = 0; i < 100 && !ready; i++) {
      const r = sb.exec(client, 'dnsperf', ['-s', GW, '-d', probe, '-n', '1', '-t', '1'], { timeout: 10_000 });
      ready = /Queries completed:\s+1 /.test(r.stdout);
      if (!ready) sleep(50);
    }
    if (!ready) throw new Error(`${s.name} did not answer`);
    pid = s.pidOf ? s.pidOf(dir, pid) : pid;
    dnsperf(sb, client, qfile, 1, join(dir, 'warm.txt'));
    const { stats, latencies } = dnsperf(sb, client, qfile, SECONDS, join(dir, 'perf.txt'));
    latencies.sort((a, b) => a - b);
    const at = (q: number) => (latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN) * 1000;
    return {
      qps: Number(/Queries per second:\s+([\d.]+)/.exec(stats)?.[1] ?? NaN),
      p50: at(0.5), p99: at(0.99),
      lost: /Queries lost:\s+(.*)/.exec(stats)?.[1]?.trim() ?? '?',
      codes: /Response codes:\s+(.*)/.exec(stats)?.[1]?.trim() ?? '?',
      rssKb: rssKb(pid),
    };
  } finally {
    stop(pid);
    if (pid !== child.pid) stop(child.pid!);
  }
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
    ip('-n', sb.host, 'addr', 'add', 'fd89::1/64', 'dev', 'br0', 'nodad');
    ip('-n', sb.host, 'link', 'set', 'br0', 'up');
    const client = sb.container('cli');
    ip('-n', sb.host, 'link', 'add', 'vcli', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', client);
    ip('-n', sb.host, 'link', 'set', 'vcli', 'master', 'br0', 'up');
    ip('-n', client, 'addr', 'add', '10.89.255.254/16', 'dev', 'eth0');
    ip('-n', client, 'link', 'set', 'eth0', 'up');

    const rows: { server: string; names: number; run: Run }[] = [];
    for (const n of SIZES) {
      const qfile = join(sb.tmp, `q${n}.txt`);
      queries(n, qfile);
      const best = new Map<string, Run>();
      for (let round = 0; round < ROUNDS; round++) {
        const order = round % 2 ? [...servers].reverse() : servers;
        for (const s of order) {
          const run = measure(sb, client, s, n, join(sb.tmp, `${s.name}-${n}-${round}`), qfile);
          process.stderr.write(`  ${s.name} ${n} names round ${round + 1}: ${run.qps.toFixed(0)} qps, p50 ${run.p50.toFixed(2)} ms, p99 ${run.p99.toFixed(2)} ms\n`);
          const prev = best.get(s.name);
          if (!prev || run.qps > prev.qps) best.set(s.name, run);
        }
      }
      for (const s of servers) rows.push({ server: s.name, names: n, run: best.get(s.name)! });
    }
    // Flatness and memory: ours at 10 and 10,000 names.
    const flat: { names: number; run: Run }[] = [];
    for (const n of FLAT_SIZES) {
      const qfile = join(sb.tmp, `q${n}.txt`);
      queries(n, qfile);
      flat.push({ names: n, run: measure(sb, client, servers[0]!, n, join(sb.tmp, `flat-${n}`), qfile) });
    }

    const fmt = (r: Run) => `${r.qps.toFixed(0).padStart(7)} | ${r.p50.toFixed(2).padStart(6)} | ${r.p99.toFixed(2).padStart(6)} | ${(r.rssKb / 1024).toFixed(1).padStart(6)} | ${r.lost} | ${r.codes}`;
    console.log(`\nDNS responders, dnsperf -c 4 -q 100, ${SECONDS} s per run, best of ${ROUNDS} (load ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')})`);
    console.log('server       | names |     QPS | p50 ms | p99 ms | RSS MB | lost | response codes');
    for (const r of rows) console.log(`${r.server.padEnd(12)} | ${String(r.names).padStart(5)} | ${fmt(r.run)}`);
    for (const f of flat) console.log(`${'cnikit'.padEnd(12)} | ${String(f.names).padStart(5)} | ${fmt(f.run)}`);
    for (const n of SIZES) {
      const q = (name: string) => rows.find((r) => r.server === name && r.names === n)!.run;
      const ours = q('cnikit');
      console.log(`${n} names: cnikit/aardvark-dns ${(ours.qps / q('aardvark-dns').qps).toFixed(2)}x QPS, cnikit/dnsmasq ${(ours.qps / q('dnsmasq').qps).toFixed(2)}x QPS; p99 cnikit ${ours.p99.toFixed(2)} ms vs aardvark-dns ${q('aardvark-dns').p99.toFixed(2)} ms`);
    }
  } finally {
    sb.cleanup();
  }
}

main();

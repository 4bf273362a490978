/**
 * `cnikit demo`: a self-contained tour of the suite that never touches the real host network.
 *
 * Two halves. The outer half runs where the user started it and only makes namespaces: a
 * sandbox "host" and an "outside" peer joined by a veth (198.51.100.1 <-> .2), all pinned in a
 * temp dir. It then re-runs cnikit inside the sandbox host through `__exec-in-netns` (the
 * native addon joins the namespace and execs) as the inner half, waits for it, and finally
 * removes every namespace, the processes left in them (the DNS responder, say) and the temp dir,
 * whatever way the inner half ended.
 *
 * The inner half is an ordinary CNI runtime inside the sandbox host: it writes a conflist
 * (bridge + host-local + portmap + dnsname, state in the temp dir), ADDs two containers ("web",
 * with port 8080 published, and "client"), starts an HTTP server in web, has client reach it by
 * name through the network's DNS, has the outside peer reach it through the published port,
 * then DELs both and checks that no lease or cache entry is left. portmap and dnsname are used
 * when they are built; the tour says so and skips their steps otherwise. Ctrl-C at any point
 * stops the tour and runs the same teardown; the exit code is 130 then, 0 when every check
 * passed, 1 when one failed.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CniCode, CniError } from '../pkg/cni/errors.ts';
import type { Result } from '../pkg/cni/result.ts';
import { parseCidr } from '../pkg/ip/cidr.ts';
import { Netns } from '../pkg/netlink/netns.ts';
import { RouteHandle } from '../pkg/netlink/route.ts';
import { CniRuntime, type RuntimeConf, errorText } from '../runtime/chain.ts';
import { loadConfFile } from '../runtime/conf.ts';
import { ExitCode } from './exit-codes.ts';
import { createNetns, deleteNetns, stopNetnsProcesses } from './netns.ts';
import { selfDir, selfExe } from './self.ts';

interface DemoState {
  tmp: string;
  hostNetns: string;
  outNetns: string;
  uplinkV4: string;
  outsideV4: string;
}

const NETWORK = 'demo';
const BRIDGE = 'cnikit-demo0';
const DOMAIN = 'demo.internal';
const SUBNET4 = '10.99.0.0/24';
const SUBNET6 = 'fd00:99::/64';
const HOST_PORT = 8080;
const UPLINK = { host: '198.51.100.1/24', outside: '198.51.100.2/24', host6: '2001:db8:ff::1/64', outside6: '2001:db8:ff::2/64' };
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

const bold = (s: string) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
const dim = (s: string) => (process.stdout.isTTY ? `\x1b[2m${s}\x1b[0m` : s);
const green = (s: string) => (process.stdout.isTTY ? `\x1b[32m${s}\x1b[0m` : s);
const red = (s: string) => (process.stdout.isTTY ? `\x1b[31m${s}\x1b[0m` : s);

function out(s: string): void {
  process.stdout.write(s + '\n');
}

class Interrupted extends Error {
  constructor() {
    super('interrupted');
  }
}

// ---------------------------------------------------------------------------------------------
// Outer half: namespaces only.

/** Runs the whole demo; returns the exit code. */
export async function demoOuter(o: { tmpDir: string }): Promise<number> {
  if (process.getuid?.() !== 0) {
    throw new CniError(CniCode.InvalidEnv, 'cnikit demo needs root: it creates network namespaces (EPERM)', `run: sudo ${process.argv[1]} demo`);
  }
  const started = Date.now();
  const tmp = mkdtempSync(join(o.tmpDir || tmpdir(), 'cnikit-demo-'));
  const nsDir = join(tmp, 'netns');
  const state: DemoState = {
    tmp, hostNetns: join(nsDir, 'host'), outNetns: join(nsDir, 'outside'),
    uplinkV4: UPLINK.host.split('/')[0]!, outsideV4: UPLINK.outside.split('/')[0]!,
  };
  out(bold('cnikit demo') + ' — two containers on a CNI network, inside throwaway namespaces.');
  out(dim(`Your host's interfaces, routes and firewall are not touched. State: ${tmp}`));

  let interrupted = false;
  let inner: ReturnType<typeof spawn> | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    interrupted = true;
    // A terminal's Ctrl-C reaches the inner half too (same process group); anything else is forwarded.
    if (inner?.pid && inner.exitCode === null && !(sig === 'SIGINT' && process.stdin.isTTY)) {
      try { process.kill(inner.pid, sig); } catch { /* gone */ }
    }
  };
  for (const s of SIGNALS) process.on(s, onSignal);

  let code: number = ExitCode.Failure;
  try {
    mkdirSync(nsDir, { recursive: true });
    createNetns(state.hostNetns);
    createNetns(state.outNetns);
    makeUplink(state);
    out(`${green('✓')} sandbox host netns with an outside peer: uplink ${UPLINK.host} <-> ${UPLINK.outside}`);
    writeFileSync(join(tmp, 'state.json'), JSON.stringify(state));
    if (!interrupted) {
      code = await new Promise<number>((resolve) => {
        inner = spawn(process.execPath, [selfExe(), '__exec-in-netns', state.hostNetns, '--', process.execPath, selfExe(), 'demo', '--inner', join(tmp, 'state.json')], { stdio: 'inherit' });
        inner.on('error', (err) => { process.stderr.write(`cnikit: cannot start the demo: ${errorText(err)}\n`); resolve(ExitCode.Failure); });
        inner.on('exit', (c, sig) => resolve(c ?? (sig ? 128 + 2 : 1)));
        // Bounded: the tour takes seconds; after 2 minutes something is stuck.
        setTimeout(() => { if (inner?.pid && inner.exitCode === null) { process.kill(inner.pid, 'SIGTERM'); } }, 120_000).unref();
      });
    }
  } finally {
    for (const ns of [state.hostNetns, state.outNetns, ...(existsSync(nsDir) ? readdirSync(nsDir).map((n) => join(nsDir, n)) : [])]) {
      if (!existsSync(ns)) continue;
      await stopNetnsProcesses(ns, 1000);
      try { deleteNetns(ns); } catch (err) { process.stderr.write(`cnikit: warning: cannot delete ${ns}: ${errorText(err)}\n`); }
    }
    rmSync(tmp, { recursive: true, force: true });
    for (const s of SIGNALS) process.off(s, onSignal);
  }
  if (interrupted && code !== 0) {
    out(`${red('✗')} interrupted; everything the demo made is removed.`);
    return ExitCode.Interrupted;
  }
  out(`${green('✓')} sandbox removed (namespaces, processes, ${tmp})`);
  out(code === 0 ? bold(`Tour complete in ${((Date.now() - started) / 1000).toFixed(1)} s.`) : red('The tour failed; see above.'));
  return code;
}

function makeUplink(s: DemoState): void {
  const host = RouteHandle.open(s.hostNetns);
  const outside = RouteHandle.open(s.outNetns);
  const outNs = Netns.open(s.outNetns, process.env);
  try {
    host.linkAddVeth({ name: 'uplink0', peerName: 'wan0', peerNetnsFd: outNs.fd, up: true, peerUp: true });
    const up = host.linkGet('uplink0')!;
    const wan = outside.linkGet('wan0')!;
    host.addrAdd(up.index, parseCidr(UPLINK.host));
    host.addrAdd(up.index, parseCidr(UPLINK.host6), { nodad: true });
    outside.addrAdd(wan.index, parseCidr(UPLINK.outside));
    outside.addrAdd(wan.index, parseCidr(UPLINK.outside6), { nodad: true });
  } finally {
    outNs.close();
    host.close();
    outside.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Inner half: a CNI runtime inside the sandbox host.

/** The conflist the tour uses; plugins that are not built are left out. */
export function demoConflist(tmp: string, have: { portmap: boolean; dnsname: boolean }): Record<string, unknown> {
  const plugins: Record<string, unknown>[] = [{
    type: 'bridge', bridge: BRIDGE, isGateway: true, hairpinMode: true,
    ipam: {
      type: 'host-local', dataDir: join(tmp, 'ipam'),
      ranges: [[{ subnet: SUBNET4 }], [{ subnet: SUBNET6 }]],
      routes: [{ dst: '0.0.0.0/0' }, { dst: '::/0' }],
    },
  }];
  if (have.portmap) plugins.push({ type: 'portmap', capabilities: { portMappings: true }, snat: true });
  if (have.dnsname) {
    plugins.push({
      type: 'dnsname', domainName: DOMAIN, capabilities: { aliases: true },
      // Keep the responder's state in the temp dir and never forward outside the sandbox.
      recordsDir: join(tmp, 'dns', 'records'), runDir: join(tmp, 'dns', 'run'), upstreams: [],
    });
  }
  return { cniVersion: '1.0.0', cniVersions: ['1.0.0', '1.1.0'], name: NETWORK, plugins };
}

interface Proc { code: number; stdout: string; stderr: string }

/** The inner half's context: what it made, so teardown can undo it. */
class Tour {
  readonly s: DemoState;
  readonly rt: CniRuntime;
  readonly containers: { name: string; netns: string; conf: RuntimeConf; attached: boolean }[] = [];
  readonly procs = new Set<number>();
  private readonly abort = new AbortController();
  failures = 0;
  step = 0;
  readonly total: number;

  constructor(s: DemoState, rt: CniRuntime, total: number) {
    this.s = s;
    this.rt = rt;
    this.total = total;
  }

  get aborted(): boolean {
    return this.abort.signal.aborted;
  }

  interrupt(): void {
    this.abort.abort();
  }

  checkpoint(): void {
    if (this.abort.signal.aborted) throw new Interrupted();
  }

  say(ok: boolean, text: string, detail?: string): void {
    this.step++;
    out(`${ok ? green('✓') : red('✗')} [${this.step}/${this.total}] ${text}`);
    if (detail) out(dim(`      ${detail.replace(/\n/g, '\n      ')}`));
    if (!ok) this.failures++;
  }

  /** Runs argv inside a namespace (through __exec-in-netns), bounded by timeoutMs. */
  exec(netns: string, argv: string[], timeoutMs = 10_000): Promise<Proc> {
    this.checkpoint();
    return new Promise((resolve) => {
      const child = spawn(process.execPath, [selfExe(), '__exec-in-netns', netns, '--', ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
      child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
      const kill = () => { if (child.pid && child.exitCode === null) process.kill(child.pid, 'SIGKILL'); };
      const timer = setTimeout(kill, timeoutMs);
      this.abort.signal.addEventListener('abort', kill, { once: true });
      child.on('close', (code) => {
        clearTimeout(timer);
        this.abort.signal.removeEventListener('abort', kill);
        resolve({ code: code ?? -1, stdout, stderr });
      });
    });
  }

  /** Starts a long-running node script in a namespace and resolves once it prints "ready". */
  start(netns: string, script: string, timeoutMs = 5000): Promise<number> {
    this.checkpoint();
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [selfExe(), '__exec-in-netns', netns, '--', process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
      if (child.pid) this.procs.add(child.pid);
      let buf = '';
      const timer = setTimeout(() => reject(new Error(`server did not start within ${timeoutMs} ms`)), timeoutMs);
      child.stdout.on('data', (d: Buffer) => {
        buf += d.toString();
        if (buf.includes('ready')) { clearTimeout(timer); resolve(child.pid!); }
      });
      child.on('exit', () => { clearTimeout(timer); if (child.pid) this.procs.delete(child.pid); reject(new Error(`server exited: ${buf.trim()}`)); });
      this.abort.signal.addEventListener('abort', () => { clearTimeout(timer); reject(new Interrupted()); }, { once: true });
    });
  }

  async attach(name: string, extra: { ports?: { hostPort: number; containerPort: number; protocol: string }[]; aliases?: string[] }): Promise<Result> {
    this.checkpoint();
    const netns = join(this.s.tmp, 'netns', name);
    createNetns(netns);
    const conf: RuntimeConf = {
      containerId: `demo-${name}`, netns, ifName: 'eth0',
      args: [['IgnoreUnknown', '1'], ['K8S_POD_NAME', name]],
      capabilityArgs: {
        ...(extra.ports ? { portMappings: extra.ports } : {}),
        ...(extra.aliases ? { aliases: { [NETWORK]: extra.aliases } } : {}),
      },
    };
    const c = { name, netns, conf, attached: false };
    this.containers.push(c);
    const list = loadConfFile(join(this.s.tmp, 'net.d', `${NETWORK}.conflist`));
    const r = await this.rt.add(list, conf);
    c.attached = true;
    return r;
  }

  /** DELs every container, stops their processes and deletes their namespaces; never throws. */
  async teardown(): Promise<string[]> {
    const problems: string[] = [];
    for (const pid of this.procs) { try { process.kill(pid, 'SIGTERM'); } catch { /* gone */ } }
    const list = loadConfFile(join(this.s.tmp, 'net.d', `${NETWORK}.conflist`));
    for (const c of [...this.containers].reverse()) {
      await stopNetnsProcesses(c.netns, 1000);
      if (c.attached) {
        try {
          await this.rt.del(list, c.conf);
          c.attached = false;
        } catch (err) {
          problems.push(`DEL ${c.name}: ${errorText(err)}`);
        }
      }
      try { deleteNetns(c.netns); } catch (err) { problems.push(`delete netns ${c.name}: ${errorText(err)}`); }
    }
    return problems;
  }
}

const SERVER = `
const http = require('node:http');
const os = require('node:os');
const addrs = Object.values(os.networkInterfaces()).flat().filter((a) => a.family === 'IPv4' && !a.internal).map((a) => a.address);
http.createServer((req, res) => {
  res.end('hello from web (' + addrs.join(',') + '), you are ' + req.socket.remoteAddress.replace(/^::ffff:/, '') + '\\n');
}).listen(80, '::', () => console.log('ready'));
`;

function clientScript(target: { name?: string; dns?: string; host?: string; port: number }): string {
  return `
const http = require('node:http');
const { Resolver } = require('node:dns').promises;
(async () => {
  let host = ${JSON.stringify(target.host ?? '')};
  if (${JSON.stringify(!!target.name)}) {
    const r = new Resolver({ timeout: 2000, tries: 2 });
    r.setServers([${JSON.stringify(target.dns ?? '')}]);
    host = (await r.resolve4(${JSON.stringify(target.name ?? '')}))[0];
    console.log('resolved ' + ${JSON.stringify(target.name ?? '')} + ' -> ' + host);
  }
  http.get({ host, port: ${target.port}, timeout: 3000 }, (res) => {
    let body = ''; res.on('data', (d) => body += d); res.on('end', () => { console.log(body.trim()); process.exit(0); });
  }).on('error', (e) => { console.error(String(e)); process.exit(1); }).on('timeout', () => { console.error('timeout'); process.exit(2); });
})().catch((e) => { console.error(String(e)); process.exit(1); });
`;
}

/** The veths left in the sandbox host (this process's namespace) besides the uplink. */
function leftoverVeths(): string[] {
  const rt = RouteHandle.open();
  try {
    return rt.linkList().filter((l) => l.kind === 'veth' && l.name !== 'uplink0').map((l) => l.name);
  } finally {
    rt.close();
  }
}

function lookupScript(dns: string, names: string[]): string {
  return `
const r = new (require('node:dns').promises.Resolver)({ timeout: 2000, tries: 2 });
r.setServers([${JSON.stringify(dns)}]);
(async () => {
  for (const n of ${JSON.stringify(names)}) console.log('resolved ' + n + ' -> ' + (await r.resolve4(n))[0]);
})().catch((e) => { console.error(String(e)); process.exit(1); });
`;
}

function ipsOf(r: Result): string[] {
  return (r.ips ?? []).map((ip) => ip.address);
}

function v4(r: Result): string {
  return ipsOf(r).find((a) => !a.includes(':'))?.split('/')[0] ?? '';
}

/** The inner half; runs inside the sandbox host namespace. Returns the exit code. */
export async function demoInner(statePath: string): Promise<number> {
  const s = JSON.parse(readFileSync(statePath, 'utf8')) as DemoState;
  const path = process.env.CNI_PATH ? process.env.CNI_PATH.split(':').filter(Boolean) : [selfDir()];
  const has = (t: string) => path.some((d) => existsSync(join(d, t)));
  for (const t of ['bridge', 'host-local']) {
    if (!has(t)) throw new CniError(CniCode.IoFailure, `the ${t} plugin is not built (looked in ${path.join(', ')})`, 'run `npm run build` (or `npm ci`) first');
  }
  const have = { portmap: has('portmap'), dnsname: has('dnsname') };
  mkdirSync(join(s.tmp, 'net.d'), { recursive: true });
  writeFileSync(join(s.tmp, 'net.d', `${NETWORK}.conflist`), JSON.stringify(demoConflist(s.tmp, have), null, 2));
  const rt = new CniRuntime({ path, cacheDir: join(s.tmp, 'cache') });
  const total = 6;
  const tour = new Tour(s, rt, total);
  const onSignal = () => tour.interrupt();
  for (const sig of SIGNALS) process.on(sig, onSignal);

  let interrupted = false;
  try {
    const chain = ['bridge', 'host-local', ...(have.portmap ? ['portmap'] : []), ...(have.dnsname ? ['dnsname'] : [])];
    tour.say(true, `network "${NETWORK}": ${chain.join(' + ')}, bridge ${BRIDGE}, ${SUBNET4} and ${SUBNET6}`,
      [!have.portmap ? 'portmap is not built: the published-port step is skipped' : '', !have.dnsname ? 'dnsname is not built: names are not resolved' : ''].filter(Boolean).join('\n') || undefined);

    const web = await tour.attach('web', { ports: have.portmap ? [{ hostPort: HOST_PORT, containerPort: 80, protocol: 'tcp' }] : undefined, aliases: ['www'] });
    await tour.start(tour.containers[0]!.netns, SERVER);
    tour.say(true, `container "web": eth0 ${ipsOf(web).join(' ')}${have.portmap ? `, port ${HOST_PORT}->80/tcp published` : ''}, HTTP server on :80`);

    const client = await tour.attach('client', {});
    tour.say(true, `container "client": eth0 ${ipsOf(client).join(' ')}`);

    const gw = client.dns?.nameservers?.[0] ?? client.ips?.find((i) => !i.address.includes(':'))?.gateway ?? '';
    const byName = have.dnsname
      ? await tour.exec(tour.containers[1]!.netns, [process.execPath, '-e', clientScript({ name: `web.${DOMAIN}`, dns: gw, port: 80 })])
      : await tour.exec(tour.containers[1]!.netns, [process.execPath, '-e', clientScript({ host: v4(web), port: 80 })]);
    // And the other way round: web finds client (and its own alias) by name.
    const back = have.dnsname
      ? await tour.exec(tour.containers[0]!.netns, [process.execPath, '-e', lookupScript(gw, [`client.${DOMAIN}`, `www.${DOMAIN}`])])
      : { code: 0, stdout: '', stderr: '' };
    tour.say(byName.code === 0 && byName.stdout.includes('hello from web') && back.code === 0 && back.stdout.includes(`client.${DOMAIN} -> ${v4(client)}`),
      have.dnsname ? `client -> web by name, and web finds client by name (DNS at ${gw})` : 'client -> web by address (no dnsname)',
      (byName.stdout + byName.stderr + back.stdout + back.stderr).trim());

    if (have.portmap) {
      const outside = await tour.exec(s.outNetns, [process.execPath, '-e', clientScript({ host: s.uplinkV4, port: HOST_PORT })]);
      tour.say(outside.code === 0 && outside.stdout.includes('hello from web'),
        `outside peer ${s.outsideV4} -> ${s.uplinkV4}:${HOST_PORT} (published port) -> web:80`, (outside.stdout + outside.stderr).trim());
    } else {
      tour.say(true, 'published port: skipped (portmap is not built)');
    }
  } catch (err) {
    if (err instanceof Interrupted) interrupted = true;
    else if (tour.aborted) {
      // Ctrl-C reached the plugin that was running too; report the interruption, not its failure.
      interrupted = true;
      out(dim(`      interrupted during: ${errorText(err)}`));
    } else {
      tour.failures++;
      out(`${red('✗')} ${errorText(err)}`);
    }
  } finally {
    const problems = await tour.teardown();
    const leases = existsSync(join(s.tmp, 'ipam', NETWORK)) ? readdirSync(join(s.tmp, 'ipam', NETWORK)).filter((f) => /^[0-9a-f.:]+$/i.test(f)) : [];
    const cached = rt.cache.list().length;
    const veths = leftoverVeths();
    const clean = problems.length === 0 && leases.length === 0 && cached === 0 && veths.length === 0;
    tour.step = total - 1;
    tour.say(clean, 'teardown: DEL web and client; no veth, lease or cache entry is left, containers removed',
      clean ? undefined : [...problems, leases.length ? `leases left: ${leases.join(' ')}` : '', cached ? `${cached} cache entries left` : '',
        veths.length ? `veths left: ${veths.join(' ')}` : ''].filter(Boolean).join('\n'));
    for (const sig of SIGNALS) process.off(sig, onSignal);
  }
  if (interrupted) return ExitCode.Interrupted;
  return tour.failures ? ExitCode.Failure : ExitCode.Ok;
}

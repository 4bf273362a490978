/**
 * Helpers for the DNS netns tests: a network built with `ip` inside a Sandbox (bridge with the
 * gateway address in the sandbox host netns, one veth per container, more interfaces for a
 * container on several networks), the prevResult a bridge plugin would hand to dnsname, the
 * dnsname config, a real DNS client (dns2) run inside a container netns, a fake upstream
 * resolver (in the sandbox's "outside" netns, or on 127.0.0.53 in the sandbox host, as
 * systemd-resolved would be) that logs what it was asked, and the checks that a deleted
 * namespace is really freed (no process, fd, mount or socket of ours holds it).
 */
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, readlinkSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { NODE, ROOT, Sandbox, alive, enginePids, ip, isEngine } from './sandbox.ts';

export interface Net {
  name: string;
  bridge: string;
  /** First three octets, e.g. "10.89.0". */
  v4: string;
  /** IPv6 prefix without the last group, e.g. "fd89::" (optional). */
  v6?: string;
}

export interface Ctr {
  ns: string;
  id: string;
  net: Net;
  host: number;
  prevResult: Record<string, unknown>;
  /** The container interface of this attachment (eth0 unless made by addIface). */
  ifName?: string;
}

/** Makes the network's bridge in the sandbox host, with the gateway .1 (and ::1) on it. */
export function makeNet(sb: Sandbox, net: Net): Net {
  ip('-n', sb.host, 'link', 'add', net.bridge, 'type', 'bridge');
  ip('-n', sb.host, 'addr', 'add', `${net.v4}.1/24`, 'dev', net.bridge);
  if (net.v6) ip('-n', sb.host, 'addr', 'add', `${net.v6}1/64`, 'dev', net.bridge, 'nodad');
  ip('-n', sb.host, 'link', 'set', net.bridge, 'up');
  return net;
}

/** Makes a container netns on `net` with address .host (and ::host) and the prevResult for it. */
export function makeCtr(sb: Sandbox, net: Net, name: string, host: number): Ctr {
  const ns = sb.container(name);
  return attach(sb, { ns, id: `ctr-${name}` }, net, `v${name}`, 'eth0', host, true);
}

/**
 * Puts container `c` on one more network: interface `ifName` on `net` with address .host, no
 * default route (the first network has it). Returns the attachment, with its own prevResult.
 */
export function addIface(sb: Sandbox, c: Ctr, net: Net, ifName: string, host: number): Ctr {
  return attach(sb, c, net, `v${c.ns.slice(-6)}${ifName}`, ifName, host, false);
}

function attach(sb: Sandbox, c: { ns: string; id: string }, net: Net, hostName: string, ifName: string, host: number, defaultRoute: boolean): Ctr {
  const { ns } = c;
  const hostVeth = hostName.slice(0, 15);
  ip('-n', sb.host, 'link', 'add', hostVeth, 'type', 'veth', 'peer', 'name', ifName, 'netns', ns);
  ip('-n', sb.host, 'link', 'set', hostVeth, 'master', net.bridge, 'up');
  ip('-n', ns, 'addr', 'add', `${net.v4}.${host}/24`, 'dev', ifName);
  if (net.v6) ip('-n', ns, 'addr', 'add', `${net.v6}${host.toString(16)}/64`, 'dev', ifName, 'nodad');
  ip('-n', ns, 'link', 'set', ifName, 'up');
  if (defaultRoute) {
    ip('-n', ns, 'route', 'add', 'default', 'via', `${net.v4}.1`);
    if (net.v6) ip('-n', ns, '-6', 'route', 'add', 'default', 'via', `${net.v6}1`);
  }
  const ips: Record<string, unknown>[] = [{ address: `${net.v4}.${host}/24`, gateway: `${net.v4}.1`, interface: 2 }];
  if (net.v6) ips.push({ address: `${net.v6}${host.toString(16)}/64`, gateway: `${net.v6}1`, interface: 2 });
  const prevResult = {
    cniVersion: '1.0.0',
    interfaces: [{ name: net.bridge, mac: '02:00:00:00:00:01' }, { name: hostVeth, mac: '02:00:00:00:00:02' }, { name: ifName, mac: '02:00:00:00:00:03', sandbox: Sandbox.path(ns) }],
    ips,
    routes: [{ dst: '0.0.0.0/0' }],
  };
  return { ns, id: c.id, net, host, prevResult, ifName };
}

/** The dnsname config a conflist would give for `c` (state under sb.tmp). */
export function dnsConf(sb: Sandbox, c: Ctr, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    cniVersion: '1.0.0', name: c.net.name, type: 'dnsname', domainName: 'dns.cnikit',
    recordsDir: join(sb.tmp, 'dns'), upstreams: ['198.51.100.2'],
    prevResult: c.prevResult, ...extra,
  };
}

/** Runs dnsname `command` for container `c` named `name` (K8S_POD_NAME). */
export function dnsname(sb: Sandbox, command: string, c: Ctr, name: string, extra: Record<string, unknown> = {}) {
  return sb.plugin('dnsname', {
    command, containerId: c.id, netns: Sandbox.path(c.ns), ifName: c.ifName, cniArgs: `IgnoreUnknown=1;K8S_POD_NAME=${name}`, conf: dnsConf(sb, c, extra),
  });
}

export interface Question {
  name: string;
  type?: string;
  tcp?: boolean;
  /** Follow TC over TCP (dns2's default); false to see the truncated UDP answer. */
  retryOverTcp?: boolean;
  server: string;
  port?: number;
  timeoutMs?: number;
}

export interface Answer {
  rcode?: number;
  tc?: boolean;
  aa?: boolean;
  answers?: string[];
  authorities?: number[];
  error?: string;
  ms: number;
}

const CLIENT = `
const DNS = require(${JSON.stringify(join(ROOT, 'node_modules/dns2'))});
(async () => {
  const out = [];
  for (const q of JSON.parse(process.argv[1])) {
    const t0 = Date.now();
    try {
      const opts = { dns: q.server, port: q.port ?? 53, timeout: q.timeoutMs ?? 3000, retryOverTCP: q.retryOverTcp ?? true, socketType: q.server.includes(':') ? 'udp6' : 'udp4' };
      const r = await (q.tcp ? DNS.TCPClient(opts) : DNS.UDPClient(opts))(q.name, q.type ?? 'A');
      out.push({ rcode: r.header.rcode, tc: !!r.header.tc, aa: !!r.header.aa, answers: r.answers.map((a) => a.address ?? a.domain ?? a.type), authorities: r.authorities.map((a) => a.type), ms: Date.now() - t0 });
    } catch (e) {
      out.push({ error: String(e && e.message || e), ms: Date.now() - t0 });
    }
  }
  process.stdout.write(JSON.stringify(out));
})();`;

/** Asks the questions in order from inside netns `ns` with dns2's client; one process for all. */
export function ask(sb: Sandbox, ns: string, qs: Question[]): Answer[] {
  const r = sb.exec(ns, NODE, ['-e', CLIENT, JSON.stringify(qs)], { timeout: 30_000 });
  if (r.status !== 0) throw new Error(`dns client failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as Answer[];
}

/** Shorthand: the sorted addresses (or names) answered for one question, or the rcode/error. */
export function resolve(sb: Sandbox, ns: string, q: Question): string[] | string {
  const [a] = ask(sb, ns, [q]);
  if (!a || a.error) return `error: ${a?.error}`;
  if (a.rcode !== 0) return `rcode ${a.rcode}`;
  return [...a.answers!].sort();
}

const UPSTREAM = `
const DNS = require(${JSON.stringify(join(ROOT, 'node_modules/dns2'))});
const { Packet } = DNS;
const [address, ttl] = [process.argv[1], Number(process.argv[2])];
const server = DNS.createServer({ udp: true, tcp: true, handle: (req, send) => {
  const res = Packet.createResponseFromRequest(req);
  const q = req.questions[0];
  if (q) process.stdout.write('q ' + q.name + ' ' + q.type + '\\n');
  if (q && q.name.startsWith('nx')) {
    res.header.rcode = 3;
    res.authorities.push({ name: 'example.org', type: Packet.TYPE.SOA, class: Packet.CLASS.IN, ttl, primary: 'ns.example.org', admin: 'hostmaster.example.org', serial: 1, refresh: 3600, retry: 600, expiration: 86400, minimum: ttl });
  } else if (q && q.type === Packet.TYPE.A) {
    res.answers.push({ name: q.name, type: Packet.TYPE.A, class: Packet.CLASS.IN, ttl, address: '203.0.113.7' });
  }
  send(res);
}});
server.listen({ udp: { port: 53, address, type: 'udp4' }, tcp: { port: 53, host: address } }).then(() => process.stdout.write('ready\\n'));
`;

/** A fake upstream resolver started by a test, and what it was asked. */
export interface FakeUpstream {
  pid: number;
  /** The questions it got, as `name type` (type as a number), in order (after its output has been read). */
  queries(): Promise<string[]>;
}

/**
 * Starts a fake upstream on `address`:53 (UDP and TCP) in netns `ns`: every A question gets
 * 203.0.113.7 with `ttl`, names starting with `nx` get NXDOMAIN with a SOA (TTL and MINIMUM
 * `ttl`). By default the sandbox's outside netns, 198.51.100.2.
 */
export function fakeUpstream(sb: Sandbox, ns: string, address = '198.51.100.2', ttl = 60): Promise<FakeUpstream> {
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['netns', 'exec', ns, NODE, '-e', UPSTREAM, address, String(ttl)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    const timer = setTimeout(() => reject(new Error('fake upstream did not start')), 10_000);
    child.stdout.on('data', (d) => {
      out += d;
      if (out.includes('ready')) { clearTimeout(timer); resolve({ pid: child.pid!, queries: async () => {
        // A test that asked synchronously has not let this process read the pipe yet.
        await new Promise((r) => setTimeout(r, 300));
        return out.split('\n').filter((l) => l.startsWith('q ')).map((l) => l.slice(2));
      } }); }
    });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`fake upstream exited ${code}`)); });
    child.unref();
  });
}

/** The inode of a sandbox namespace (what its /run/netns path names). */
export function netnsInode(ns: string): number {
  return statSync(Sandbox.path(ns)).ino;
}

/**
 * What still holds the netns of inode `ino`, outside the sockets: processes in it, open ns
 * files (`/proc/PID/fd`), bind mounts (mountinfo). [] when nothing visible does.
 *
 * `path`: where the namespace was pinned (`/run/netns/NAME`). A namespace's inode number is
 * reused once it is freed, and tests in other workers pin new namespaces all the time: a bind
 * mount of the same number at another name beside `path` is such a newcomer, not a holder.
 */
export function netnsHolders(ino: number, opts: { path?: string } = {}): string[] {
  const tag = `net:[${ino}]`;
  const out: string[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try { if (readlinkSync(`/proc/${pid}/ns/net`) === tag) out.push(`process ${pid}`); } catch { continue; }
    let fds: string[] = [];
    try { fds = readdirSync(`/proc/${pid}/fd`); } catch { continue; }
    for (const fd of fds) {
      try { if (readlinkSync(`/proc/${pid}/fd/${fd}`) === tag) out.push(`fd ${fd} of ${pid}`); } catch { /* closed meanwhile */ }
    }
  }
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [, , , root, at] = line.split(' ');
    if (root !== tag || !at) continue;
    if (opts.path && at !== opts.path && dirname(at) === dirname(opts.path)) continue;
    out.push(`a bind mount at ${at}`);
  }
  return out;
}

const SOCKETS_IN_NETNS = `
import ctypes, fcntl, os, sys
libc = ctypes.CDLL(None, use_errno=True)
pid, ino = int(sys.argv[1]), int(sys.argv[2])
pidfd = libc.syscall(434, pid, 0)  # pidfd_open
if pidfd < 0: print(-1); sys.exit(0)
n = 0
for fd in os.listdir(f'/proc/{pid}/fd'):
    try:
        if not os.readlink(f'/proc/{pid}/fd/{fd}').startswith('socket:'): continue
    except OSError:
        continue
    dup = libc.syscall(438, pidfd, int(fd), 0)  # pidfd_getfd
    if dup < 0: continue
    try:
        ns = fcntl.ioctl(dup, 0x894C)  # SIOCGSKNS: the socket's netns, as a new fd
        if os.fstat(ns).st_ino == ino: n += 1
        os.close(ns)
    except OSError:
        pass
    os.close(dup)
print(n)
`;

/** The number of sockets of process `pid` that live in the netns of inode `ino` (pidfd_getfd + SIOCGSKNS). */
export function socketsIn(pid: number, ino: number): number {
  const r = spawnSync('/usr/bin/python3', ['-c', SOCKETS_IN_NETNS, String(pid), String(ino)], { encoding: 'utf8', timeout: 10_000 });
  if (r.status !== 0) throw new Error(`counting sockets failed: ${r.stderr}`);
  return Number(r.stdout.trim());
}

/** The responder pid file of the sandbox's run directory (dnsConf's). */
export const responderPidFile = (sb: Sandbox) => join(sb.tmp, 'dns', 'responder.pid');

/** The pid serving the sandbox's DNS as its pid file says: a responder process, or the engine hosting it (NaN: none). */
export function responderPid(sb: Sandbox): number {
  try {
    return Number(readFileSync(responderPidFile(sb), 'utf8').trim());
  } catch {
    return NaN;
  }
}

/**
 * True once `pid` no longer serves the sandbox's DNS: a responder process has exited; an engine
 * (which lives on) no longer names itself in the pid file.
 */
export function stoppedServing(sb: Sandbox, pid: number): boolean {
  return isEngine(pid) ? responderPid(sb) !== pid : !alive(pid);
}

/** True when exactly one process serves the sandbox's DNS: the live one its pid file names, and no other responder process. */
export function oneServer(sb: Sandbox): boolean {
  const pid = responderPid(sb);
  return alive(pid) && pidsIn(sb.host).every((p) => p === pid);
}

/** Pids of processes running in netns `ns`, but the warm engine (the tests count responders). */
export function pidsIn(ns: string): number[] {
  const engines = new Set(enginePids(ns));
  return ip('netns', 'pids', ns).split(/\s+/).filter(Boolean).map(Number).filter((p) => !engines.has(p));
}

/**
 * Helpers for the DNS netns tests: a network built with `ip` inside a Sandbox (bridge with the
 * gateway address in the sandbox host netns, one veth per container), the prevResult a bridge
 * plugin would hand to dnsname, the dnsname config, a real DNS client (dns2) run inside a
 * container netns, and a fake upstream resolver run in the sandbox's "outside" netns.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { NODE, ROOT, Sandbox, enginePids, ip } from './sandbox.ts';

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
  const hostVeth = `v${name}`.slice(0, 15);
  ip('-n', sb.host, 'link', 'add', hostVeth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
  ip('-n', sb.host, 'link', 'set', hostVeth, 'master', net.bridge, 'up');
  ip('-n', ns, 'addr', 'add', `${net.v4}.${host}/24`, 'dev', 'eth0');
  if (net.v6) ip('-n', ns, 'addr', 'add', `${net.v6}${host.toString(16)}/64`, 'dev', 'eth0', 'nodad');
  ip('-n', ns, 'link', 'set', 'eth0', 'up');
  ip('-n', ns, 'route', 'add', 'default', 'via', `${net.v4}.1`);
  if (net.v6) ip('-n', ns, '-6', 'route', 'add', 'default', 'via', `${net.v6}1`);
  const ips: Record<string, unknown>[] = [{ address: `${net.v4}.${host}/24`, gateway: `${net.v4}.1`, interface: 2 }];
  if (net.v6) ips.push({ address: `${net.v6}${host.toString(16)}/64`, gateway: `${net.v6}1`, interface: 2 });
  const prevResult = {
    cniVersion: '1.0.0',
    interfaces: [{ name: net.bridge, mac: '02:00:00:00:00:01' }, { name: hostVeth, mac: '02:00:00:00:00:02' }, { name: 'eth0', mac: '02:00:00:00:00:03', sandbox: Sandbox.path(ns) }],
    ips,
    routes: [{ dst: '0.0.0.0/0' }],
  };
  return { ns, id: `ctr-${name}`, net, host, prevResult };
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
    command, containerId: c.id, netns: Sandbox.path(c.ns), cniArgs: `IgnoreUnknown=1;K8S_POD_NAME=${name}`, conf: dnsConf(sb, c, extra),
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
const server = DNS.createServer({ udp: true, tcp: true, handle: (req, send) => {
  const res = Packet.createResponseFromRequest(req);
  const q = req.questions[0];
  if (q && q.type === Packet.TYPE.A) res.answers.push({ name: q.name, type: Packet.TYPE.A, class: Packet.CLASS.IN, ttl: 60, address: '203.0.113.7' });
  send(res);
}});
server.listen({ udp: { port: 53, address: '198.51.100.2', type: 'udp4' }, tcp: { port: 53, host: '198.51.100.2' } }).then(() => process.stdout.write('ready\\n'));
`;

/** Starts a fake upstream on 198.51.100.2:53 in the outside netns: every A question -> 203.0.113.7. Resolves its pid. */
export function fakeUpstream(sb: Sandbox, outside: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['netns', 'exec', outside, NODE, '-e', UPSTREAM], { stdio: ['ignore', 'pipe', 'inherit'] });
    const timer = setTimeout(() => reject(new Error('fake upstream did not start')), 10_000);
    child.stdout.on('data', (d) => {
      if (String(d).includes('ready')) { clearTimeout(timer); resolve(child.pid!); }
    });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`fake upstream exited ${code}`)); });
    child.unref();
  });
}

/** Pids of processes running in netns `ns`, but the warm engine (the tests count responders). */
export function pidsIn(ns: string): number[] {
  const engines = new Set(enginePids(ns));
  return ip('netns', 'pids', ns).split(/\s+/).filter(Boolean).map(Number).filter((p) => !engines.has(p));
}

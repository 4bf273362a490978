/**
 * Helpers for the portmap and ipMasq netns tests: a bridge+host-local network config, the chain
 * bridge -> portmap run as a runtime runs it (prevResult passed along, runtimeConfig added), real
 * TCP/UDP servers inside container namespaces that answer with their name and the peer address
 * they saw, a UDP client, a reader for our nftables objects in the sandbox host namespace, and
 * the old rulesets the upgrade tests start from.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import type { Ruleset } from '../../pkg/nftables/model.ts';
import { NODE, type PluginRun, Sandbox } from './sandbox.ts';

/**
 * The nftables CLI by absolute path: under npm/npx, node_modules/.bin comes first in PATH and
 * holds an unrelated `nft` (@vercel/nft).
 */
export const NFT = '/usr/sbin/nft';

export interface NetSpec { name: string; bridge: string; subnet4: string; subnet6: string }
export const NET_A: NetSpec = { name: 'pmnet', bridge: 'cnk0', subnet4: '10.77.0.0/24', subnet6: 'fd77::/64' };
export const NET_B: NetSpec = { name: 'pmnet2', bridge: 'cnk1', subnet4: '10.78.0.0/24', subnet6: 'fd78::/64' };

export interface Mapping { hostPort: number; containerPort: number; protocol?: string; hostIP?: string }

/** The bridge plugin's config for network `n` (the conflist's first entry). */
export function bridgeConf(sb: Sandbox, n: NetSpec, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    cniVersion: '1.0.0', name: n.name, type: 'bridge', bridge: n.bridge, isGateway: true,
    ipam: {
      type: 'host-local', dataDir: join(sb.tmp, 'ipam'),
      ranges: [[{ subnet: n.subnet4 }], [{ subnet: n.subnet6 }]],
      routes: [{ dst: '0.0.0.0/0' }, { dst: '::/0' }],
    },
    ...extra,
  };
}

/** The portmap entry of the conflist as the runtime hands it over. */
export function portmapConf(n: NetSpec, mappings: Mapping[] | undefined, prevResult: unknown, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const c: Record<string, unknown> = { cniVersion: '1.0.0', name: n.name, type: 'portmap', capabilities: { portMappings: true }, ...extra };
  if (mappings) c.runtimeConfig = { portMappings: mappings };
  if (prevResult !== undefined) c.prevResult = prevResult;
  return c;
}

export interface Attached { ns: string; cid: string; result: any; ip4: string; ip6: string }

/** Runs bridge ADD then portmap ADD for container namespace `ns`; throws with the plugin output on failure. */
export function attach(sb: Sandbox, n: NetSpec, ns: string, cid: string, mappings: Mapping[], bridgeExtra: Record<string, unknown> = {}, portmapExtra: Record<string, unknown> = {}): Attached {
  const br = sb.plugin('bridge', { command: 'ADD', containerId: cid, netns: Sandbox.path(ns), conf: bridgeConf(sb, n, bridgeExtra) });
  if (br.code !== 0) throw new Error(`bridge ADD ${cid}: ${br.stdout}${br.stderr}`);
  const pm = sb.plugin('portmap', { command: 'ADD', containerId: cid, netns: Sandbox.path(ns), conf: portmapConf(n, mappings, br.json, portmapExtra) });
  if (pm.code !== 0) throw new Error(`portmap ADD ${cid}: ${pm.stdout}${pm.stderr}`);
  const ips = (pm.json.ips as { address: string }[]).map((i) => i.address.split('/')[0]!);
  return { ns, cid, result: pm.json, ip4: ips.find((i) => !i.includes(':'))!, ip6: ips.find((i) => i.includes(':'))! };
}

/** Runs portmap DEL then bridge DEL, as a runtime would (reverse order, same cached result). */
export function detach(sb: Sandbox, n: NetSpec, a: Attached, mappings: Mapping[]): { pm: PluginRun; br: PluginRun } {
  const pm = sb.plugin('portmap', { command: 'DEL', containerId: a.cid, netns: Sandbox.path(a.ns), conf: portmapConf(n, mappings, a.result) });
  const br = sb.plugin('bridge', { command: 'DEL', containerId: a.cid, netns: Sandbox.path(a.ns), conf: { ...bridgeConf(sb, n), prevResult: a.result } });
  return { pm, br };
}

/**
 * Starts a TCP server (port, both families) or a UDP server in `ns` that answers every
 * connection or datagram with `<name> <peer address>` and resolves once it listens.
 */
export function serve(sb: Sandbox, ns: string, name: string, port: number, proto: 'tcp' | 'udp' = 'tcp'): Promise<void> {
  const script = proto === 'tcp'
    ? `const net=require('net');const s=net.createServer(c=>{c.on('error',()=>{});c.on('data',()=>{});c.end(${JSON.stringify(name)}+' '+c.remoteAddress.replace(/^::ffff:/,''))});s.listen({port:${port},host:'::'},()=>console.log('ready'));`
    : `const d=require('dgram');let n=0;for(const t of ['udp4','udp6']){const s=d.createSocket({type:t,ipv6Only:t==='udp6'});s.on('message',(m,r)=>s.send(${JSON.stringify(name)}+' '+r.address,r.port,r.address));s.bind(${port},()=>{if(++n===2)console.log('ready')})}`;
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['netns', 'exec', ns, NODE, '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    const timer = setTimeout(() => { child.kill(); reject(new Error(`server in ${ns} did not start`)); }, 30_000);
    let err = '';
    child.stderr.on('data', (d) => { err += d; });
    child.stdout.on('data', (d) => { if (String(d).includes('ready')) { clearTimeout(timer); resolve(); } });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`server in ${ns} exited ${code}: ${err}`)); });
  });
}

/**
 * Sends a UDP datagram from `ns` (again every 300 ms, as a UDP client would: the first one can
 * be lost while neighbour discovery runs) and returns the first reply ('' when none came).
 */
export function udpRequest(sb: Sandbox, ns: string, host: string, port: number, timeoutMs = 4000, srcPort = 0): string {
  const script = `const s=require('dgram').createSocket(${JSON.stringify(host.includes(':') ? 'udp6' : 'udp4')});s.on('message',m=>{process.stdout.write(m);process.exit(0)});setTimeout(()=>process.exit(2),${timeoutMs});const go=()=>s.send('ping',${port},${JSON.stringify(host)});s.bind(${srcPort},()=>{go();setInterval(go,300)});`;
  const r = sb.exec(ns, NODE, ['-e', script], { timeout: timeoutMs + 5000 });
  return r.status === 0 ? r.stdout : '';
}

export interface NftView {
  tables: string[];
  chains: string[];
  rules: number;
  /** Element comments per set of table inet cnikit. */
  elements: Record<string, string[]>;
}

/** Reads the sandbox host's ruleset with `nft -j list ruleset`. */
export function nftView(sb: Sandbox): NftView {
  const r = sb.exec(sb.host, NFT, ['-j', 'list', 'ruleset']);
  if (r.status !== 0 || !r.stdout) throw new Error(`nft list ruleset: status ${r.status} ${r.error ?? ''} ${r.stderr}`);
  const items: Record<string, any>[] = JSON.parse(r.stdout).nftables;
  const view: NftView = { tables: [], chains: [], rules: 0, elements: {} };
  for (const it of items) {
    if (it.table) view.tables.push(`${it.table.family} ${it.table.name}`);
    if (it.chain && it.chain.table === 'cnikit') view.chains.push(it.chain.name);
    if (it.rule && it.rule.table === 'cnikit') view.rules++;
    const s = it.set ?? it.map;
    if (s && s.table === 'cnikit') {
      // A set element is {elem: {val, comment}}; a map element is [{elem: {val, comment}}, data].
      view.elements[s.name] = (s.elem ?? []).map((e: any) => ((Array.isArray(e) ? e[0] : e)?.elem?.comment ?? '') as string);
    }
  }
  return view;
}

/** Every element comment in our table (owner tags), flattened. */
export function owners(v: NftView): string[] {
  return Object.values(v.elements).flat();
}

/**
 * A ruleset as an earlier version of cnikit wrote it: `rs` without the sets in `added` and the
 * rules that look into them (the upgrade tests build the old layout with it).
 */
export function withoutSets(rs: Ruleset, added: Iterable<string>): Ruleset {
  const gone = new Set(added);
  return { ...rs, sets: rs.sets.filter((x) => !gone.has(x.name)), rules: rs.rules.filter((r) => !r.exprs.some((e) => e.type === 'lookup' && gone.has(e.set))) };
}

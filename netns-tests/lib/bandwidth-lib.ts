/**
 * Helpers for the bandwidth netns tests: the chain bridge -> bandwidth as a runtime runs it
 * (prevResult passed along), the `tc -j` and `ip -j` views of the sandbox host, and a real TCP
 * flow between a container and the sandbox host whose rate the receiver measures.
 */
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { NODE, type PluginRun, Sandbox, ipJson, startUntilReady } from './sandbox.ts';

export const NET = { name: 'bwnet', bridge: 'cnkbw0', subnet: '10.79.0.0/24', gateway: '10.79.0.1' };
export const REF_BANDWIDTH = '/usr/lib/cni/bandwidth';

/** The bridge entry of the conflist (IPv4 only: the flows go to the gateway). */
export function bridgeConf(sb: Sandbox, version = '1.0.0'): Record<string, unknown> {
  return {
    cniVersion: version, name: NET.name, type: 'bridge', bridge: NET.bridge, isGateway: true,
    ipam: { type: 'host-local', dataDir: join(sb.tmp, 'ipam'), ranges: [[{ subnet: NET.subnet }]] },
  };
}

/** The bandwidth entry of the conflist with `keys` (top-level limits, runtimeConfig...) and prevResult. */
export function bandwidthConf(keys: Record<string, unknown>, prevResult: unknown, version = '1.0.0'): Record<string, unknown> {
  const c: Record<string, unknown> = { cniVersion: version, name: NET.name, type: 'bandwidth', capabilities: { bandwidth: true }, ...keys };
  if (prevResult !== undefined) c.prevResult = prevResult;
  return c;
}

export interface Attached {
  ns: string;
  cid: string;
  ifName: string;
  /** bridge's ADD result. */
  bridge: any;
  /** The host end of the veth. */
  veth: string;
  ip: string;
}

/** Runs bridge ADD for `ns`; throws with the plugin's output on failure. */
export function attachBridge(sb: Sandbox, ns: string, cid: string, ifName = 'eth0', version = '1.0.0'): Attached {
  const br = sb.plugin('bridge', { command: 'ADD', containerId: cid, netns: Sandbox.path(ns), ifName, conf: bridgeConf(sb, version) });
  if (br.code !== 0) throw new Error(`bridge ADD ${cid}: ${br.stdout}${br.stderr}`);
  const veth = (br.json.interfaces as { name: string; sandbox?: string }[]).find((i) => !i.sandbox && i.name !== NET.bridge)!.name;
  const ip = (br.json.ips as { address: string }[])[0]!.address.split('/')[0]!;
  return { ns, cid, ifName, bridge: br.json, veth, ip };
}

/** Runs a bandwidth command for an attachment, through `bin` (ours by default, or the reference's path). */
export function bandwidth(sb: Sandbox, command: string, at: Attached, keys: Record<string, unknown>, opts: { prevResult?: unknown; bin?: string; version?: string } = {}): PluginRun {
  const conf = bandwidthConf(keys, 'prevResult' in opts ? opts.prevResult : at.bridge, opts.version);
  const call = { command, containerId: at.cid, netns: Sandbox.path(at.ns), ifName: at.ifName, conf };
  if (!opts.bin) return sb.plugin('bandwidth', call);
  const r = sb.exec(sb.host, opts.bin, [], { input: JSON.stringify(conf), env: sb.cniEnv({ ...call, path: '/usr/lib/cni' }) });
  let json: unknown;
  try { json = JSON.parse(r.stdout); } catch { json = undefined; }
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr, json };
}

/** Runs bridge DEL for an attachment. */
export function detachBridge(sb: Sandbox, at: Attached): PluginRun {
  return sb.plugin('bridge', { command: 'DEL', containerId: at.cid, netns: Sandbox.path(at.ns), ifName: at.ifName, conf: { ...bridgeConf(sb), prevResult: at.bridge } });
}

/** Runs `tc -j ARGS` in the sandbox host and parses it. */
export function tcJson(sb: Sandbox, ...args: string[]): any[] {
  const out = execFileSync('tc', ['-n', sb.host, '-j', ...args], { encoding: 'utf8' }).trim();
  return out ? JSON.parse(out) : [];
}

/** Runs `tc ARGS` in the sandbox host (throws on failure). */
export function tc(sb: Sandbox, ...args: string[]): string {
  return execFileSync('tc', ['-n', sb.host, ...args], { encoding: 'utf8' });
}

/** The qdiscs of `dev` that are not the device's default (what a plugin made), without `dev`. */
export function madeQdiscs(sb: Sandbox, dev: string): any[] {
  return tcJson(sb, '-d', 'qdisc', 'show', 'dev', dev)
    .filter((q) => q.handle !== '0:' && q.kind !== 'noqueue')
    .map(({ dev: _dev, ...q }) => q);
}

/** The ifb devices of the sandbox host, by name. */
export function ifbs(sb: Sandbox): string[] {
  return ipJson(sb.host, 'link', 'show', 'type', 'ifb').map((l: { ifname: string }) => l.ifname);
}

/** The u32 filters with actions on `dev`'s ingress, reduced to what a user reads in `tc filter show`. */
export function redirects(sb: Sandbox, dev: string): { pref: number; protocol: string; flowid?: string; match?: unknown; actions: { kind: string; action: string; direction: string; to: string; control: string }[] }[] {
  return tcJson(sb, 'filter', 'show', 'dev', dev, 'ingress').filter((f) => f.options?.actions).map((f) => ({
    pref: f.pref, protocol: f.protocol, flowid: f.options.flowid, match: f.options.match,
    actions: f.options.actions.map((a: any) => ({ kind: a.kind, action: a.mirred_action, direction: a.direction, to: a.to_dev, control: a.control_action?.type })),
  }));
}

// A receiver that counts what one connection brings and prints `{bytes, ms}` from its first byte
// to its end; a sender that writes as fast as the socket takes for `ms`, then ends. Both exit on
// their own; the test's timeouts bound them anyway.
const RECEIVER = (port: number) => `const net=require('net');const s=net.createServer(c=>{let n=0,t0=0,t1=0;c.on('data',d=>{const t=performance.now();if(!t0)t0=t;t1=t;n+=d.length});c.on('end',()=>{console.log(JSON.stringify({bytes:n,ms:t1-t0}));process.exit(0)});c.on('error',e=>{console.error(String(e));process.exit(1)})});s.listen(${port},()=>console.log('ready'));setTimeout(()=>process.exit(3),30000);`;
const SENDER = (host: string, port: number, ms: number) => `const c=require('net').connect({host:${JSON.stringify(host)},port:${port}},()=>{const buf=Buffer.alloc(65536,7);const end=performance.now()+${ms};const pump=()=>{while(performance.now()<end){if(!c.write(buf))return c.once('drain',pump)}c.end()};pump()});c.on('close',()=>process.exit(0));c.on('error',e=>{console.error(String(e));process.exit(1)});setTimeout(()=>process.exit(2),${ms}+20000);`;

/**
 * Sends TCP from namespace `from` to `toAddr` (a listener in namespace `to`) for `ms` and returns
 * the rate the receiver saw, in bit/s. What the sender queued but the shaper had not passed when
 * the time was up still arrives before the end, so the measure covers it.
 */
export async function measureTcp(sb: Sandbox, from: string, to: string, toAddr: string, ms: number, port = 5201): Promise<number> {
  const rx = await startUntilReady(to, NODE, ['-e', RECEIVER(port)], process.env);
  try {
    const tx = sb.exec(from, NODE, ['-e', SENDER(toAddr, port, ms)], { timeout: ms + 25_000 });
    if (tx.status !== 0) throw new Error(`sender failed (${tx.status}): ${tx.stderr}`);
    const code = await Promise.race([rx.exited, new Promise((r) => setTimeout(() => r('timeout'), 30_000))]);
    if (code !== 0) throw new Error(`receiver failed (${String(code)}): ${rx.stderr()}`);
    // 'exit' may come before the last of its stdout is read: wait for the end of the stream.
    const stdout = rx.child.stdout;
    if (stdout && !stdout.readableEnded) await new Promise((r) => { stdout.once('end', r); setTimeout(r, 5000); });
    const { bytes, ms: took } = JSON.parse(rx.stdout().split('\n').find((l) => l.startsWith('{'))!) as { bytes: number; ms: number };
    return (bytes * 8) / (took / 1000);
  } finally {
    try { rx.child.kill('SIGKILL'); } catch { /* already gone */ }
  }
}

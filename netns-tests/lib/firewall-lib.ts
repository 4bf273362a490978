/**
 * Helpers for the firewall and isolation netns tests: a network's chain (bridge with ipMasq,
 * portmap, firewall) run as a runtime runs it, the foreign firewalls a host can have in front of
 * it (iptables-nft's `filter FORWARD` at policy drop, a native nft table with a forward chain at
 * policy drop), and what `iptables -S` / `iptables-save` / `nft` show in the sandbox host.
 * Every command names the sandbox's namespace (`ip netns exec`).
 */
import { join } from 'node:path';
import { type PluginCall, type PluginRun, Sandbox } from './sandbox.ts';
import { type Mapping, type NetSpec, NFT, bridgeConf, portmapConf } from './portmap-lib.ts';

export const IPTABLES = '/usr/sbin/iptables';
export const IP6TABLES = '/usr/sbin/ip6tables';
export const IPTABLES_SAVE = '/usr/sbin/iptables-save';
export const REFERENCE_FIREWALL = '/usr/lib/cni/firewall';

/** Runs a command in the sandbox host and returns stdout; throws with stderr when it fails. */
export function hostCmd(sb: Sandbox, cmd: string, args: string[]): string {
  const r = sb.exec(sb.host, cmd, args);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.status} ${r.stderr}`);
  return r.stdout;
}

/** `iptables ARGS` and `ip6tables ARGS` in the sandbox host. */
export function bothIptables(sb: Sandbox, ...args: string[]): void {
  hostCmd(sb, IPTABLES, args);
  hostCmd(sb, IP6TABLES, args);
}

/** Sets the policy of iptables' (and ip6tables') FORWARD chain, as Docker does with DROP. */
export function forwardPolicy(sb: Sandbox, policy: 'DROP' | 'ACCEPT'): void {
  bothIptables(sb, '-P', 'FORWARD', policy);
}

/** A native nft table with a forward chain at policy drop (an admin's own firewall), accepting established traffic. */
export function nativeDropTable(sb: Sandbox, name = 'hostfw'): void {
  hostCmd(sb, NFT, ['add', 'table', 'inet', name]);
  hostCmd(sb, NFT, ['add', 'chain', 'inet', name, 'forward', '{ type filter hook forward priority filter; policy drop; }']);
  hostCmd(sb, NFT, ['add', 'rule', 'inet', name, 'forward', 'iifname', 'lo', 'accept', 'comment', '"the admin\'s own rule"']);
}

/** Lets bridged IP traffic through the IP hooks (br_netfilter), as on the hosts the notes observed, or not. */
export function bridgeNf(sb: Sandbox, on: boolean): void {
  for (const k of ['bridge-nf-call-iptables', 'bridge-nf-call-ip6tables']) sb.exec(sb.host, 'sysctl', ['-qw', `net.bridge.${k}=${on ? 1 : 0}`]);
}

/** `iptables-save` (or ip6tables-save) of the sandbox host without its date lines and counters. */
export function iptablesSave(sb: Sandbox, six = false): string {
  return hostCmd(sb, six ? '/usr/sbin/ip6tables-save' : IPTABLES_SAVE, [])
    .split('\n').filter((l) => !l.startsWith('#')).map((l) => l.replace(/\[\d+:\d+\]/, '[0:0]')).join('\n');
}

/** `iptables -S` of the sandbox host (throws when iptables refuses the ruleset, as for a chain it cannot read). */
export function iptablesS(sb: Sandbox, six = false): string {
  return hostCmd(sb, six ? IP6TABLES : IPTABLES, ['-S']);
}

/** The rules of one chain of the sandbox host as `nft -j` describes them (each rule's comment and expression kinds). */
export function nftChainRules(sb: Sandbox, family: string, table: string, chain: string): { comment?: string; exprs: string[] }[] {
  const r = sb.exec(sb.host, NFT, ['-j', 'list', 'chain', family, table, chain]);
  if (r.status !== 0) return [];
  return (JSON.parse(r.stdout).nftables as Record<string, any>[]).filter((x) => x.rule).map((x) => ({
    comment: x.rule.comment as string | undefined,
    exprs: (x.rule.expr as Record<string, unknown>[]).map((e) => Object.keys(e)[0]!),
  }));
}

/** Element comments of one set of table inet cnikit ([] when the set or table is missing). */
export function setComments(sb: Sandbox, set: string): string[] {
  const r = sb.exec(sb.host, NFT, ['-j', 'list', 'set', 'inet', 'cnikit', set]);
  if (r.status !== 0) return [];
  const s = (JSON.parse(r.stdout).nftables as Record<string, any>[]).find((x) => x.set || x.map);
  return ((s?.set ?? s?.map)?.elem ?? []).map((e: any) => ((Array.isArray(e) ? e[0] : e)?.elem?.comment ?? '') as string);
}

export interface ChainOpts {
  mappings?: Mapping[];
  /** The firewall entry's own keys; null: no firewall in the chain. */
  firewall?: Record<string, unknown> | null;
  /** Extra keys for the bridge entry. */
  bridge?: Record<string, unknown>;
  /** The firewall executable (default: ours in dist/bin), by CNI type. */
  firewallType?: string;
  /** CNI_PATH for the firewall call (to run the reference plugin). */
  firewallPath?: string;
  /** dnsname last in the chain (the container's name is its id), state under the sandbox's temp dir. */
  dns?: boolean;
}

export interface Attached { ns: string; cid: string; net: NetSpec; opts: ChainOpts; bridgeResult: any; result: any; ip4: string; ip6: string }

/** The firewall entry of the conflist as the runtime hands it over. */
export function firewallConf(n: NetSpec, keys: Record<string, unknown>, prevResult: unknown): Record<string, unknown> {
  return { cniVersion: '1.0.0', name: n.name, type: 'firewall', ...keys, prevResult };
}

/** Runs the plugin executable at `path` (the reference's, say) in the sandbox host, as a runtime would. */
export function runAt(sb: Sandbox, path: string, c: PluginCall): PluginRun {
  const r = sb.exec(sb.host, path, [], { input: JSON.stringify(c.conf), env: sb.cniEnv(c) });
  let json: unknown;
  try { json = JSON.parse(r.stdout); } catch { json = undefined; }
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr, json };
}

function must(r: PluginRun, what: string): any {
  if (r.code !== 0) throw new Error(`${what}: ${r.stdout}${r.stderr}`);
  return r.json;
}

/** Runs bridge (ipMasq, hairpin), portmap when there are mappings, then firewall unless `firewall: null`. */
export function attach(sb: Sandbox, n: NetSpec, ns: string, cid: string, opts: ChainOpts = {}): Attached {
  const netns = Sandbox.path(ns);
  const br = must(sb.plugin('bridge', { command: 'ADD', containerId: cid, netns, conf: bridgeConf(sb, n, { ipMasq: true, hairpinMode: true, ...opts.bridge }) }), `bridge ADD ${cid}`);
  let result = br;
  if (opts.mappings?.length) result = must(sb.plugin('portmap', { command: 'ADD', containerId: cid, netns, conf: portmapConf(n, opts.mappings, result) }), `portmap ADD ${cid}`);
  if (opts.firewall !== null) {
    result = must(sb.plugin(opts.firewallType ?? 'firewall', { command: 'ADD', containerId: cid, netns, conf: firewallConf(n, opts.firewall ?? {}, result), ...(opts.firewallPath ? { path: opts.firewallPath } : {}) }), `firewall ADD ${cid}`);
  }
  if (opts.dns) result = must(sb.plugin('dnsname', { command: 'ADD', containerId: cid, netns, cniArgs: `IgnoreUnknown=1;K8S_POD_NAME=${cid}`, conf: dnsnameConf(sb, n, result) }), `dnsname ADD ${cid}`);
  const ips = (result.ips as { address: string }[]).map((i) => i.address.split('/')[0]!);
  return { ns, cid, net: n, opts, bridgeResult: br, result, ip4: ips.find((i) => !i.includes(':'))!, ip6: ips.find((i) => i.includes(':'))! };
}

/** Runs the firewall alone for an attachment (ADD or DEL), with its cached result as prevResult. */
export function firewallCall(sb: Sandbox, a: Attached, command: 'ADD' | 'DEL' | 'CHECK', keys: Record<string, unknown> = a.opts.firewall ?? {}): PluginRun {
  return sb.plugin('firewall', { command, containerId: a.cid, netns: Sandbox.path(a.ns), conf: firewallConf(a.net, keys, a.result) });
}

/** The dnsname entry (domain dns.cnikit, upstream the outside namespace). */
export function dnsnameConf(sb: Sandbox, n: NetSpec, prevResult: unknown): Record<string, unknown> {
  return { cniVersion: '1.0.0', name: n.name, type: 'dnsname', domainName: 'dns.cnikit', recordsDir: join(sb.tmp, 'dns'), upstreams: ['198.51.100.2'], prevResult };
}

/** DELs the chain in reverse, as a runtime would; throws when a plugin fails. */
export function detach(sb: Sandbox, a: Attached): void {
  const netns = Sandbox.path(a.ns);
  if (a.opts.dns) must(sb.plugin('dnsname', { command: 'DEL', containerId: a.cid, netns, cniArgs: `IgnoreUnknown=1;K8S_POD_NAME=${a.cid}`, conf: dnsnameConf(sb, a.net, a.result) }), `dnsname DEL ${a.cid}`);
  if (a.opts.firewall !== null) must(sb.plugin(a.opts.firewallType ?? 'firewall', { command: 'DEL', containerId: a.cid, netns, conf: firewallConf(a.net, a.opts.firewall ?? {}, a.result), ...(a.opts.firewallPath ? { path: a.opts.firewallPath } : {}) }), `firewall DEL ${a.cid}`);
  if (a.opts.mappings?.length) must(sb.plugin('portmap', { command: 'DEL', containerId: a.cid, netns, conf: portmapConf(a.net, a.opts.mappings, a.result) }), `portmap DEL ${a.cid}`);
  must(sb.plugin('bridge', { command: 'DEL', containerId: a.cid, netns, conf: { ...bridgeConf(sb, a.net, { ipMasq: true, hairpinMode: true, ...a.opts.bridge }), prevResult: a.result } }), `bridge DEL ${a.cid}`);
}

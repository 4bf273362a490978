/**
 * The `dnsname` CNI plugin (chained after bridge, and portmap if present): a drop-in for the
 * containers/dnsname plugin's config (`domainName`, capability `aliases` as a map network ->
 * names), backed by cnikit's own responder instead of one dnsmasq per network.
 *
 * ADD writes the container's names (CNI_ARGS K8S_POD_NAME + this network's aliases) and
 * addresses (prevResult) into `<recordsDir>/<network>.records` under the directory lock, bound
 * to what they belong to: the host netns, the host link carrying the gateways (name and
 * ifindex), and the container's netns (inode and path). Before writing it prunes the network's
 * file: lines whose netns is gone (a bounded share of the lines per ADD; the responder checks
 * them all periodically), and everything when the file was written for an earlier network of
 * the same name (another bridge). Files are parsed once per version (responder/parsed-files.ts,
 * shared with the responder's reload when the engine hosts it). It makes sure one responder runs and has reloaded,
 * and returns prevResult with the resolver in `dns.nameservers` (the gateways, or 127.0.0.11
 * with `"resolver": "127.0.0.11"`) and the domain in `dns.search`. DEL removes the line
 * (idempotent); CHECK verifies the records and asks the responder a real DNS question; GC drops
 * records of attachments that are no longer valid. DEL prunes dead lines too (a share, as ADD), GC all of them.
 *
 * Extra keys (ours): `upstreams` (else the nameservers of `resolvConf`, default the responder's
 * /etc/resolv.conf), `port`, `recordsDir`, `runDir` (absolute paths, as `resolvConf`), `resolver`
 * (`"gateway"`, the default, or `"127.0.0.11"`: Docker's embedded resolver inside each
 * container's netns) and `internal` (answer the network's names only; REFUSED for the rest).
 *
 * From responder/ it takes the plugin's half of the contract only: records.ts (the file format
 * it writes), liveness.ts (bindings and what has died), control.ts (asking for a reload),
 * ensure.ts (starting one), host.ts (the seam through which the warm engine hosts the responder
 * in its own process: CmdArgs.responders, used instead of ensure.ts and control.ts when the
 * call has it), wire.ts (CHECK's query) and backend.ts's listenKey. This file runs
 * in every plugin exec, so it loads no DNS library (wire.ts is ours and small).
 */
import { aboutOf } from '../../executables.ts';
import { closeSync, existsSync, openSync, readSync, realpathSync } from 'node:fs';
import { basename, dirname, isAbsolute, join } from 'node:path';
import { KNOWN_CNI_ARGS, parseCniArgs } from '../../pkg/cni/args.ts';
import { CniCode, CniError, invalidConfig } from '../../pkg/cni/errors.ts';
import { type Result, containerIPs, parsePrevResult } from '../../pkg/cni/result.ts';
import * as z from 'zod/mini';
import { goKeys } from '../../pkg/cni/go-keys.ts';
import { netConfBase, parseWith } from '../../pkg/cni/schema.ts';
import type { Attachment, CmdArgs, Plugin } from '../../pkg/cni/skel.ts';
import { formatIP, tryParseCidr, tryParseIP } from '../../pkg/ip/cidr.ts';
import type { Logger } from '../../pkg/log.ts';
import { freshArgv } from '../../pkg/bundle.ts';
import { native } from '../../pkg/native.ts';
import { LockedDir } from '../../pkg/store/locked-dir.ts';
import { listenKey } from '../../responder/backend.ts';
import { noteWritten, readParsed } from '../../responder/parsed-files.ts';
import { type ControlCommand, type ControlReply, controlRequest } from '../../responder/control.ts';
import { RESPONDER_NODE_FLAGS, ensureResponder } from '../../responder/ensure.ts';
import { type HostProbe, UNSEEN, currentBinding, deadContainers, hostProbe, judgeBinding, netnsInoOf, sameBinding } from '../../responder/liveness.ts';
import {
  type BridgeBinding, type ContainerRecord, EMBEDDED_RESOLVER, type NetworkRecords, RECORDS_SUFFIX, type ResolverMode,
  formatRecords, isValidDnsName, ownCopy, parseRecords, parseUpstream,
} from '../../responder/records.ts';
import { HEADER_SIZE, TYPE, answerCount, encodeQuery, idOf, isResponse, rcodeOf } from '../../responder/wire.ts';

export const DEFAULT_RECORDS_DIR = '/run/cnikit/dns';
export const DEFAULT_DOMAIN = 'dns.cnikit';

const confSchema = z.object({
  ...netConfBase,
  domainName: z.optional(z.string()),
  upstreams: z.optional(z.array(z.string())),
  port: z.optional(z.number().check(z.int(), z.minimum(1), z.maximum(65535))),
  recordsDir: z.optional(z.string()),
  runDir: z.optional(z.string()),
  // A Go struct in containers/dnsname (so "Aliases" works); its map of network -> names is checked by aliasesOf.
  runtimeConfig: z.optional(z.looseObject({ aliases: z.optional(z.unknown()) })),
  resolver: z.optional(z.string()),
  internal: z.optional(z.boolean()),
  resolvConf: z.optional(z.string()),
});

/** The plugin's config after validation and defaults. */
export interface DnsnameConf {
  network: string;
  cniVersion: string;
  domain: string;
  port: number;
  upstreams: string[] | undefined;
  recordsDir: string;
  runDir: string;
  /** Where the resolver listens: each gateway address, or 127.0.0.11 inside each container. */
  resolver: ResolverMode;
  /** Answer the network's names only; REFUSED for everything else. */
  internal: boolean;
  /** Where the upstreams are read when `upstreams` is not given (absent: the responder's /etc/resolv.conf). */
  resolvConf: string | undefined;
  raw: z.infer<typeof confSchema>;
}

/** Where a network's state lives: what DEL and GC need, read leniently. */
interface StateDirs {
  network: string;
  recordsDir: string;
  runDir: string;
}

/** Returns recordsDir and runDir with their defaults, or the key of the first that is not absolute. */
function stateDirsOf(raw: { recordsDir?: unknown; runDir?: unknown }): { recordsDir: string; runDir: string } | { bad: string; value: string } {
  const recordsDir = typeof raw.recordsDir === 'string' && raw.recordsDir ? raw.recordsDir : DEFAULT_RECORDS_DIR;
  const runDir = typeof raw.runDir === 'string' && raw.runDir ? raw.runDir : recordsDir;
  for (const [k, v] of [['recordsDir', recordsDir], ['runDir', runDir]] as const) {
    if (!isAbsolute(v)) return { bad: k, value: v };
  }
  return { recordsDir, runDir };
}

/** Validates the config (code 7 naming the field); no side effects. */
export function parseDnsnameConf(a: CmdArgs): DnsnameConf {
  const raw = parseWith(confSchema, a.conf);
  const domain = (raw.domainName ?? DEFAULT_DOMAIN).replace(/\.$/, '').toLowerCase();
  if (!isValidDnsName(domain)) throw invalidConfig(`domainName: "${raw.domainName}" is not a valid DNS domain`);
  const bad = (raw.upstreams ?? []).filter((u) => !parseUpstream(u));
  if (bad.length) throw invalidConfig(`upstreams: ${bad.map((b) => `"${b}"`).join(', ')} must be "IP" or "IP:port" ("[IPv6]:port")`);
  const dirs = stateDirsOf(raw);
  if ('bad' in dirs) throw invalidConfig(`${dirs.bad}: "${dirs.value}" must be an absolute path`);
  const { recordsDir, runDir } = dirs;
  if (Buffer.byteLength(join(runDir, 'responder.sock')) > 107) throw invalidConfig(`runDir: "${runDir}" is too long for a unix socket path`);
  if (raw.resolvConf !== undefined && !isAbsolute(raw.resolvConf)) throw invalidConfig(`resolvConf: "${raw.resolvConf}" must be an absolute path`);
  const resolver = raw.resolver ?? 'gateway';
  if (resolver !== 'gateway' && resolver !== EMBEDDED_RESOLVER) throw invalidConfig(`resolver: "${resolver}" must be "gateway" or "${EMBEDDED_RESOLVER}"`);
  return {
    network: a.conf.name, cniVersion: a.conf.cniVersion, domain, port: raw.port ?? 53, upstreams: raw.upstreams, recordsDir, runDir,
    resolver, internal: raw.internal === true, resolvConf: raw.resolvConf, raw,
  };
}

const locationKeys = z.object({ recordsDir: z.unknown(), runDir: z.unknown() });

/**
 * The state directories for DEL and GC, which never fail on a config they cannot use (the
 * spec's DEL): undefined when a path is relative (ADD refused it, so nothing was written).
 */
function stateDirsForCleanup(a: CmdArgs): StateDirs | undefined {
  // The keys matched as Go matches them ("RecordsDir" works); nothing else of the config is read.
  const dirs = stateDirsOf(goKeys(locationKeys, a.conf) as { recordsDir?: unknown; runDir?: unknown });
  if ('bad' in dirs) {
    a.log.warn('nothing to remove: a relative state path is never used', { key: dirs.bad, value: dirs.value });
    return undefined;
  }
  return { network: a.conf.name, ...dirs };
}

/** The container name from CNI_ARGS K8S_POD_NAME (code 4 when missing or unusable). */
function containerName(a: CmdArgs): string {
  const name = parseCniArgs(a.args, KNOWN_CNI_ARGS).get('K8S_POD_NAME');
  if (!name) throw new CniError(CniCode.InvalidEnv, 'missing container name', 'dnsname needs K8S_POD_NAME in CNI_ARGS (e.g. "IgnoreUnknown=1;K8S_POD_NAME=web")');
  if (!isValidDnsName(name)) throw new CniError(CniCode.InvalidEnv, `invalid container name "${name}"`, 'K8S_POD_NAME must be a DNS name: labels of letters, digits, "-" and "_", at most 63 characters each');
  return name;
}

/** This network's aliases from runtimeConfig.aliases (Podman: {network: [names]}; spec: [names]). */
function aliasesOf(conf: DnsnameConf): string[] {
  const raw = conf.raw.runtimeConfig?.aliases;
  if (raw === undefined) return [];
  let list: unknown;
  if (Array.isArray(raw)) list = raw;
  else if (raw && typeof raw === 'object') list = (raw as Record<string, unknown>)[conf.network] ?? [];
  else throw invalidConfig('runtimeConfig.aliases: expected a map of network name to a list of names');
  if (!Array.isArray(list) || list.some((n) => typeof n !== 'string')) throw invalidConfig(`runtimeConfig.aliases.${conf.network}: expected a list of names`);
  const bad = (list as string[]).filter((n) => !isValidDnsName(n));
  if (bad.length) throw invalidConfig(`runtimeConfig.aliases.${conf.network}: invalid DNS names ${bad.map((b) => `"${b}"`).join(', ')}`);
  return list as string[];
}

function requirePrev(conf: DnsnameConf): Result {
  const prev = parsePrevResult(conf.raw.prevResult, conf.cniVersion);
  if (!prev) throw new CniError(CniCode.InvalidConfig, 'must be called as chained plugin', 'dnsname needs a prevResult (put it after bridge in the plugin list)');
  return prev;
}

/** Container addresses (with prefix) and gateways from prevResult (docs/cni-notes.md §1.8, §6.1). */
function addressesOf(prev: Result, ifName: string, needGateway: boolean): { addresses: string[]; gateways: string[] } {
  const addresses: string[] = [];
  const gateways: string[] = [];
  for (const ip of containerIPs(prev, ifName)) {
    const c = tryParseCidr(ip.address);
    if (!c) throw new CniError(CniCode.DecodingFailure, 'failed to parse prevResult', `ips: "${ip.address}" is not address/prefix`);
    addresses.push(ip.address);
    if (ip.gateway) {
      if (!tryParseIP(ip.gateway)) throw new CniError(CniCode.DecodingFailure, 'failed to parse prevResult', `ips: gateway "${ip.gateway}" is not an IP address`);
      if (!gateways.includes(ip.gateway)) gateways.push(ip.gateway);
    }
  }
  if (!addresses.length) throw invalidConfig(`prevResult has no address of the container interface "${ifName}"`);
  if (!gateways.length && needGateway) throw invalidConfig('prevResult has no gateway: the DNS responder listens on the network\'s gateway address (set isGateway on the bridge)');
  return { addresses, gateways };
}

/** The container's netns as ADD found it (CNI_NETNS and the inode it names). */
function containerNetns(a: CmdArgs): { ino: number; path: string } {
  // The record names it by path, which must mean the same from every process (and the file format wants it absolute).
  if (a.netns && !isAbsolute(a.netns)) throw new CniError(CniCode.InvalidEnv, `CNI_NETNS "${a.netns}" is not an absolute path`, 'set CNI_NETNS to the path of the container\'s network namespace (e.g. /run/netns/NAME)');
  const ino = a.netns ? netnsInoOf(a.netns) : undefined;
  if (ino === undefined || ino === UNSEEN) {
    throw new CniError(CniCode.UnknownContainer, `failed to open netns "${a.netns}"`, 'CNI_NETNS does not name a network namespace (the container is gone?)');
  }
  return { ino, path: a.netns };
}

/** Runs fn holding the records directory's lock (released after fn settles). */
function withRecordsLock<T>(dir: string, fn: (d: LockedDir) => Promise<T>): Promise<T> {
  const d = new LockedDir(dir);
  return d.withLock(() => fn(d));
}

const fileOf = (network: string) => `${network}${RECORDS_SUFFIX}`;

/** Reads the network's record file; lines it cannot use are logged (to the call's log) and dropped. */
function readNetwork(d: LockedDir, network: string, log: Logger): NetworkRecords | undefined {
  const r = readParsed(d.dir, fileOf(network))?.parsed;
  if (!r) return undefined;
  for (const p of r.problems) log.warn('dropping bad record line', { file: p.file, line: p.line, problem: p.msg });
  // A copy: the parse is shared with later calls (parsed-files.ts), and callers change the list.
  return r.records && { ...r.records, containers: [...r.records.containers] };
}

/** Writes (or, when no container is left, removes) the network's record file. */
function writeNetwork(d: LockedDir, rec: NetworkRecords): void {
  if (rec.containers.length) putFile(d, fileOf(rec.network), formatRecords(rec), rec);
  else putFile(d, fileOf(rec.network), undefined);
}

/**
 * Replaces a record file with `text` (undefined: removes it), and notes what is there now
 * (with `rec`, the records `text` was formatted from: they are the parse).
 */
function putFile(d: LockedDir, name: string, text: string | undefined, rec?: NetworkRecords): void {
  let written = false;
  try {
    if (text === undefined) d.remove(name);
    else d.writeAtomic(name, text, 0o644);
    written = true;
  } finally {
    noteWritten(d.dir, name, text, written ? rec : undefined);
  }
}

/**
 * Container netns checked per ADD (and DEL) at most. Why bounded: checking every line costs a stat per
 * container (~5 µs each, 5 ms at 1000) on every ADD; the responder checks all of them periodically and
 * prunes the disk (responder/serve.ts), so ADD only has to keep up, not be complete.
 */
const CHECK_BUDGET = 16;

/** Where the next ADD's or DEL's share of checks starts, per records file (rotating across the calls of a warm engine). */
const checkCursor = new Map<string, number>();

/** The share of `rec`'s containers an ADD or DEL checks: CHECK_BUDGET of them, round robin (a random start in a fresh process). */
function checkShare(d: LockedDir, rec: NetworkRecords): ContainerRecord[] {
  const list = rec.containers;
  if (list.length <= CHECK_BUDGET) return list;
  const path = join(d.dir, fileOf(rec.network));
  const at = (checkCursor.get(path) ?? Math.floor(Math.random() * list.length)) % list.length;
  if (!checkCursor.has(path) && checkCursor.size >= 256) checkCursor.clear();
  checkCursor.set(path, at + CHECK_BUDGET);
  const share = list.slice(at, at + CHECK_BUDGET);
  return share.length < CHECK_BUDGET ? share.concat(list.slice(0, CHECK_BUDGET - share.length)) : share;
}

/** Drops the lines whose container netns is gone (logged), of `among` (default all); returns how many. */
function pruneDead(rec: NetworkRecords, probe: Pick<HostProbe, 'netnsIno'>, log: Logger, among: readonly ContainerRecord[] = rec.containers): number {
  const dead = deadContainers(among, probe);
  if (!dead.length) return 0;
  const gone = new Set(dead);
  rec.containers = rec.containers.filter((c) => !gone.has(c));
  log.info('dropping records of containers gone without DEL', { network: rec.network, containers: dead.map((c) => `${c.containerId}/${c.ifName}`) });
  return dead.length;
}

/**
 * The network's records as ADD starts from: the file's, pruned of dead containers, or nothing
 * of it when it was written for another network of the same name (another bridge or host
 * netns: the network was re-created, and its old lines must not come along).
 */
function currentNetwork(d: LockedDir, conf: DnsnameConf, binding: { hostNetns: number; bridge?: BridgeBinding }, probe: HostProbe, log: Logger): NetworkRecords {
  const rec: NetworkRecords = readNetwork(d, conf.network, log) ?? { network: conf.network, domain: conf.domain, port: conf.port, upstreams: undefined, containers: [] };
  if (rec.hostNetns !== undefined && !sameBinding(rec, binding) && rec.containers.length) {
    log.info('dropping the records of an earlier network of the same name', {
      network: conf.network, was: `${rec.bridge ? `bridge ${rec.bridge.name} #${rec.bridge.index} ` : ''}in host netns ${rec.hostNetns}`, containers: rec.containers.length,
    });
    rec.containers = [];
  }
  pruneDead(rec, probe, log, checkShare(d, rec));
  rec.domain = conf.domain;
  rec.port = conf.port;
  rec.upstreams = conf.upstreams;
  delete rec.resolvConf;
  if (conf.resolvConf !== undefined) rec.resolvConf = conf.resolvConf;
  delete rec.resolver;
  delete rec.internal;
  if (conf.resolver !== 'gateway') rec.resolver = conf.resolver;
  if (conf.internal) rec.internal = true;
  rec.hostNetns = binding.hostNetns;
  if (binding.bridge) rec.bridge = binding.bridge;
  else delete rec.bridge;
  return rec;
}

/** The `host` and `bridge` lines of a record file: its first lines (formatRecords writes them before any container). */
function headerOf(d: LockedDir, name: string): { hostNetns?: number; bridge?: BridgeBinding } {
  let fd: number;
  try {
    fd = openSync(join(d.dir, name), 'r');
  } catch {
    return {};
  }
  try {
    const buf = Buffer.alloc(2048);
    const n = readSync(fd, buf, 0, buf.length, 0);
    const text = buf.toString('utf8', 0, n);
    const cut = text.indexOf('\ncontainer ');
    return parseRecords(cut >= 0 ? text.slice(0, cut) : text.slice(0, text.lastIndexOf('\n') + 1), 'x').records ?? {};
  } finally {
    closeSync(fd);
  }
}

/**
 * Makes sure no other network's records claim this network's bridge: a stale one (its
 * containers all gone) is removed; one with live containers makes ADD fail, since two
 * networks cannot share one bridge's resolver.
 */
async function claimBridge(d: LockedDir, conf: DnsnameConf, binding: { hostNetns: number; bridge?: BridgeBinding }, probe: HostProbe, log: Logger): Promise<void> {
  if (!binding.bridge) return;
  for (const name of d.list()) {
    if (!name.endsWith(RECORDS_SUFFIX) || name.startsWith('.') || name === fileOf(conf.network)) continue;
    if (!sameBinding(headerOf(d, name), binding)) continue;
    const other = name.slice(0, -RECORDS_SUFFIX.length);
    const rec = readNetwork(d, other, log);
    if (!rec || !sameBinding(rec, binding)) continue;
    const state = await judgeBinding(rec, probe);
    pruneDead(rec, probe, log);
    if (state.state === 'live' && rec.containers.length) {
      throw new CniError(CniCode.Internal, `bridge ${binding.bridge.name} already serves DNS for network "${rec.network}"`,
        `two networks cannot share one bridge's resolver; ${rec.containers.length} container(s) of "${rec.network}" are still attached (${join(d.dir, name)})`);
    }
    log.info('removing the records of a network gone from this bridge', { network: rec.network, file: join(d.dir, name) });
    putFile(d, name, undefined);
  }
}

/** The argv that starts this plugin's executable (the responder is the same bundle). */
function responderCommand(self: string): string[] {
  // Built: Node on the bundle as the launcher runs it (dist/bin/dnsname is a native launcher).
  const fresh = freshArgv('dnsname', self, RESPONDER_NODE_FLAGS);
  if (fresh) return fresh;
  let script = self;
  try {
    const real = realpathSync(self);
    script = basename(real) === 'dnsname' ? real : join(dirname(real), 'dnsname');
  } catch { /* keep argv[1] */ }
  return [process.execPath, ...RESPONDER_NODE_FLAGS, script];
}

/** Tells a running responder to reload (the host's, when the call has one); starts none. */
async function reloadIfRunning(a: CmdArgs, dirs: { runDir: string }): Promise<void> {
  if (a.responders) await a.responders.reload(dirs.runDir);
  else await controlRequest(dirs.runDir, 'reload', 3000);
}

/**
 * Makes sure a responder runs for the network's records directory and has read its files
 * (starts one when none answers: a responder process, or in the host process when the call
 * runs in one that offers it, CmdArgs.responders); `reload` is the command that asks (with a
 * netns, it also says whether 127.0.0.11 listens there).
 */
function ensureResponderServing(conf: DnsnameConf, a: CmdArgs, reload: ControlCommand = 'reload', probe?: HostProbe): Promise<ControlReply> {
  const need = { recordsDir: conf.recordsDir, runDir: conf.runDir, command: responderCommand(a.self), env: a.env, reload, probe };
  return a.responders ? a.responders.ensure(need) : ensureResponder(need);
}

function notListening(reply: ControlReply, gateways: string[], port: number): string[] {
  return gateways.filter((g) => !reply.listening.includes(listenKey({ address: canonical(g), port })));
}

function canonical(ip: string): string {
  const p = tryParseIP(ip);
  return p ? formatIP(p) : ip;
}

/** Fails unless the responder listens where this container's resolver is. */
function checkListening(conf: DnsnameConf, reply: ControlReply, gateways: string[]): void {
  if (conf.resolver === EMBEDDED_RESOLVER) {
    if (reply.netns?.listening) return;
    throw new CniError(CniCode.Internal, `the DNS responder cannot listen on ${EMBEDDED_RESOLVER}:${conf.port} in the container's namespace`,
      `${reply.netns?.error ?? 'no answer about the namespace'}; see ${join(conf.runDir, 'responder.log')}`);
  }
  const missing = notListening(reply, gateways, conf.port);
  if (missing.length === gateways.length) {
    throw new CniError(CniCode.Internal, `the DNS responder cannot listen on ${missing.map((g) => `${g}:${conf.port}`).join(', ')}`,
      `is the gateway address on a host interface (bridge isGateway)? see ${join(conf.runDir, 'responder.log')}`);
  }
}

async function cmdAdd(a: CmdArgs): Promise<Result> {
  const conf = parseDnsnameConf(a);
  const name = containerName(a);
  const aliases = aliasesOf(conf);
  const prev = requirePrev(conf);
  const { addresses, gateways } = addressesOf(prev, a.ifName, conf.resolver === 'gateway');
  const netns = containerNetns(a);
  const names: string[] = [];
  for (const n of [name, ...aliases]) if (!names.some((m) => m.toLowerCase() === n.toLowerCase())) names.push(n);
  // Own copies: a call's strings may be slices of its whole request, which the record (kept by a warm engine) must not hold.
  const entry: ContainerRecord = {
    containerId: ownCopy(a.containerId), ifName: ownCopy(a.ifName), addresses: addresses.map(ownCopy), gateways: gateways.map(ownCopy),
    names: names.map(ownCopy), netns: { ino: netns.ino, path: ownCopy(netns.path) },
  };

  const probe = hostProbe(() => a.kernel.route());
  try {
    const binding = await currentBinding(gateways, probe);
    if (conf.resolver === 'gateway' && !binding.bridge) {
      throw new CniError(CniCode.Internal, `the DNS responder cannot listen on ${gateways.map((g) => `${g}:${conf.port}`).join(', ')}`,
        'no host interface has that address: is the gateway address on a host interface (bridge isGateway)?');
    }
    await withRecordsLock(conf.recordsDir, async (d) => {
      const before = readParsed(d.dir, fileOf(conf.network))?.text;
      const rec = currentNetwork(d, conf, binding, probe, a.log);
      await claimBridge(d, conf, binding, probe, a.log);
      // A repeated ADD replaces the attachment's line. Why the file's text is searched first: that
      // is rare, and finding no such line in the text costs less than reading 1000 records.
      if (before?.includes(`\ncontainer ${a.containerId} ${a.ifName} `)) {
        rec.containers = rec.containers.filter((c) => !(c.containerId === a.containerId && c.ifName === a.ifName));
      }
      rec.containers.push(entry);
      writeNetwork(d, rec);
      try {
        // With our pid the responder can reach the netns path through our mount namespace
        // (/proc/PID/root) when it runs in another one and cannot see the runtime's bind mount.
        const reply = await ensureResponderServing(conf, a, conf.resolver === EMBEDDED_RESOLVER ? `reload netns=${netns.ino} pid=${process.pid}` : 'reload', probe);
        checkListening(conf, reply, gateways);
      } catch (err) {
        // Undo: put the file back as it was, and let the responder forget the entry.
        putFile(d, fileOf(conf.network), before);
        await reloadIfRunning(a, conf).catch(() => undefined);
        throw err;
      }
    });
  } finally {
    probe.close();
  }

  const out: Result = { ...prev, cniVersion: conf.cniVersion };
  const dns = { ...(prev.dns ?? {}) };
  const ours = conf.resolver === EMBEDDED_RESOLVER ? [EMBEDDED_RESOLVER] : gateways;
  dns.nameservers = [...ours, ...(dns.nameservers ?? []).filter((n) => !ours.includes(n))];
  dns.search = [...(dns.search ?? []).filter((s) => s !== conf.domain), conf.domain];
  out.dns = dns;
  return out;
}

/**
 * Removes entries matching `drop` from the network file, and lines whose netns is gone (all of
 * them with `checkAll`, the GC; else a DEL's bounded share, as ADD's), and the whole file when
 * its bridge is gone; reloads the responder if anything changed.
 */
async function removeEntries(a: CmdArgs, dirs: StateDirs, drop: (c: ContainerRecord) => boolean, checkAll: boolean): Promise<void> {
  const log = a.log;
  await withRecordsLock(dirs.recordsDir, async (d) => {
    const rec = readNetwork(d, dirs.network, log);
    if (!rec) return;
    const kept = rec.containers.filter((c) => !drop(c));
    let changed = kept.length !== rec.containers.length;
    rec.containers = kept;
    const probe = hostProbe(() => a.kernel.route());
    try {
      changed = pruneDead(rec, probe, log, checkAll ? rec.containers : checkShare(d, rec)) > 0 || changed;
      const state = await judgeBinding(rec, probe);
      if (state.state === 'gone' && rec.containers.length) {
        log.info('removing the records of a network whose bridge is gone', { network: rec.network, why: state.why });
        rec.containers = [];
        changed = true;
      }
    } finally {
      probe.close();
    }
    if (!changed) return;
    writeNetwork(d, rec);
    await reloadIfRunning(a, dirs);
  });
}

async function cmdDel(a: CmdArgs): Promise<void> {
  const dirs = stateDirsForCleanup(a);
  // No record file: nothing of this network to remove (and no directory or lock to create).
  if (!dirs || !existsSync(join(dirs.recordsDir, fileOf(dirs.network)))) return;
  await removeEntries(a, dirs, (c) => c.containerId === a.containerId && c.ifName === a.ifName, false);
}

async function cmdGc(a: CmdArgs, valid: Attachment[]): Promise<void> {
  const dirs = stateDirsForCleanup(a);
  // As DEL: only where the records are (docs/cni-notes.md §1.5), and nothing made when there are none.
  if (!dirs || !existsSync(join(dirs.recordsDir, fileOf(dirs.network)))) return;
  const keep = new Set(valid.map((v) => `${v.containerID}\n${v.ifname}`));
  await removeEntries(a, dirs, (c) => !keep.has(`${c.containerId}\n${c.ifName}`), true);
}

/** One answer's rcode and answer count, or undefined when none came in time. */
type Probe = { rcode: number; answers: number } | undefined;

/**
 * Asks `server:port` for `name` (type A or AAAA) over UDP, from this netns or, with `netns`,
 * from inside it (a socket made there: how 127.0.0.11 is reached).
 */
async function probe(server: string, port: number, name: string, type: number, timeoutMs: number, netns?: string): Promise<Probe> {
  const dgram = await import('node:dgram');
  const fd = netns ? native().netnsSockets(netns, [{ type: 'udp', address: server.includes(':') ? '::1' : '127.0.0.1', port: 0 }]).fds[0] : undefined;
  return new Promise((resolve) => {
    const s = dgram.createSocket(server.includes(':') ? 'udp6' : 'udp4');
    const id = Math.floor(Math.random() * 0x10000);
    const q = encodeQuery(id, name, type);
    const done = (r: Probe) => { clearTimeout(t); s.close(); resolve(r); };
    const t = setTimeout(() => done(undefined), timeoutMs);
    s.on('error', () => done(undefined));
    s.on('message', (m) => {
      if (m.length >= HEADER_SIZE && isResponse(m) && idOf(m) === id) done({ rcode: rcodeOf(m), answers: answerCount(m) });
    });
    const send = () => s.send(q, port, server);
    if (fd !== undefined) s.bind({ fd }, send);
    else send();
  });
}

async function cmdCheck(a: CmdArgs): Promise<void> {
  const conf = parseDnsnameConf(a);
  const prev = requirePrev(conf);
  const embedded = conf.resolver === EMBEDDED_RESOLVER;
  const { gateways } = addressesOf(prev, a.ifName, !embedded);
  let entry: ContainerRecord | undefined;
  await withRecordsLock(conf.recordsDir, async (d) => {
    entry = readNetwork(d, conf.network, a.log)?.containers.find((c) => c.containerId === a.containerId && c.ifName === a.ifName);
    if (!entry) throw new CniError(CniCode.Internal, `container "${a.containerId}" (${a.ifName}) has no DNS records in network "${conf.network}"`, `expected in ${join(conf.recordsDir, fileOf(conf.network))}`);
    // At 127.0.0.11, a responder started meanwhile from another mount namespace may need our view of the netns path.
    await ensureResponderServing(conf, a, embedded && entry.netns ? `reload netns=${entry.netns.ino} pid=${process.pid}` : 'reload');
  });
  const e = entry!;
  const v4 = embedded || e.addresses.some((x) => !x.includes(':'));
  const server = embedded ? EMBEDDED_RESOLVER : gateways.find((g) => g.includes(':') !== v4) ?? gateways[0]!;
  const where = embedded ? `${server}:${conf.port} in the container's namespace` : `${server}:${conf.port}`;
  const fqdn = `${e.names[0]}.${conf.domain}`;
  const type = e.addresses.some((x) => !x.includes(':')) ? TYPE.A : TYPE.AAAA;
  let r: Probe;
  try {
    for (let i = 0; i < 3 && !r; i++) r = await probe(server, conf.port, fqdn, type, 1000, embedded ? a.netns : undefined);
  } catch (err) {
    throw new CniError(CniCode.Internal, `cannot ask the DNS responder on ${where}`, (err as Error).message);
  }
  if (!r) throw new CniError(CniCode.Internal, `the DNS responder does not answer on ${where}`, `see ${join(conf.runDir, 'responder.log')}`);
  if (r.rcode !== 0 || r.answers === 0) throw new CniError(CniCode.Internal, `the DNS responder does not resolve "${fqdn}"`, `rcode ${r.rcode}, ${r.answers} answers`);
}

export const dnsnamePlugin: Plugin = {
  about: aboutOf('dnsname'),
  add: cmdAdd,
  del: cmdDel,
  check: cmdCheck,
  gc: cmdGc,
  async status(a: CmdArgs) {
    parseDnsnameConf(a);
  },
};

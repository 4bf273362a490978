/**
 * The `dnsname` CNI plugin (chained after bridge, and portmap if present): a drop-in for the
 * containers/dnsname plugin's config (`domainName`, capability `aliases` as a map network ->
 * names), backed by cnikit's own responder instead of one dnsmasq per network.
 *
 * ADD writes the container's names (CNI_ARGS K8S_POD_NAME + this network's aliases) and
 * addresses (prevResult) into `<recordsDir>/<network>.records` under the directory lock, makes
 * sure one responder runs and has reloaded, and returns prevResult with the gateways as
 * `dns.nameservers` and the domain in `dns.search`. DEL removes them (idempotent); CHECK verifies
 * the records and asks the responder a real DNS question; GC drops records of attachments that
 * are no longer valid. Extra keys (ours): `upstreams`, `port`, `recordsDir`, `runDir`.
 *
 * From responder/ it takes the plugin's half of the contract only: records.ts (the file format
 * it writes), control.ts (asking for a reload), ensure.ts (starting one), wire.ts (CHECK's
 * query) and backend.ts's listenKey. This file runs in every plugin exec, so it loads no DNS
 * library (wire.ts is ours and small).
 */
import { aboutOf } from '../../executables.ts';
import { existsSync, realpathSync } from 'node:fs';
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
import { LockedDir } from '../../pkg/store/locked-dir.ts';
import { listenKey } from '../../responder/backend.ts';
import { type ControlReply, controlRequest } from '../../responder/control.ts';
import { RESPONDER_NODE_FLAGS, ensureResponder } from '../../responder/ensure.ts';
import { type ContainerRecord, type NetworkRecords, RECORDS_SUFFIX, formatRecords, isValidDnsName, parseRecords, parseUpstream } from '../../responder/records.ts';
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
  raw: z.infer<typeof confSchema>;
}

/** Validates the config (code 7 naming the field); no side effects. */
export function parseDnsnameConf(a: CmdArgs): DnsnameConf {
  const raw = parseWith(confSchema, a.conf);
  const domain = (raw.domainName ?? DEFAULT_DOMAIN).replace(/\.$/, '').toLowerCase();
  if (!isValidDnsName(domain)) throw invalidConfig(`domainName: "${raw.domainName}" is not a valid DNS domain`);
  const bad = (raw.upstreams ?? []).filter((u) => !parseUpstream(u));
  if (bad.length) throw invalidConfig(`upstreams: ${bad.map((b) => `"${b}"`).join(', ')} must be "IP" or "IP:port" ("[IPv6]:port")`);
  const recordsDir = raw.recordsDir ?? DEFAULT_RECORDS_DIR;
  const runDir = raw.runDir ?? recordsDir;
  for (const [k, v] of [['recordsDir', recordsDir], ['runDir', runDir]] as const) {
    if (!isAbsolute(v)) throw invalidConfig(`${k}: "${v}" must be an absolute path`);
  }
  if (Buffer.byteLength(join(runDir, 'responder.sock')) > 107) throw invalidConfig(`runDir: "${runDir}" is too long for a unix socket path`);
  return { network: a.conf.name, cniVersion: a.conf.cniVersion, domain, port: raw.port ?? 53, upstreams: raw.upstreams, recordsDir, runDir, raw };
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
function addressesOf(prev: Result, ifName: string): { addresses: string[]; gateways: string[] } {
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
  if (!gateways.length) throw invalidConfig('prevResult has no gateway: the DNS responder listens on the network\'s gateway address (set isGateway on the bridge)');
  return { addresses, gateways };
}

/** Runs fn holding the records directory's lock (released after fn settles). */
function withRecordsLock<T>(dir: string, fn: (d: LockedDir) => Promise<T>): Promise<T> {
  const d = new LockedDir(dir);
  return d.withLock(() => fn(d));
}

const fileOf = (network: string) => `${network}${RECORDS_SUFFIX}`;

/** Reads the network's record file; lines it cannot use are logged (to the call's log) and dropped. */
function readNetwork(d: LockedDir, conf: RecordsLocation, log: Logger): NetworkRecords | undefined {
  const text = d.read(fileOf(conf.network));
  if (text === undefined) return undefined;
  const r = parseRecords(text, conf.network, join(d.dir, fileOf(conf.network)));
  for (const p of r.problems) log.warn('dropping bad record line', { file: p.file, line: p.line, problem: p.msg });
  return r.records;
}

/** Writes (or, when no container is left, removes) the network's record file. */
function writeNetwork(d: LockedDir, rec: NetworkRecords): void {
  if (rec.containers.length) d.writeAtomic(fileOf(rec.network), formatRecords(rec), 0o644);
  else d.remove(fileOf(rec.network));
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

/** Tells a running responder to reload; starts none. */
async function reloadIfRunning(conf: RecordsLocation): Promise<void> {
  await controlRequest(conf.runDir, 'reload', 3000);
}

/** Makes sure a responder runs for the network's records directory and has read its files (starts one when none answers). */
function ensureResponderServing(conf: DnsnameConf, a: CmdArgs): Promise<ControlReply> {
  return ensureResponder({ recordsDir: conf.recordsDir, runDir: conf.runDir, command: responderCommand(a.self), env: a.env });
}

function notListening(reply: ControlReply, gateways: string[], port: number): string[] {
  return gateways.filter((g) => !reply.listening.includes(listenKey({ address: canonical(g), port })));
}

function canonical(ip: string): string {
  const p = tryParseIP(ip);
  return p ? formatIP(p) : ip;
}

async function cmdAdd(a: CmdArgs): Promise<Result> {
  const conf = parseDnsnameConf(a);
  const name = containerName(a);
  const aliases = aliasesOf(conf);
  const prev = requirePrev(conf);
  const { addresses, gateways } = addressesOf(prev, a.ifName);
  const names: string[] = [];
  for (const n of [name, ...aliases]) if (!names.some((m) => m.toLowerCase() === n.toLowerCase())) names.push(n);
  const entry: ContainerRecord = { containerId: a.containerId, ifName: a.ifName, addresses, gateways, names };

  await withRecordsLock(conf.recordsDir, async (d) => {
    const before = d.read(fileOf(conf.network));
    const rec = readNetwork(d, conf, a.log) ?? { network: conf.network, domain: conf.domain, port: conf.port, upstreams: conf.upstreams, containers: [] };
    rec.domain = conf.domain;
    rec.port = conf.port;
    rec.upstreams = conf.upstreams;
    rec.containers = rec.containers.filter((c) => !(c.containerId === a.containerId && c.ifName === a.ifName));
    rec.containers.push(entry);
    writeNetwork(d, rec);
    try {
      const reply = await ensureResponderServing(conf, a);
      const missing = notListening(reply, gateways, conf.port);
      if (missing.length === gateways.length) {
        throw new CniError(CniCode.Internal, `the DNS responder cannot listen on ${missing.map((g) => `${g}:${conf.port}`).join(', ')}`,
          `is the gateway address on a host interface (bridge isGateway)? see ${join(conf.runDir, 'responder.log')}`);
      }
    } catch (err) {
      // Undo: put the file back as it was, and let the responder forget the entry.
      if (before === undefined) d.remove(fileOf(conf.network));
      else d.writeAtomic(fileOf(conf.network), before, 0o644);
      await reloadIfRunning(conf).catch(() => undefined);
      throw err;
    }
  });

  const out: Result = { ...prev, cniVersion: conf.cniVersion };
  const dns = { ...(prev.dns ?? {}) };
  dns.nameservers = [...gateways, ...(dns.nameservers ?? []).filter((n) => !gateways.includes(n))];
  dns.search = [...(dns.search ?? []).filter((s) => s !== conf.domain), conf.domain];
  out.dns = dns;
  return out;
}

/** Where a network's records are and whom to tell: all DEL needs. */
type RecordsLocation = Pick<DnsnameConf, 'network' | 'recordsDir' | 'runDir'>;

const locationKeys = z.object({ recordsDir: z.unknown(), runDir: z.unknown() });

/**
 * The records location for DEL and GC, from the keys they can use (matched as Go matches them): a
 * recordsDir or runDir that is not an absolute path is taken as absent (its default), so that a
 * config they cannot use never fails them.
 */
function delLocation(a: CmdArgs): RecordsLocation {
  const c = goKeys(locationKeys, a.conf) as { recordsDir?: unknown; runDir?: unknown };
  const usable = (v: unknown) => (typeof v === 'string' && isAbsolute(v) ? v : undefined);
  const recordsDir = usable(c.recordsDir) ?? DEFAULT_RECORDS_DIR;
  return { network: a.conf.name, recordsDir, runDir: usable(c.runDir) ?? recordsDir };
}

/** Removes entries matching `drop` from the network file; reloads the responder if anything changed. */
async function removeEntries(conf: RecordsLocation, log: Logger, drop: (c: ContainerRecord) => boolean): Promise<void> {
  await withRecordsLock(conf.recordsDir, async (d) => {
    const rec = readNetwork(d, conf, log);
    if (!rec) return;
    const kept = rec.containers.filter((c) => !drop(c));
    if (kept.length === rec.containers.length) return;
    rec.containers = kept;
    writeNetwork(d, rec);
    await reloadIfRunning(conf);
  });
}

async function cmdDel(a: CmdArgs): Promise<void> {
  const loc = delLocation(a);
  // No record file: nothing of this network to remove (and no directory or lock to create).
  if (!existsSync(join(loc.recordsDir, fileOf(loc.network)))) return;
  await removeEntries(loc, a.log, (c) => c.containerId === a.containerId && c.ifName === a.ifName);
}

async function cmdGc(a: CmdArgs, valid: Attachment[]): Promise<void> {
  // As DEL: only where the records are (docs/cni-notes.md §1.5), and nothing made when there are none.
  const loc = delLocation(a);
  if (!existsSync(join(loc.recordsDir, fileOf(loc.network)))) return;
  const keep = new Set(valid.map((v) => `${v.containerID}\n${v.ifname}`));
  await removeEntries(loc, a.log, (c) => !keep.has(`${c.containerId}\n${c.ifName}`));
}

/** Asks `server:port` for `name` (type A or AAAA) over UDP; resolves the answer's addresses' count and rcode. */
async function probe(server: string, port: number, name: string, type: number, timeoutMs: number): Promise<{ rcode: number; answers: number } | undefined> {
  const dgram = await import('node:dgram');
  return new Promise((resolve) => {
    const s = dgram.createSocket(server.includes(':') ? 'udp6' : 'udp4');
    const id = Math.floor(Math.random() * 0x10000);
    const q = encodeQuery(id, name, type);
    const done = (r: { rcode: number; answers: number } | undefined) => { clearTimeout(t); s.close(); resolve(r); };
    const t = setTimeout(() => done(undefined), timeoutMs);
    s.on('error', () => done(undefined));
    s.on('message', (m) => {
      if (m.length >= HEADER_SIZE && isResponse(m) && idOf(m) === id) done({ rcode: rcodeOf(m), answers: answerCount(m) });
    });
    s.send(q, port, server);
  });
}

async function cmdCheck(a: CmdArgs): Promise<void> {
  const conf = parseDnsnameConf(a);
  const prev = requirePrev(conf);
  const { gateways } = addressesOf(prev, a.ifName);
  let entry: ContainerRecord | undefined;
  await withRecordsLock(conf.recordsDir, async (d) => {
    entry = readNetwork(d, conf, a.log)?.containers.find((c) => c.containerId === a.containerId && c.ifName === a.ifName);
    if (!entry) throw new CniError(CniCode.Internal, `container "${a.containerId}" (${a.ifName}) has no DNS records in network "${conf.network}"`, `expected in ${join(conf.recordsDir, fileOf(conf.network))}`);
    await ensureResponderServing(conf, a);
  });
  const e = entry!;
  const v4 = e.addresses.some((x) => !x.includes(':'));
  const server = gateways.find((g) => g.includes(':') !== v4) ?? gateways[0]!;
  const fqdn = `${e.names[0]}.${conf.domain}`;
  let r: { rcode: number; answers: number } | undefined;
  for (let i = 0; i < 3 && !r; i++) r = await probe(server, conf.port, fqdn, v4 ? TYPE.A : TYPE.AAAA, 1000);
  if (!r) throw new CniError(CniCode.Internal, `the DNS responder does not answer on ${server}:${conf.port}`, `see ${join(conf.runDir, 'responder.log')}`);
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

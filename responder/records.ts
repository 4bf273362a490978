/**
 * The per-network record files shared by the dnsname plugin (writer) and the DNS responder
 * (reader, and pruner of what has died). One file per network, `<recordsDir>/<network>.records`,
 * replaced atomically while the directory's `lock` is held (LockedDir).
 *
 * Format (UTF-8 text, one statement per line, fields separated by single spaces; `#` starts a
 * comment line; blank lines are ignored):
 *
 * ```
 * version 2                                       # format version (absent = 1: no bindings)
 * network appnet                                  # the network name (defaults to the file name)
 * domain dns.cnikit                               # the network's DNS domain (required)
 * port 53                                         # port the responder listens on
 * resolver gateway                                # where: "gateway" (each gateway address) or
 *                                                 #   "127.0.0.11" (inside each container's netns)
 * internal                                        # no forwarding: REFUSED outside the network
 * upstreams 192.0.2.53,192.0.2.54:5353            # forwarders; "none" = no forwarding;
 *                                                 #   line absent = the nameservers of resolvconf
 * resolvconf /etc/resolv.conf                     # where those are read (absent = the responder's)
 * host 4026531840                                 # inode of the host netns the network is in
 * bridge br-app 7                                 # the host link carrying the gateways: name, ifindex
 * container <id> <ifname> <cidr,...> <gateway,...> <name,alias,...> [<netns-inode> <netns-path>]
 *   e.g. container 3f2a9c eth0 10.89.0.5/24,fd89::5/64 10.89.0.1,fd89::1 web,www 4026532345 /run/netns/c1
 * ```
 *
 * Bindings: `host` and `bridge` tie the records to the network they were written for, and a
 * container's netns inode and path tie its line to that container. The responder serves a
 * network only while its bridge still has that name and ifindex in that host netns (and no
 * other link holds its gateways), and a container only while its netns path still names that
 * inode; whatever fails is ignored at once and pruned from disk (responder/liveness.ts). The
 * plugin always writes bindings; records without them (hand-written, `cnikit dns serve`, or
 * version 1 from an older cnikit) are served as written and never pruned.
 *
 * A container line lists the container's addresses with their prefix (the prefixes give the
 * network's subnets, used for client isolation), the gateways (the addresses the responder
 * listens on in gateway mode), and its names: the container name first (used for PTR
 * answers), then aliases. Fields: ids and the network name as the CNI spec allows them
 * (`isValidId`), addresses and gateways as IP literals that pkg/ip reads (no zone, no leading
 * zero in IPv4), upstreams as `IP`, `IP:port` or `[IPv6]:port` (port 53 when absent), names as
 * DNS names (`isValidDnsName`), the netns path absolute with `%`, whitespace and control
 * characters written as `%XX`.
 *
 * A malformed line is reported and skipped; a file without a usable `domain`, or of a version
 * this code does not know, is reported and skipped as a whole. Nothing in a file can stop the
 * responder from serving the other networks.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { isValidId } from '../pkg/cni/validate.ts';
import { formatIP, parseHostPort, tryParseCidr, tryParseIP } from '../pkg/ip/cidr.ts';

/** File name suffix of a network's record file. */
export const RECORDS_SUFFIX = '.records';

/** The format version formatRecords writes. */
export const RECORDS_VERSION = 2;

/** Docker's embedded resolver address, inside each container's own netns. */
export const EMBEDDED_RESOLVER = '127.0.0.11';

/** Where a network's resolver listens: its gateway addresses, or 127.0.0.11 in each container. */
export type ResolverMode = 'gateway' | typeof EMBEDDED_RESOLVER;

/** The host link a network's gateways sit on, as it was when the records were written. */
export interface BridgeBinding {
  name: string;
  index: number;
}

/** A container's network namespace: the path the runtime gave, and the inode it named then. */
export interface NetnsBinding {
  ino: number;
  path: string;
}

/** One container attachment's names and addresses. */
export interface ContainerRecord {
  containerId: string;
  ifName: string;
  /** Addresses with prefix, as in the CNI result (`10.89.0.5/24`). */
  addresses: string[];
  gateways: string[];
  /** Container name first, then aliases. */
  names: string[];
  /** The container's netns (absent in hand-written records): the line lives while it does. */
  netns?: NetnsBinding;
}

/** Everything the responder knows about one network. */
export interface NetworkRecords {
  network: string;
  domain: string;
  port: number;
  /** undefined = use the nameservers of `resolvConf` (or the responder's resolv.conf); [] = never forward. */
  upstreams: string[] | undefined;
  /** The resolv.conf whose nameservers are the upstreams when `upstreams` is undefined. */
  resolvConf?: string;
  /** Absent = gateway. */
  resolver?: ResolverMode;
  /** True: answer the network's names only, REFUSED for everything else. */
  internal?: boolean;
  /** Inode of the host netns the network lives in (absent in hand-written records). */
  hostNetns?: number;
  /** The link carrying the gateways (absent in hand-written records, optional at 127.0.0.11). */
  bridge?: BridgeBinding;
  containers: ContainerRecord[];
}

/** A problem found while reading record files: reported, never fatal. */
export interface RecordProblem {
  file: string;
  line?: number;
  msg: string;
}

const NAME_RE = /^[a-zA-Z0-9_]([a-zA-Z0-9_-]{0,62})(\.[a-zA-Z0-9_]([a-zA-Z0-9_-]{0,62}))*$/;

/** True when s can be a DNS name we serve: dot-separated labels of letters, digits, `_`, `-`, 1-63 bytes each, 253 in all. */
export function isValidDnsName(s: string): boolean {
  return s.length > 0 && s.length <= 253 && NAME_RE.test(s);
}

/** Parses an upstream server "IP" or "IP:port" ("[v6]:port" for IPv6 with a port); the address comes back canonical. */
export function parseUpstream(s: string): { address: string; port: number } | undefined {
  const hp = parseHostPort(s, 53);
  return hp && { address: formatIP(hp.ip), port: hp.port };
}

/** Writes a path as one field: `%`, whitespace and control characters as `%XX`. */
export function encodePathField(p: string): string {
  return p.replace(/[%\s\x00-\x1f\x7f]/g, (c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

function decodePathField(f: string): string | undefined {
  try {
    return decodeURIComponent(f);
  } catch {
    return undefined;
  }
}

/** Renders a network's records in the format documented above (always the current version). */
export function formatRecords(r: NetworkRecords): string {
  const lines = [
    '# cnikit dnsname records: written by the dnsname plugin under the directory lock, read by the responder',
    `version ${RECORDS_VERSION}`,
    `network ${r.network}`,
    `domain ${r.domain}`,
    `port ${r.port}`,
  ];
  if (r.resolver && r.resolver !== 'gateway') lines.push(`resolver ${r.resolver}`);
  if (r.internal) lines.push('internal');
  if (r.upstreams !== undefined) lines.push(`upstreams ${r.upstreams.length ? r.upstreams.join(',') : 'none'}`);
  if (r.resolvConf !== undefined) lines.push(`resolvconf ${encodePathField(r.resolvConf)}`);
  if (r.hostNetns !== undefined) lines.push(`host ${r.hostNetns}`);
  if (r.bridge) lines.push(`bridge ${r.bridge.name} ${r.bridge.index}`);
  return `${lines.join('\n')}\n${containerBody(r.network, r.containers)}`;
}

/** The container lines last formatted per network: the records, where each line ends in `body`, and the text. */
const bodies = new Map<string, { of: ContainerRecord[]; ends: number[]; body: string }>();

/**
 * The container lines of `list`, one per line. Why remembered: a warm engine's ADD writes the
 * network's lines of the previous write plus one (a DEL, minus one), so the lines up to the
 * first difference are cut from the last text instead of joined again (at 1000 names, most of
 * what formatting cost).
 */
function containerBody(network: string, list: readonly ContainerRecord[]): string {
  const last = bodies.get(network);
  let same = 0;
  if (last) while (same < list.length && same < last.of.length && list[same] === last.of[same]) same++;
  const ends = last ? last.ends.slice(0, same) : [];
  let body = last && same ? last.body.slice(0, last.ends[same - 1]) : '';
  const tail: string[] = [];
  let at = body.length;
  for (let i = same; i < list.length; i++) {
    const line = `${containerLine(list[i]!)}\n`;
    tail.push(line);
    ends.push(at += line.length);
  }
  body += tail.join('');
  bodies.delete(network);
  if (bodies.size >= 64) bodies.delete(bodies.keys().next().value!);
  bodies.set(network, { of: [...list], ends, body });
  return body;
}

/** Container lines already rendered, per record (records are never changed once made). */
const renderedLines = new WeakMap<ContainerRecord, string>();

/** Renders one container line (remembered: a warm engine writes the same 1000 lines on every ADD). */
export function containerLine(c: ContainerRecord): string {
  let line = renderedLines.get(c);
  if (line === undefined) {
    const netns = c.netns ? ` ${c.netns.ino} ${encodePathField(c.netns.path)}` : '';
    // Flat: the template makes a tree of a dozen concatenations, which the cache would keep.
    line = ownCopy(`container ${c.containerId} ${c.ifName} ${c.addresses.join(',')} ${c.gateways.join(',')} ${c.names.join(',')}${netns}`);
    renderedLines.set(c, line);
  }
  return line;
}

/** The result of parsing one file: records when usable, the problems, and the version it declared. */
export interface ParsedRecords {
  records?: NetworkRecords;
  problems: RecordProblem[];
  version: number;
}

/**
 * Returns a copy of `s` that holds nothing else. Why: V8 makes a substring of 13 or more
 * characters (a line of the file, a field of the line) a view into its parent string, so a
 * record kept across reloads (the line caches) would keep the whole text of the file version it
 * was first read from: at 1000 containers added one by one, ~60 MB of old file texts. The
 * concatenation is flattened into a string of the line's own size by the slice.
 */
export function ownCopy(s: string): string {
  return (' ' + s).slice(1);
}

const isInode = (s: string | undefined) => s !== undefined && /^[1-9]\d{0,15}$/.test(s);

/**
 * Parses one record file. Returns the records (undefined when the file is unusable) and the
 * problems found; `fallbackName` is the network name taken from the file name. With `lines`
 * (container line text -> its record, from the previous read of the same file), an unchanged
 * line gives back the same record object, which keeps the backend's per-record preparation;
 * the map is refilled with this file's lines.
 */
export function parseRecords(text: string, fallbackName: string, file = fallbackName, lines?: Map<string, ContainerRecord>): ParsedRecords {
  const problems: RecordProblem[] = [];
  const r: NetworkRecords = { network: fallbackName, domain: '', port: 53, upstreams: undefined, containers: [] };
  let version = 1;
  const known = lines && new Map(lines);
  lines?.clear();
  const all = text.split('\n');
  for (let i = 0; i < all.length; i++) {
    const line = all[i]!.trim();
    if (line === '' || line.startsWith('#')) continue;
    const again = known?.get(line);
    if (again) {
      r.containers.push(again);
      lines!.set(line, again);
      continue;
    }
    const bad = (msg: string) => problems.push({ file, line: i + 1, msg });
    const f = ownCopy(line).split(/\s+/);
    switch (f[0]) {
      case 'version': {
        const v = Number(f[1]);
        if (f.length !== 2 || !Number.isInteger(v) || v < 1) { bad('expected "version <n>"'); break; }
        if (v > RECORDS_VERSION) {
          problems.push({ file, line: i + 1, msg: `records of version ${v} (written by another cnikit; this one reads 1 to ${RECORDS_VERSION}); file skipped` });
          return { problems, version: v };
        }
        version = v;
        break;
      }
      case 'network':
        if (f.length !== 2 || !isValidId(f[1]!)) bad('expected "network <name>"');
        else r.network = f[1]!;
        break;
      case 'domain':
        if (f.length !== 2 || !isValidDnsName(f[1]!)) bad('expected "domain <dns name>"');
        else r.domain = f[1]!.toLowerCase();
        break;
      case 'port': {
        const p = Number(f[1]);
        if (f.length !== 2 || !Number.isInteger(p) || p < 1 || p > 65535) bad('expected "port <1-65535>"');
        else r.port = p;
        break;
      }
      case 'resolver':
        if (f.length !== 2 || (f[1] !== 'gateway' && f[1] !== EMBEDDED_RESOLVER)) bad(`expected "resolver gateway" or "resolver ${EMBEDDED_RESOLVER}"`);
        else if (f[1] !== 'gateway') r.resolver = f[1] as ResolverMode;
        break;
      case 'internal':
        if (f.length !== 1) bad('expected "internal"');
        else r.internal = true;
        break;
      case 'upstreams': {
        if (f.length !== 2) { bad('expected "upstreams <addr>[,<addr>...]" or "upstreams none"'); break; }
        if (f[1] === 'none') { r.upstreams = []; break; }
        const list = f[1]!.split(',');
        const badOnes = list.filter((u) => !parseUpstream(u));
        if (badOnes.length) bad(`invalid upstream ${badOnes.join(', ')}`);
        r.upstreams = list.filter((u) => parseUpstream(u));
        break;
      }
      case 'resolvconf': {
        const path = f.length === 2 ? decodePathField(f[1]!) : undefined;
        if (!path || !path.startsWith('/')) bad('expected "resolvconf <absolute path>"');
        else r.resolvConf = path;
        break;
      }
      case 'host':
        if (f.length !== 2 || !isInode(f[1])) bad('expected "host <netns inode>"');
        else r.hostNetns = Number(f[1]);
        break;
      case 'bridge': {
        const index = Number(f[2]);
        if (f.length !== 3 || !f[1] || f[1].length > 15 || !Number.isInteger(index) || index < 1) bad('expected "bridge <link name> <ifindex>"');
        else r.bridge = { name: f[1], index };
        break;
      }
      case 'container': {
        const c = parseContainerLine(f);
        if (typeof c === 'string') bad(c);
        else { r.containers.push(c); lines?.set(line, c); }
        break;
      }
      default:
        bad(`unknown statement "${f[0]}"`);
    }
  }
  if (!r.domain) {
    problems.push({ file, msg: 'no valid "domain" line; file skipped' });
    return { problems, version };
  }
  return { records: r, problems, version };
}

function parseContainerLine(f: string[]): ContainerRecord | string {
  if (f.length !== 6 && f.length !== 8) return 'expected "container <id> <ifname> <cidr,...> <gateway,...> <name,...> [<netns inode> <netns path>]"';
  const [, id, ifName, addrs, gws, names] = f as [string, string, string, string, string, string];
  if (!isValidId(id)) return `invalid container id "${id}"`;
  const addresses = addrs.split(',');
  if (addresses.some((a) => !tryParseCidr(a))) return `invalid address list "${addrs}"`;
  const gateways = gws.split(',');
  if (gateways.some((g) => !tryParseIP(g))) return `invalid gateway list "${gws}"`;
  const nameList = names.split(',');
  if (nameList.some((n) => !isValidDnsName(n))) return `invalid name list "${names}"`;
  const c: ContainerRecord = { containerId: id, ifName, addresses, gateways, names: nameList };
  if (f.length === 8) {
    const path = decodePathField(f[7]!);
    if (!isInode(f[6]) || !path || !path.startsWith('/')) return `invalid netns "${f[6]} ${f[7]}" (want "<inode> <absolute path>")`;
    c.netns = { ino: Number(f[6]), path };
  }
  return c;
}

/** What identifies one version of a file on disk: a changed file has a new signature. */
export function fileSignature(st: { ino: number; size: number; mtimeMs: number }): string {
  return `${st.ino}:${st.size}:${st.mtimeMs}`;
}

/** One `*.records` file as read from the directory. */
export interface RecordsFile extends ParsedRecords {
  file: string;
  /** fileSignature of what was read. */
  sig: string;
}

/** A temp file of an atomic write (LockedDir's `.<name>.tmp<pid>`): left behind only by a crash. */
export const TEMP_RE = /^\..+\.records\.tmp\d*$/;

/**
 * Lists the record files of `dir` (sorted; hidden files left out; [] when it does not exist),
 * and the temp files of writes there.
 */
export function listRecordFiles(dir: string): { names: string[]; temps: string[]; problem?: RecordProblem } {
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') return { names: [], temps: [] };
    return { names: [], temps: [], problem: { file: dir, msg: `cannot list records directory: ${(err as Error).message}` } };
  }
  return { names: entries.filter((n) => n.endsWith(RECORDS_SUFFIX) && !n.startsWith('.')).sort(), temps: entries.filter((n) => TEMP_RE.test(n)) };
}

/** The network name a record file is named after. */
export function networkOfFile(name: string): string {
  return name.slice(0, -RECORDS_SUFFIX.length);
}

/**
 * Reads and parses one record file; `known` is the signature of a version already parsed, in
 * which case only the signature comes back (`unchanged`), and `lines` the line cache of
 * parseRecords. Never throws.
 */
export function readRecordsFile(dir: string, name: string, known?: string, lines?: Map<string, ContainerRecord>): RecordsFile | { file: string; sig: string; unchanged: true } {
  const file = join(dir, name);
  let text: string;
  let sig: string;
  try {
    const st = statSync(file);
    sig = fileSignature(st);
    if (sig === known) return { file, sig, unchanged: true };
    text = readFileSync(file, 'utf8');
  } catch (err) {
    return { file, sig: 'unreadable', problems: [{ file, msg: `cannot read: ${(err as Error).message}` }], version: 0 };
  }
  return { file, sig, ...parseRecords(text, networkOfFile(name), file, lines) };
}

/**
 * Reads every `*.records` file of `dir`. Unreadable or malformed files are reported in
 * `problems` and left out; a missing directory is simply empty. Two files naming the same
 * network: the first (by file name) is used.
 */
export function loadRecordsDir(dir: string): { networks: NetworkRecords[]; problems: RecordProblem[] } {
  const networks: NetworkRecords[] = [];
  const problems: RecordProblem[] = [];
  const { names, problem } = listRecordFiles(dir);
  if (problem) problems.push(problem);
  const seen = new Set<string>();
  for (const name of names) {
    const r = readRecordsFile(dir, name);
    if ('unchanged' in r) continue;
    problems.push(...r.problems);
    if (!r.records) continue;
    if (seen.has(r.records.network)) {
      problems.push({ file: r.file, msg: `network "${r.records.network}" is already defined by another file; file skipped` });
      continue;
    }
    seen.add(r.records.network);
    networks.push(r.records);
  }
  return { networks, problems };
}

/**
 * The per-network record files shared by the dnsname plugin (writer) and the DNS responder
 * (reader). One file per network, `<recordsDir>/<network>.records`, replaced atomically by the
 * plugin while it holds the directory's `lock` (LockedDir); the responder only reads them.
 *
 * Format (UTF-8 text, one statement per line, fields separated by single spaces; `#` starts a
 * comment line; blank lines are ignored):
 *
 * ```
 * # cnikit dnsname records v1
 * network appnet                                  # the network name (defaults to the file name)
 * domain dns.cnikit                               # the network's DNS domain (required)
 * port 53                                         # port the responder listens on at each gateway
 * upstreams 192.0.2.53,192.0.2.54:5353            # forwarders; "none" = no forwarding;
 *                                                 #   line absent = the host's resolv.conf
 * container <id> <ifname> <cidr,...> <gateway,...> <name,alias,...>
 *   e.g. container 3f2a9c eth0 10.89.0.5/24,fd89::5/64 10.89.0.1,fd89::1 web,www
 * ```
 *
 * A container line lists the container's addresses with their prefix (the prefixes give the
 * network's subnets, used for client isolation), the gateways (the addresses the responder
 * listens on), and its names: the container name first (used for PTR answers), then aliases.
 * Fields: ids and the network name as the CNI spec allows them (`isValidId`), addresses and
 * gateways as IP literals that pkg/ip reads (no zone, no leading zero in IPv4), upstreams as
 * `IP`, `IP:port` or `[IPv6]:port` (port 53 when absent), names as DNS names (`isValidDnsName`).
 *
 * A malformed line is reported and skipped; a file without a usable `domain` is reported and
 * skipped as a whole. Nothing in a file can stop the responder from serving the other networks.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { isValidId } from '../pkg/cni/validate.ts';
import { formatIP, parseHostPort, tryParseCidr, tryParseIP } from '../pkg/ip/cidr.ts';

/** File name suffix of a network's record file. */
export const RECORDS_SUFFIX = '.records';

/** One container attachment's names and addresses. */
export interface ContainerRecord {
  containerId: string;
  ifName: string;
  /** Addresses with prefix, as in the CNI result (`10.89.0.5/24`). */
  addresses: string[];
  gateways: string[];
  /** Container name first, then aliases. */
  names: string[];
}

/** Everything the responder knows about one network. */
export interface NetworkRecords {
  network: string;
  domain: string;
  port: number;
  /** undefined = use the host's resolv.conf; [] = never forward. */
  upstreams: string[] | undefined;
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

/** Renders a network's records in the format documented above. */
export function formatRecords(r: NetworkRecords): string {
  const lines = [
    '# cnikit dnsname records v1: written by the dnsname plugin under the directory lock, read by the responder',
    `network ${r.network}`,
    `domain ${r.domain}`,
    `port ${r.port}`,
  ];
  if (r.upstreams !== undefined) lines.push(`upstreams ${r.upstreams.length ? r.upstreams.join(',') : 'none'}`);
  for (const c of r.containers) {
    lines.push(`container ${c.containerId} ${c.ifName} ${c.addresses.join(',')} ${c.gateways.join(',')} ${c.names.join(',')}`);
  }
  return lines.join('\n') + '\n';
}

/**
 * Parses one record file. Returns the records (undefined when the file is unusable) and the
 * problems found; `fallbackName` is the network name taken from the file name.
 */
export function parseRecords(text: string, fallbackName: string, file = fallbackName): { records?: NetworkRecords; problems: RecordProblem[] } {
  const problems: RecordProblem[] = [];
  const r: NetworkRecords = { network: fallbackName, domain: '', port: 53, upstreams: undefined, containers: [] };
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '' || line.startsWith('#')) continue;
    const bad = (msg: string) => problems.push({ file, line: i + 1, msg });
    const f = line.split(/\s+/);
    switch (f[0]) {
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
      case 'upstreams': {
        if (f.length !== 2) { bad('expected "upstreams <addr>[,<addr>...]" or "upstreams none"'); break; }
        if (f[1] === 'none') { r.upstreams = []; break; }
        const list = f[1]!.split(',');
        const badOnes = list.filter((u) => !parseUpstream(u));
        if (badOnes.length) bad(`invalid upstream ${badOnes.join(', ')}`);
        r.upstreams = list.filter((u) => parseUpstream(u));
        break;
      }
      case 'container': {
        const c = parseContainerLine(f);
        if (typeof c === 'string') bad(c);
        else r.containers.push(c);
        break;
      }
      default:
        bad(`unknown statement "${f[0]}"`);
    }
  }
  if (!r.domain) {
    problems.push({ file, msg: 'no valid "domain" line; file skipped' });
    return { problems };
  }
  return { records: r, problems };
}

function parseContainerLine(f: string[]): ContainerRecord | string {
  if (f.length !== 6) return 'expected "container <id> <ifname> <cidr,...> <gateway,...> <name,...>"';
  const [, id, ifName, addrs, gws, names] = f as [string, string, string, string, string, string];
  if (!isValidId(id)) return `invalid container id "${id}"`;
  const addresses = addrs.split(',');
  if (addresses.some((a) => !tryParseCidr(a))) return `invalid address list "${addrs}"`;
  const gateways = gws.split(',');
  if (gateways.some((g) => !tryParseIP(g))) return `invalid gateway list "${gws}"`;
  const nameList = names.split(',');
  if (nameList.some((n) => !isValidDnsName(n))) return `invalid name list "${names}"`;
  return { containerId: id, ifName, addresses, gateways, names: nameList };
}

/**
 * Reads every `*.records` file of `dir`. Unreadable or malformed files are reported in
 * `problems` and left out; a missing directory is simply empty.
 */
export function loadRecordsDir(dir: string): { networks: NetworkRecords[]; problems: RecordProblem[] } {
  const networks: NetworkRecords[] = [];
  const problems: RecordProblem[] = [];
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch (err) {
    if ((err as { code?: string }).code !== 'ENOENT') problems.push({ file: dir, msg: `cannot list records directory: ${(err as Error).message}` });
    return { networks, problems };
  }
  const seen = new Set<string>();
  for (const name of entries.sort()) {
    if (!name.endsWith(RECORDS_SUFFIX) || name.startsWith('.')) continue;
    const file = join(dir, name);
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      problems.push({ file, msg: `cannot read: ${(err as Error).message}` });
      continue;
    }
    const r = parseRecords(text, name.slice(0, -RECORDS_SUFFIX.length), file);
    problems.push(...r.problems);
    if (!r.records) continue;
    if (seen.has(r.records.network)) {
      problems.push({ file, msg: `network "${r.records.network}" is already defined by another file; file skipped` });
      continue;
    }
    seen.add(r.records.network);
    networks.push(r.records);
  }
  return { networks, problems };
}

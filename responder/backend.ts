/**
 * The responder's lookup backend: pure data built from the record files, no sockets, no clock.
 *
 * Per network (a `View`): a hash map from name (short `web` and qualified `web.dns.cnikit`, both
 * as lowercase wire keys, see wire.ts) to pre-encoded A and AAAA answer records, a map from
 * reverse names to pre-encoded PTR records, the network's subnets (client isolation), the
 * addresses it listens on, and its zone (domain + SOA). A lookup is one or two Map.get calls, so
 * it costs the same at 10 names and at 10,000 (aardvark-dns 1.4 scans a list). Several
 * containers sharing a name give all their addresses, in an order that rotates per query.
 *
 * For `cnikit dns serve` on an explicit address, `hostView` merges every network: clients
 * inside a network's subnet still see only that network, others (the host) see all of them.
 */
import { type Cidr, type IP, contains, familyOfAddress, formatCidr, formatIP, ipToBytes, networkOf, tryParseCidr, tryParseIP } from '../pkg/ip/cidr.ts';
import { type NetworkRecords, parseUpstream } from './records.ts';
import { RCODE, TYPE, answerRecord, encodeName, keyInZone, keyLabels, nameKey, namedRecord, soaRdata } from './wire.ts';

/** TTL of our answers: 0, as dnsmasq's local-ttl, since container names come and go. */
export const ANSWER_TTL = 0;

/**
 * The answers for one name. Short and qualified keys share the entry. A and AAAA records are
 * each one Buffer of concatenated pre-encoded records (16 and 28 bytes): two small objects per
 * name instead of one per record keeps 10,000 names in a few MB.
 */
interface NameEntry {
  a: Buffer | undefined;
  aaaa: Buffer | undefined;
  /** Rotation counter (the only mutable state in a View). */
  next: number;
}

const A_RR = 16;
const AAAA_RR = 28;

/** A zone we are authoritative for: a network's domain. */
export interface Zone {
  key: string;
  /** The SOA record (owner = the domain), for authority sections and SOA answers. */
  soa: Buffer;
}

/** An address (canonical IP text) and port the responder listens on. */
export interface ListenAddr {
  address: string;
  port: number;
}

/** The key of a listen address in maps and in the control reply's `listening` list: `address|port`. */
export function listenKey(a: ListenAddr): string {
  return `${a.address}|${a.port}`;
}

export interface Upstream {
  address: string;
  port: number;
  family: 4 | 6;
}

/** Everything a query arriving on one network's address is answered from. */
export interface View {
  name: string;
  /** Where its queries arrive: the network's gateway addresses, with its port. */
  listen: ListenAddr[];
  subnets: Cidr[];
  zones: Zone[];
  /** undefined = the host's resolv.conf nameservers; [] = no forwarding. */
  upstreams: Upstream[] | undefined;
  names: Map<string, NameEntry>;
  ptr: Map<string, Buffer>;
  /** Client address -> inside subnets (bounded cache; isolation checks are per query). */
  clients: Map<string, boolean>;
}

/** The outcome of a lookup. */
export type Lookup =
  | { kind: 'reply'; rcode: number; aa: boolean; answers: readonly Buffer[]; ancount?: number; authority: readonly Buffer[] }
  | { kind: 'forward' }
  | { kind: 'refused' };

const NOTHING: readonly Buffer[] = [];
const CLIENT_CACHE_MAX = 4096;
const REFUSED: Lookup = { kind: 'refused' };
const FORWARD: Lookup = { kind: 'forward' };

function upstreamsOf(list: string[] | undefined): Upstream[] | undefined {
  if (list === undefined) return undefined;
  const out: Upstream[] = [];
  for (const s of list) {
    const u = parseUpstream(s);
    if (u) out.push({ ...u, family: familyOfAddress(u.address) });
  }
  return out;
}

/** The reverse-lookup name of an address (`5.0.89.10.in-addr.arpa`, nibbles for IPv6). */
export function reverseName(ip: IP): string {
  if (ip.family === 4) return `${[...ipToBytes(ip)].reverse().join('.')}.in-addr.arpa`;
  return `${ip.value.toString(16).padStart(32, '0').split('').reverse().join('.')}.ip6.arpa`;
}

/** Parses a reverse-lookup key back into an address; undefined for other names. */
export function addressOfReverse(key: string): IP | undefined {
  const labels = keyLabels(key);
  const n = labels.length;
  if (n === 6 && labels[4] === 'in-addr' && labels[5] === 'arpa') {
    const parts = labels.slice(0, 4).reverse();
    if (!parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) < 256)) return undefined;
    return tryParseIP(parts.join('.'));
  }
  if (n === 34 && labels[32] === 'ip6' && labels[33] === 'arpa') {
    const nibbles = labels.slice(0, 32).reverse();
    if (!nibbles.every((x) => /^[0-9a-f]$/.test(x))) return undefined;
    return { family: 6, value: BigInt('0x' + nibbles.join('')) };
  }
  return undefined;
}

function reverseKey(b: Buffer): string {
  if (b.length === 4) return nameKey(`${b[3]}.${b[2]}.${b[1]}.${b[0]}.in-addr.arpa`);
  const hex = b.toString('hex');
  const parts: string[] = [];
  for (let i = 31; i >= 0; i--) parts.push(hex[i]!);
  parts.push('ip6', 'arpa');
  return nameKey(parts.join('.'));
}

function emptyView(name: string): View {
  return { name, listen: [], subnets: [], zones: [], upstreams: undefined, names: new Map(), ptr: new Map(), clients: new Map() };
}

/** Adds one network's records to `view` (also used to merge all networks into the host view). */
function fillView(view: View, r: NetworkRecords, serial: number, subnetKeys: Set<string>): void {
  const zoneKey = nameKey(r.domain);
  if (!view.zones.some((z) => z.key === zoneKey)) {
    const soa = namedRecord(encodeName(r.domain), TYPE.SOA, ANSWER_TTL, soaRdata(`ns.${r.domain}`, `hostmaster.${r.domain}`, serial, ANSWER_TTL));
    view.zones.push({ key: zoneKey, soa });
  }
  const suffix = `.${r.domain}`;
  // name (lowercase) -> address bytes; assembled into NameEntry buffers at the end.
  const byName = new Map<string, { v4: Buffer[]; v6: Buffer[] }>();
  for (const c of r.containers) {
    let ptrRecord: Buffer | undefined; // one record for all of the container's addresses
    for (const a of c.addresses) {
      const cidr = tryParseCidr(a);
      if (!cidr) continue;
      const subnet = networkOf(cidr);
      const sk = formatCidr(subnet);
      if (!subnetKeys.has(sk)) {
        subnetKeys.add(sk);
        view.subnets.push(subnet);
      }
      const bytes = ipToBytes(cidr);
      for (const n of c.names) {
        const lower = n.toLowerCase();
        let e = byName.get(lower);
        if (!e) byName.set(lower, e = { v4: [], v6: [] });
        const list = bytes.length === 4 ? e.v4 : e.v6;
        if (!list.some((x) => x.equals(bytes))) list.push(bytes);
      }
      const rev = reverseKey(bytes);
      if (!view.ptr.has(rev)) view.ptr.set(rev, ptrRecord ??= answerRecord(TYPE.PTR, ANSWER_TTL, encodeName(`${c.names[0]}${suffix}`.toLowerCase())));
    }
    for (const g of c.gateways) {
      const gw = tryParseIP(g);
      if (!gw) continue;
      const address = formatIP(gw);
      if (!view.listen.some((l) => l.address === address && l.port === r.port)) view.listen.push({ address, port: r.port });
    }
  }
  for (const [lower, ips] of byName) {
    let shared: NameEntry | undefined;
    for (const key of [nameKey(lower), nameKey(`${lower}${suffix}`)]) {
      const old = view.names.get(key);
      if (old) view.names.set(key, { a: records(TYPE.A, ips.v4, old.a), aaaa: records(TYPE.AAAA, ips.v6, old.aaaa), next: 0 });
      else view.names.set(key, shared ??= { a: records(TYPE.A, ips.v4, undefined), aaaa: records(TYPE.AAAA, ips.v6, undefined), next: 0 });
    }
  }
}

/** Concatenated answer records for `ips` (appended to `old`, the host view's merge). */
function records(type: number, ips: Buffer[], old: Buffer | undefined): Buffer | undefined {
  if (!ips.length) return old;
  return Buffer.concat([...(old ? [old] : []), ...ips.map((ip) => answerRecord(type, ANSWER_TTL, ip))]);
}

/** The records of `block` (`size` bytes each), starting at the entry's rotation point. */
function rotated(block: Buffer | undefined, size: number, e: NameEntry): readonly Buffer[] {
  if (!block) return NOTHING;
  const n = block.length / size;
  if (n === 1) return [block];
  const start = (e.next++ % n) * size;
  if (e.next > 0x3fffffff) e.next = 0;
  return start === 0 ? [block] : [block.subarray(start), block.subarray(0, start)];
}

/** The immutable set of views built from one reading of the records directory. */
export class Backend {
  readonly views: Map<string, View>;
  /** `listenKey` -> the view of the network listening there. */
  private readonly byListen: Map<string, View>;
  /** Every address some network listens on, once (the first network there answers on it). */
  readonly listen: ListenAddr[];
  /** All networks merged (standalone resolver, clients outside every network). */
  readonly hostView: View;

  /** `withHostView`: also build the merged view (the standalone resolver needs it). */
  constructor(networks: NetworkRecords[], serial = 1, withHostView = true) {
    this.views = new Map();
    this.byListen = new Map();
    this.listen = [];
    this.hostView = emptyView('(host)');
    const hostSubnets = new Set<string>();
    for (const r of networks) {
      const v = emptyView(r.network);
      v.upstreams = upstreamsOf(r.upstreams);
      fillView(v, r, serial, new Set());
      this.views.set(r.network, v);
      for (const l of v.listen) {
        const k = listenKey(l);
        if (this.byListen.has(k)) continue;
        this.byListen.set(k, v);
        this.listen.push(l);
      }
      if (withHostView) fillView(this.hostView, r, serial, hostSubnets);
      if (v.upstreams && !this.hostView.upstreams) this.hostView.upstreams = v.upstreams;
    }
  }

  /** The view answering queries that arrive on `address:port`. */
  viewFor(address: string, port: number): View | undefined {
    return this.byListen.get(listenKey({ address, port }));
  }

  /** The network whose subnets hold `client`, else undefined. */
  viewOfClient(client: string): View | undefined {
    for (const v of this.views.values()) if (clientAllowed(v, client)) return v;
    return undefined;
  }
}

/** True when `client` (an IP address string) lies in one of the view's subnets. */
export function clientAllowed(view: View, client: string): boolean {
  const hit = view.clients.get(client);
  if (hit !== undefined) return hit;
  const ip = tryParseIP(client.startsWith('::ffff:') && client.includes('.') ? client.slice(7) : client);
  const ok = ip !== undefined && view.subnets.some((s) => contains(s, ip));
  if (view.clients.size >= CLIENT_CACHE_MAX) view.clients.clear();
  view.clients.set(client, ok);
  return ok;
}

/**
 * Answers question (`key`, `qtype`, `qclass`) from `view`: container names (A/AAAA/ANY),
 * PTR for container addresses, NXDOMAIN + SOA for unknown names in the zone, NODATA + SOA for
 * other types of known names; everything else is to be forwarded.
 */
export function lookup(view: View, key: string, qtype: number, qclass: number): Lookup {
  if (qclass !== 1 && qclass !== 255) return REFUSED;
  const e = view.names.get(key);
  if (e) {
    let answers: readonly Buffer[];
    let ancount = 0;
    if (qtype === TYPE.A) { answers = rotated(e.a, A_RR, e); ancount = (e.a?.length ?? 0) / A_RR; }
    else if (qtype === TYPE.AAAA) { answers = rotated(e.aaaa, AAAA_RR, e); ancount = (e.aaaa?.length ?? 0) / AAAA_RR; }
    else if (qtype === TYPE.ANY) {
      answers = [...rotated(e.a, A_RR, e), ...rotated(e.aaaa, AAAA_RR, e)];
      ancount = (e.a?.length ?? 0) / A_RR + (e.aaaa?.length ?? 0) / AAAA_RR;
    } else answers = NOTHING;
    if (ancount) return { kind: 'reply', rcode: RCODE.NOERROR, aa: true, answers, ancount, authority: NOTHING };
    return { kind: 'reply', rcode: RCODE.NOERROR, aa: true, answers: NOTHING, authority: soaFor(view, key) };
  }
  if (qtype === TYPE.PTR) {
    const p = view.ptr.get(key);
    if (p) return { kind: 'reply', rcode: RCODE.NOERROR, aa: true, answers: [p], authority: NOTHING };
  }
  for (const z of view.zones) {
    if (!keyInZone(key, z.key)) continue;
    if (key === z.key) {
      if (qtype === TYPE.SOA) return { kind: 'reply', rcode: RCODE.NOERROR, aa: true, answers: [z.soa], authority: NOTHING };
      return { kind: 'reply', rcode: RCODE.NOERROR, aa: true, answers: NOTHING, authority: [z.soa] };
    }
    return { kind: 'reply', rcode: RCODE.NXDOMAIN, aa: true, answers: NOTHING, authority: [z.soa] };
  }
  if (qtype === TYPE.PTR) {
    // An address of the network that no container holds: ours to deny, not the upstream's.
    const ip = addressOfReverse(key);
    if (ip && view.subnets.some((s) => contains(s, ip))) return { kind: 'reply', rcode: RCODE.NXDOMAIN, aa: true, answers: NOTHING, authority: NOTHING };
  }
  return FORWARD;
}

function soaFor(view: View, key: string): readonly Buffer[] {
  for (const z of view.zones) if (keyInZone(key, z.key)) return [z.soa];
  return view.zones.length ? [view.zones[0]!.soa] : NOTHING;
}

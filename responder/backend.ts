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
 * A query is answered within a `Scope`: one network's view (a query that reached the network's
 * gateway), or the views of every network a container is attached to (a query to 127.0.0.11
 * inside that container). In a scope of several networks the first network, in Docker's order
 * (not internal before internal, then by name), that knows a name answers it: libnetwork's
 * `Sandbox.ResolveName`. Names of networks outside the scope do not exist there.
 *
 * For `cnikit dns serve` on an explicit address, `hostView` merges every network: clients
 * inside a network's subnet still see only that network, others (the host) see all of them.
 *
 * Building is the cost of a reload (every ADD reloads): what each container line contributes
 * (its addresses' bytes, answer records, name and reverse keys) is prepared once per record
 * object and kept in a WeakMap, so a reload that re-reads a file of 10,000 containers with one
 * new line prepares one line and only assembles the maps.
 */
import { type Cidr, type IP, contains, formatCidr, formatIP, ipToBytes, networkOf, parseHostPort, tryParseCidr, tryParseIP } from '../pkg/ip/cidr.ts';
import { listDiff } from './list-diff.ts';
import type { ContainerRecord, NetnsBinding, NetworkRecords, ResolverMode } from './records.ts';
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

/** What a query is answered from: one network, or the networks of one container, in order. */
export interface Scope {
  name: string;
  views: readonly View[];
  /** undefined = the host's resolv.conf nameservers; [] = no forwarding. */
  upstreams: Upstream[] | undefined;
  /** Nothing is forwarded: names outside the scope's networks get REFUSED. */
  internal: boolean;
  /** Identifies the upstream list (the forward cache keeps answers per list). */
  upstreamKey: string;
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
  /** The last client checked, and its verdict. */
  lastClient?: string;
  lastAllowed?: boolean;
  resolver: ResolverMode;
  internal: boolean;
  port: number;
  /** The containers with a netns binding (where 127.0.0.11 listens when resolver is 127.0.0.11). */
  members: NetnsBinding[];
  /** How many names its records hold (each container's name and aliases), kept as records come and go. */
  nameCount: number;
  /**
   * Which network wins a listen address several claim (lower first): set by whoever verified
   * the bindings (server.ts: 0 = its bridge holds the address, 1 = bound, 2 = unbound).
   */
  rank: number;
  /** The scope of this network alone. */
  scope: Scope;
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

/** Parses a network's upstream list (undefined = the host's resolv.conf; unusable entries left out). */
export function upstreamsOf(list: string[] | undefined): Upstream[] | undefined {
  if (list === undefined) return undefined;
  const out: Upstream[] = [];
  for (const s of list) {
    const hp = parseHostPort(s, 53);
    if (hp) out.push({ address: formatIP(hp.ip), port: hp.port, family: hp.ip.family });
  }
  return out;
}

/** Sets the upstreams a view forwards to (and its scope's). */
export function setUpstreams(view: View, u: Upstream[] | undefined): void {
  view.upstreams = u;
  view.scope.upstreams = u;
  view.scope.upstreamKey = upstreamKeyOf(u);
}

/** The key of an upstream list (`host` for the host's resolv.conf). */
export function upstreamKeyOf(u: Upstream[] | undefined): string {
  return u === undefined ? 'host' : u.map((x) => `${x.address}|${x.port}`).join(',');
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

const HEX = '0123456789abcdef';
const V4_REV_TAIL = '\x07in-addr\x04arpa\x00';
const V6_REV_TAIL = '\x03ip6\x04arpa\x00';

/** The wire key of an address's reverse name, built straight from its bytes. */
function reverseKey(b: Buffer): string {
  const parts: string[] = [];
  if (b.length === 4) {
    for (let i = 3; i >= 0; i--) { const s = String(b[i]); parts.push(String.fromCharCode(s.length), s); }
    parts.push(V4_REV_TAIL);
  } else {
    for (let i = 15; i >= 0; i--) parts.push('\x01', HEX[b[i]! & 15]!, '\x01', HEX[b[i]! >> 4]!);
    parts.push(V6_REV_TAIL);
  }
  return parts.join('');
}

/** What one container line contributes, computed once per record object (and domain). */
interface Prepared {
  domain: string;
  /** A and AAAA answer records, one per address. */
  aRecords: Buffer[];
  aaaaRecords: Buffer[];
  /** Subnets of its addresses: canonical text -> value. */
  subnets: [string, Cidr][];
  ptrKeys: string[];
  /** The PTR answer (container name in the domain), shared by all its addresses. */
  ptrRecord: Buffer | undefined;
  /** Lowercase names, deduplicated, with their short and qualified keys. */
  names: { lower: string; short: string; qualified: string }[];
  /** Gateways, canonical. */
  gateways: string[];
}

const prepared = new WeakMap<ContainerRecord, Prepared>();

function prepare(c: ContainerRecord, domain: string, zoneKey: string): Prepared {
  const hit = prepared.get(c);
  if (hit && hit.domain === domain) return hit;
  const p: Prepared = { domain, aRecords: [], aaaaRecords: [], subnets: [], ptrKeys: [], ptrRecord: undefined, names: [], gateways: [] };
  const seenBytes = new Set<string>();
  for (const a of c.addresses) {
    const cidr = tryParseCidr(a);
    if (!cidr) continue;
    const bytes = ipToBytes(cidr);
    const hex = bytes.toString('latin1');
    if (seenBytes.has(hex)) continue;
    seenBytes.add(hex);
    const subnet = networkOf(cidr);
    p.subnets.push([formatCidr(subnet), subnet]);
    (bytes.length === 4 ? p.aRecords : p.aaaaRecords).push(answerRecord(bytes.length === 4 ? TYPE.A : TYPE.AAAA, ANSWER_TTL, bytes));
    p.ptrKeys.push(reverseKey(bytes));
  }
  if (p.ptrKeys.length && c.names.length) p.ptrRecord = answerRecord(TYPE.PTR, ANSWER_TTL, encodeName(`${c.names[0]}.${domain}`.toLowerCase()));
  const zoneTail = zoneKey; // nameKey(domain): the qualified key is the short key minus its root label + the zone key
  for (const n of c.names) {
    const lower = n.toLowerCase();
    if (p.names.some((x) => x.lower === lower)) continue;
    const short = nameKey(lower);
    p.names.push({ lower, short, qualified: short.slice(0, -1) + zoneTail });
  }
  for (const g of c.gateways) {
    const ip = tryParseIP(g);
    if (ip) { const s = formatIP(ip); if (!p.gateways.includes(s)) p.gateways.push(s); }
  }
  prepared.set(c, p);
  return p;
}

/** The containers holding one name key, in the order they were added. */
interface NameHolders {
  key: string;
  holders: Prepared[];
}

/** What a view was built from, kept so that the next reload changes only what changed. */
interface ViewParts {
  /** Each record, what it contributes and the port of its network. */
  records: Map<ContainerRecord, { p: Prepared; port: number; seen: number }>;
  /** Name key (short or qualified) -> the records holding it. */
  byName: Map<string, NameHolders>;
  ptrHolders: Map<string, Prepared[]>;
  subnetCount: Map<string, { cidr: Cidr; n: number }>;
  listenCount: Map<string, { l: ListenAddr; n: number }>;
  /** What the view's settings were made of: a different one rebuilds from scratch. */
  settings: string;
  /** The number of the last build: a record not marked with it is gone. */
  build: number;
  /** The list the last build of a one-network view was made of, and its length then. */
  last?: { list: readonly ContainerRecord[]; length: number };
}

const parts = new WeakMap<View, ViewParts>();

function settingsOf(networks: readonly NetworkRecords[]): string {
  return JSON.stringify(networks.map((r) => [r.network, r.domain, r.port, r.resolver ?? 'gateway', r.internal === true, r.upstreams ?? null, r.resolvConf ?? null]));
}

function recordsOf(list: Prepared[], pick: (p: Prepared) => Buffer[]): Buffer | undefined {
  if (list.length === 1) {
    const own = pick(list[0]!);
    return own.length === 0 ? undefined : own.length === 1 ? own[0] : Buffer.concat(own);
  }
  const out: Buffer[] = [];
  for (const p of list) for (const r of pick(p)) if (!out.some((x) => x.equals(r))) out.push(r);
  return out.length === 0 ? undefined : out.length === 1 ? out[0] : Buffer.concat(out);
}

/** Sets the name's entry from its holders (or removes it when none is left). */
function refreshName(view: View, h: NameHolders): void {
  if (h.holders.length === 0) view.names.delete(h.key);
  else view.names.set(h.key, { a: recordsOf(h.holders, (p) => p.aRecords), aaaa: recordsOf(h.holders, (p) => p.aaaaRecords), next: 0 });
}

function without<T>(list: T[], x: T): T[] {
  const i = list.indexOf(x);
  if (i >= 0) list.splice(i, 1);
  return list;
}

function addRecord(view: View, vp: ViewParts, c: ContainerRecord, p: Prepared, port: number): { subnets: boolean; listen: boolean } {
  vp.records.set(c, { p, port, seen: vp.build });
  if (c.netns) view.members.push(c.netns);
  view.nameCount += c.names.length;
  let subnets = false;
  let listen = false;
  for (const [sk, cidr] of p.subnets) {
    const e = vp.subnetCount.get(sk);
    if (e) e.n++;
    else { vp.subnetCount.set(sk, { cidr, n: 1 }); subnets = true; }
  }
  for (const g of p.gateways) {
    const lk = `${g}|${port}`;
    const e = vp.listenCount.get(lk);
    if (e) e.n++;
    else { vp.listenCount.set(lk, { l: { address: g, port }, n: 1 }); listen = true; }
  }
  if (p.ptrRecord) {
    for (const k of p.ptrKeys) {
      const hs = vp.ptrHolders.get(k);
      if (hs) hs.push(p);
      else { vp.ptrHolders.set(k, [p]); view.ptr.set(k, p.ptrRecord); }
    }
  }
  for (const n of p.names) {
    for (const key of [n.short, n.qualified]) {
      let h = vp.byName.get(key);
      if (!h) vp.byName.set(key, h = { key, holders: [] });
      h.holders.push(p);
      refreshName(view, h);
    }
  }
  return { subnets, listen };
}

function removeRecord(view: View, vp: ViewParts, c: ContainerRecord, p: Prepared, port: number): { subnets: boolean; listen: boolean } {
  vp.records.delete(c);
  if (c.netns) without(view.members, c.netns);
  view.nameCount -= c.names.length;
  let subnets = false;
  let listen = false;
  for (const [sk] of p.subnets) {
    const e = vp.subnetCount.get(sk);
    if (e && --e.n === 0) { vp.subnetCount.delete(sk); subnets = true; }
  }
  for (const g of p.gateways) {
    const lk = `${g}|${port}`;
    const e = vp.listenCount.get(lk);
    if (e && --e.n === 0) { vp.listenCount.delete(lk); listen = true; }
  }
  for (const k of p.ptrKeys) {
    const hs = vp.ptrHolders.get(k);
    if (!hs) continue;
    without(hs, p);
    if (hs.length === 0) { vp.ptrHolders.delete(k); view.ptr.delete(k); }
    else view.ptr.set(k, hs[0]!.ptrRecord!);
  }
  for (const n of p.names) {
    for (const key of [n.short, n.qualified]) {
      const h = vp.byName.get(key);
      if (!h) continue;
      without(h.holders, p);
      refreshName(view, h);
      if (h.holders.length === 0) vp.byName.delete(key);
    }
  }
  return { subnets, listen };
}

/**
 * Builds the view of `networks` (one network; several for the host view) under `name`.
 * `serial` goes into the SOA records. Given `prev`, the view built from the previous reading
 * with the same settings, it is updated in place instead: only the records that are new or gone
 * (by object identity, which parseRecords' line cache keeps) cost anything.
 */
export function buildView(name: string, networks: readonly NetworkRecords[], serial: number, prev?: View): View {
  const settings = settingsOf(networks);
  const prevParts = prev && parts.get(prev);
  let view: View;
  let vp: ViewParts;
  if (prev && prevParts && prevParts.settings === settings) {
    view = prev;
    vp = prevParts;
  } else {
    const first = networks[0];
    const upstreams = upstreamsOf(networks.find((r) => r.upstreams !== undefined)?.upstreams);
    view = {
      name, listen: [], subnets: [], zones: [], upstreams, names: new Map(), ptr: new Map(), clients: new Map(),
      resolver: first?.resolver ?? 'gateway', internal: first?.internal === true, port: first?.port ?? 53, members: [], nameCount: 0, rank: 2,
      scope: undefined as unknown as Scope,
    };
    view.scope = { name, views: [view], upstreams, internal: view.internal, upstreamKey: upstreamKeyOf(upstreams) };
    vp = { records: new Map(), byName: new Map(), ptrHolders: new Map(), subnetCount: new Map(), listenCount: new Map(), settings, build: 0 };
    parts.set(view, vp);
  }
  view.zones = [];
  for (const r of networks) {
    const zoneKey = nameKey(r.domain);
    if (view.zones.some((z) => z.key === zoneKey)) continue;
    const soa = namedRecord(encodeName(r.domain), TYPE.SOA, ANSWER_TTL, soaRdata(`ns.${r.domain}`, `hostmaster.${r.domain}`, serial, ANSWER_TTL));
    view.zones.push({ key: zoneKey, soa });
  }
  let subnetsChanged = false;
  let listenChanged = false;
  const note = (x: { subnets: boolean; listen: boolean }) => { subnetsChanged ||= x.subnets; listenChanged ||= x.listen; };
  const build = ++vp.build;
  const zoneKeys = new Map<string, string>();
  const add = (c: ContainerRecord, r: NetworkRecords) => {
    let zk = zoneKeys.get(r.domain);
    if (zk === undefined) zoneKeys.set(r.domain, zk = nameKey(r.domain));
    note(addRecord(view, vp, c, prepare(c, r.domain, zk), r.port));
  };
  // One network whose list is a new version of the last one: only what changed is read (list-diff.ts).
  const only = networks.length === 1 ? networks[0]! : undefined;
  const changed = only && vp.last && vp.last.list.length === vp.last.length ? listDiff(vp.last.list, only.containers) : undefined;
  if (only && changed) {
    for (const c of changed.removed) {
      const e = vp.records.get(c);
      if (e) note(removeRecord(view, vp, c, e.p, e.port));
    }
    for (const c of changed.added) if (!vp.records.has(c)) add(c, only);
  } else {
    // Records kept are marked with this build's number, new ones added (a record in two networks
    // counts for the first); then the unmarked are removed. No set of 1000 wanted records is made.
    for (const r of networks) {
      for (const c of r.containers) {
        const kept = vp.records.get(c);
        if (kept) kept.seen = build;
        else add(c, r);
      }
    }
    // (Deleting the entry being visited is safe in a Map's iteration: no copy of 1000 entries.)
    for (const [c, { p, port, seen }] of vp.records) {
      if (seen !== build) note(removeRecord(view, vp, c, p, port));
    }
  }
  vp.last = only ? { list: only.containers, length: only.containers.length } : undefined;
  if (subnetsChanged || view.subnets.length !== vp.subnetCount.size) {
    view.subnets = [...vp.subnetCount.values()].map((e) => e.cidr);
    view.clients.clear();
    view.lastClient = undefined;
  }
  if (listenChanged || view.listen.length !== vp.listenCount.size) view.listen = [...vp.listenCount.values()].map((e) => e.l);
  return view;
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

/** Docker's order of a container's networks for name resolution: not internal first, then by name. */
function dockerOrder(a: View, b: View): number {
  if (a.internal !== b.internal) return a.internal ? 1 : -1;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/** The scope of a container on `views` (each network it is attached to). */
export function containerScope(name: string, views: View[]): Scope {
  const ordered = [...views].sort(dockerOrder);
  const outward = ordered.find((v) => !v.internal);
  const upstreams = outward ? outward.upstreams : [];
  return { name, views: ordered, upstreams, internal: !outward, upstreamKey: upstreamKeyOf(upstreams) };
}

/** A container answered at 127.0.0.11 in its own netns: its networks, where to listen. */
export interface ContainerListen {
  netns: NetnsBinding;
  port: number;
  scope: Scope;
}

/** A listen address claimed by several networks, and which one got it. */
export interface ListenConflict {
  listen: string;
  winner: string;
  loser: string;
}

/** The immutable set of views built from one reading of the records directory. */
export class Backend {
  readonly views: Map<string, View>;
  /** `listenKey` -> the view of the network listening there. */
  private readonly byListen: Map<string, View>;
  /** Every address some network listens on, once (the network with the lowest rank answers there). */
  readonly listen: ListenAddr[];
  /** All networks merged (standalone resolver, clients outside every network). */
  readonly hostView: View;
  /** netns inode -> the container answered at 127.0.0.11 there. */
  readonly containers: Map<number, ContainerListen>;
  /** Listen addresses several networks claimed (the losers answer nowhere there). */
  readonly conflicts: ListenConflict[] = [];

  /** Returns the Backend of views built already (buildView), in file order, with the host view if any. */
  static fromViews(views: readonly View[], hostView?: View): Backend {
    return new Backend(views, 1, hostView ?? false);
  }

  /**
   * `networks`: records (built here) or views already built, in file order. `withHostView`:
   * also build the merged view (the standalone resolver needs it), or the merged view itself.
   */
  constructor(networks: readonly NetworkRecords[] | readonly View[], serial = 1, withHostView: boolean | View = true) {
    const isViews = networks.length > 0 && 'names' in networks[0]!;
    const views = isViews ? networks as readonly View[] : (networks as readonly NetworkRecords[]).map((r) => buildView(r.network, [r], serial));
    this.views = new Map();
    this.byListen = new Map();
    this.listen = [];
    this.containers = new Map();
    if (typeof withHostView === 'object') this.hostView = withHostView;
    else this.hostView = withHostView && !isViews ? buildView('(host)', networks as readonly NetworkRecords[], serial) : buildView('(host)', [], serial);
    for (const v of views) this.views.set(v.name, v);
    // Gateway listeners: each address to one network, the lowest rank, then the first.
    const ordered = [...views].sort((a, b) => a.rank - b.rank);
    for (const v of ordered) {
      if (v.resolver !== 'gateway') continue;
      for (const l of v.listen) {
        const k = listenKey(l);
        const owner = this.byListen.get(k);
        if (owner) { this.conflicts.push({ listen: k, winner: owner.name, loser: v.name }); continue; }
        this.byListen.set(k, v);
        this.listen.push(l);
      }
    }
    this.listen.sort((a, b) => (listenKey(a) < listenKey(b) ? -1 : 1));
    // 127.0.0.11 listeners: one per container netns with a network in that mode.
    // The containers of those networks first; then the gateway networks they are also on (their
    // names are answered there too), without a pass over every container of a gateway network.
    const byNetns = new Map<number, { netns: NetnsBinding; views: View[]; port: number }>();
    for (const v of views) {
      if (v.resolver === 'gateway') continue;
      for (const m of v.members) {
        let e = byNetns.get(m.ino);
        if (!e) byNetns.set(m.ino, e = { netns: m, views: [], port: v.port });
        if (!e.views.includes(v)) e.views.push(v);
      }
    }
    if (byNetns.size) {
      for (const v of views) {
        if (v.resolver !== 'gateway') continue;
        for (const m of v.members) {
          const e = byNetns.get(m.ino);
          if (e && !e.views.includes(v)) e.views.push(v);
        }
      }
    }
    for (const [ino, e] of byNetns) this.containers.set(ino, { netns: e.netns, port: e.port, scope: containerScope(`netns ${ino}`, e.views) });
  }

  /** The view answering queries that arrive on `address:port`. */
  viewFor(address: string, port: number): View | undefined {
    return this.byListen.get(listenKey({ address, port }));
  }

  /** The view answering queries that arrive on the listen address whose `listenKey` is `key` (the hot path's form). */
  viewAt(key: string): View | undefined {
    return this.byListen.get(key);
  }

  /** The network whose subnets hold `client`, else undefined. */
  viewOfClient(client: string): View | undefined {
    for (const v of this.views.values()) if (clientAllowed(v, client)) return v;
    return undefined;
  }
}

/** True when `client` (an IP address string) lies in one of the view's subnets. */
export function clientAllowed(view: View, client: string): boolean {
  // Clients come in runs: the last one's verdict first (the same string object, or an equal one).
  if (client === view.lastClient) return view.lastAllowed === true;
  const ok = clientAllowedUncached(view, client);
  view.lastClient = client;
  view.lastAllowed = ok;
  return ok;
}

function clientAllowedUncached(view: View, client: string): boolean {
  const hit = view.clients.get(client);
  if (hit !== undefined) return hit;
  const ip = tryParseIP(client.startsWith('::ffff:') && client.includes('.') ? client.slice(7) : client);
  const ok = ip !== undefined && view.subnets.some((s) => contains(s, ip));
  if (view.clients.size >= CLIENT_CACHE_MAX) view.clients.clear();
  view.clients.set(client, ok);
  return ok;
}

function answerFrom(view: View, e: NameEntry, key: string, qtype: number): Lookup {
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

/**
 * Answers question (`key`, `qtype`, `qclass`) from `view`: container names (A/AAAA/ANY),
 * PTR for container addresses, NXDOMAIN + SOA for unknown names in the zone, NODATA + SOA for
 * other types of known names; everything else is to be forwarded.
 */
export function lookup(view: View, key: string, qtype: number, qclass: number): Lookup {
  return lookupIn(view.scope, key, qtype, qclass);
}

/** Answers a question within `scope`: the first of its networks that knows the name answers. */
export function lookupIn(scope: Scope, key: string, qtype: number, qclass: number): Lookup {
  if (qclass !== 1 && qclass !== 255) return REFUSED;
  const views = scope.views;
  for (let i = 0; i < views.length; i++) {
    const e = views[i]!.names.get(key);
    if (e) return answerFrom(views[i]!, e, key, qtype);
  }
  if (qtype === TYPE.PTR) {
    for (const v of views) {
      const p = v.ptr.get(key);
      if (p) return { kind: 'reply', rcode: RCODE.NOERROR, aa: true, answers: [p], authority: NOTHING };
    }
  }
  for (const v of views) {
    for (const z of v.zones) {
      if (!keyInZone(key, z.key)) continue;
      if (key === z.key) {
        if (qtype === TYPE.SOA) return { kind: 'reply', rcode: RCODE.NOERROR, aa: true, answers: [z.soa], authority: NOTHING };
        return { kind: 'reply', rcode: RCODE.NOERROR, aa: true, answers: NOTHING, authority: [z.soa] };
      }
      return { kind: 'reply', rcode: RCODE.NXDOMAIN, aa: true, answers: NOTHING, authority: [z.soa] };
    }
  }
  if (qtype === TYPE.PTR) {
    // An address of the network that no container holds: ours to deny, not the upstream's.
    const ip = addressOfReverse(key);
    if (ip && views.some((v) => v.subnets.some((s) => contains(s, ip)))) return { kind: 'reply', rcode: RCODE.NXDOMAIN, aa: true, answers: NOTHING, authority: NOTHING };
  }
  return FORWARD;
}

function soaFor(view: View, key: string): readonly Buffer[] {
  for (const z of view.zones) if (keyInZone(key, z.key)) return [z.soa];
  return view.zones.length ? [view.zones[0]!.soa] : NOTHING;
}

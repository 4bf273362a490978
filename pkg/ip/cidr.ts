/**
 * IP addresses and prefixes as small values (family + bigint), so the rest of the code never
 * handles address strings by hand: parsing (strict: no zones, no leading zeros in IPv4, as Go's
 * net.ParseIP) and printing (RFC 5952, IPv4-mapped addresses dotted as in §5), and prefix math.
 *
 * Why not ip-address here: the library costs ~7 ms of CPU per process start just to load (its
 * 85 KB are mostly features we never call), and every CNI call is a fresh process. It stays the
 * oracle of cidr.test.ts, which checks this parser and printer against it on random addresses.
 */

export type Family = 4 | 6;
export interface IP { family: Family; value: bigint }
/** An address with a prefix length; `value` may have host bits set (an interface address). */
export interface Cidr extends IP { prefix: number }

const BITS = { 4: 32, 6: 128 } as const;
const V4_RE = /^(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})$/;
const GROUP_RE = /^[0-9a-fA-F]{1,4}$/;

export function bitsOf(f: Family): number {
  return BITS[f];
}

function parse4(s: string): bigint | undefined {
  const m = V4_RE.exec(s);
  if (!m) return undefined;
  let v = 0;
  for (let i = 1; i <= 4; i++) {
    const octet = Number(m[i]);
    if (octet > 255) return undefined;
    v = v * 256 + octet;
  }
  return BigInt(v);
}

/** Parses the groups on one side of `::` (or the whole address); undefined when malformed. */
function groups6(part: string, allowV4Tail: boolean): number[] | undefined {
  if (part === '') return [];
  const out: number[] = [];
  const pieces = part.split(':');
  for (let i = 0; i < pieces.length; i++) {
    const p = pieces[i]!;
    if (allowV4Tail && i === pieces.length - 1 && p.includes('.')) {
      const v4 = parse4(p);
      if (v4 === undefined) return undefined;
      out.push(Number(v4 >> 16n), Number(v4 & 0xffffn));
    } else if (GROUP_RE.test(p)) {
      out.push(parseInt(p, 16));
    } else {
      return undefined;
    }
  }
  return out;
}

function parse6(s: string): bigint | undefined {
  const halves = s.split('::');
  if (halves.length > 2) return undefined;
  let all: number[];
  if (halves.length === 2) {
    const left = groups6(halves[0]!, false);
    const right = groups6(halves[1]!, true);
    if (!left || !right || left.length + right.length > 7) return undefined;
    all = [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  } else {
    const g = groups6(s, true);
    if (!g || g.length !== 8) return undefined;
    all = g;
  }
  let v = 0n;
  for (const g of all) v = (v << 16n) | BigInt(g);
  return v;
}

/** Parses a bare IPv4 or IPv6 address; returns undefined when it is not one. */
export function tryParseIP(s: string): IP | undefined {
  if (typeof s !== 'string') return undefined;
  // A zone (`fe80::1%eth0`) is refused: an address in a config or a result never has one, and
  // dropping it silently would change what the user asked for.
  if (s.includes(':')) {
    const value = parse6(s);
    return value === undefined ? undefined : { family: 6, value };
  }
  const value = parse4(s);
  return value === undefined ? undefined : { family: 4, value };
}

export function parseIP(s: string): IP {
  const ip = tryParseIP(s);
  if (!ip) throw new Error(`invalid IP address "${s}"`);
  return ip;
}

/** Parses `addr/prefix`; returns undefined when malformed. */
export function tryParseCidr(s: string): Cidr | undefined {
  if (typeof s !== 'string') return undefined;
  const slash = s.lastIndexOf('/');
  if (slash < 0) return undefined;
  const ip = tryParseIP(s.slice(0, slash));
  const p = s.slice(slash + 1);
  if (!ip || !/^\d{1,3}$/.test(p)) return undefined;
  const prefix = Number(p);
  if (prefix > BITS[ip.family]) return undefined;
  return { ...ip, prefix };
}

export function parseCidr(s: string): Cidr {
  const c = tryParseCidr(s);
  if (!c) throw new Error(`invalid CIDR "${s}"`);
  return c;
}

/** Parses a CIDR (route destinations), also accepting a bare address as a host route. */
export function cidrOf(s: string): Cidr {
  const c = tryParseCidr(s);
  if (c) return c;
  const ip = parseIP(s);
  return { ...ip, prefix: BITS[ip.family] };
}

export function familyOfAddress(s: string): Family {
  return s.includes(':') ? 6 : 4;
}

/** An address with a port (a listen address, an upstream resolver). */
export interface HostPort {
  ip: IP;
  port: number;
}

const PORT_RE = /^\d{1,5}$/;

/**
 * Parses `ADDR:PORT`, `[V6]:PORT` or a bare address (which gets `defaultPort`); undefined when
 * the address is not an IP literal or the port is not 1-65535. A bare IPv6 address needs no
 * brackets; with a port it does (`fd00::53:5353` is the address fd00::53:5353).
 */
export function parseHostPort(s: string, defaultPort: number): HostPort | undefined {
  if (typeof s !== 'string') return undefined;
  const bare = tryParseIP(s);
  if (bare) return { ip: bare, port: defaultPort };
  const m = /^\[([^\]]+)\]:([^:]*)$/.exec(s) ?? /^([^:[\]]+):([^:]*)$/.exec(s);
  if (!m || !PORT_RE.test(m[2]!)) return undefined;
  const ip = tryParseIP(m[1]!);
  const port = Number(m[2]);
  if (!ip || port < 1 || port > 65535) return undefined;
  return { ip, port };
}

function format4(v: bigint): string {
  const n = Number(v);
  return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/** Prints ip in canonical form (RFC 5952 for IPv6, with the IPv4 part of `::ffff:a.b.c.d` dotted as in §5). */
export function formatIP(ip: IP): string {
  if (ip.family === 4) return format4(ip.value);
  if (ip.value >> 32n === 0xffffn) return `::ffff:${format4(ip.value & 0xffffffffn)}`;
  const g: number[] = [];
  for (let i = 7; i >= 0; i--) g.push(Number((ip.value >> BigInt(i * 16)) & 0xffffn));
  // §4.2: compress the longest run of two or more zero groups, the first of equal runs.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    i = j;
  }
  const hex = (xs: number[]) => xs.map((x) => x.toString(16)).join(':');
  if (best < 0) return hex(g);
  return `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`;
}

export function formatCidr(c: Cidr): string {
  return `${formatIP(c)}/${c.prefix}`;
}

function hostMask(c: Cidr): bigint {
  return (1n << BigInt(BITS[c.family] - c.prefix)) - 1n;
}

/** The network address of c (host bits cleared). */
export function networkOf(c: Cidr): Cidr {
  return { family: c.family, value: c.value & ~hostMask(c), prefix: c.prefix };
}

/** The last address of c (all host bits set: the broadcast address for IPv4). */
export function lastOf(c: Cidr): IP {
  return { family: c.family, value: c.value | hostMask(c) };
}

export function contains(c: Cidr, ip: IP): boolean {
  return c.family === ip.family && (ip.value & ~hostMask(c)) === (c.value & ~hostMask(c));
}

export function overlaps(a: Cidr, b: Cidr): boolean {
  if (a.family !== b.family) return false;
  return a.prefix <= b.prefix ? contains(a, b) : contains(b, a);
}

export function ipEquals(a: IP, b: IP): boolean {
  return a.family === b.family && a.value === b.value;
}

export function addToIP(ip: IP, n: bigint): IP {
  return { family: ip.family, value: ip.value + n };
}

/** Network byte order bytes of ip (4 or 16), for netlink attributes. */
export function ipToBytes(ip: IP): Buffer {
  const len = ip.family === 4 ? 4 : 16;
  const b = Buffer.alloc(len);
  let v = ip.value;
  for (let i = len - 1; i >= 0; i--) {
    b[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return b;
}

export function ipFromBytes(b: Buffer): IP {
  let v = 0n;
  for (const byte of b) v = (v << 8n) | BigInt(byte);
  return { family: b.length === 4 ? 4 : 6, value: v };
}

/** True for addresses a container uses to talk to others: not link-local, not loopback, not multicast. */
export function isGlobalUnicast(ip: IP): boolean {
  if (ip.family === 4) {
    const top = Number(ip.value >> 24n);
    const top2 = Number(ip.value >> 16n);
    return top !== 127 && top !== 0 && top < 224 && top2 !== 0xa9fe;
  }
  const top16 = Number(ip.value >> 112n);
  return ip.value > 1n && (top16 & 0xffc0) !== 0xfe80 && (top16 & 0xff00) !== 0xff00;
}

/**
 * IP addresses and prefixes as small values (family + bigint), parsed and printed with
 * ip-address so the rest of the code never handles address strings by hand.
 */
import { Address4, Address6 } from 'ip-address';

export type Family = 4 | 6;
export interface IP { family: Family; value: bigint }
/** An address with a prefix length; `value` may have host bits set (an interface address). */
export interface Cidr extends IP { prefix: number }

const BITS = { 4: 32, 6: 128 } as const;

export function bitsOf(f: Family): number {
  return BITS[f];
}

/** Parses a bare IPv4 or IPv6 address; returns undefined when it is not one. */
export function tryParseIP(s: string): IP | undefined {
  if (typeof s !== 'string' || s.includes('/')) return undefined;
  if (s.includes(':')) {
    // ip-address accepts a zone (`fe80::1%eth0`) and drops it; an address in a config or a
    // result never has one, and silently losing it would change what the user asked for.
    if (s.includes('%') || !Address6.isValid(s)) return undefined;
    return { family: 6, value: new Address6(s).bigInt() };
  }
  if (!Address4.isValid(s) || !/^\d+\.\d+\.\d+\.\d+$/.test(s)) return undefined;
  return { family: 4, value: new Address4(s).bigInt() };
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

/** Prints ip in canonical form (RFC 5952 for IPv6, with the IPv4 part of `::ffff:a.b.c.d` dotted as in §5). */
export function formatIP(ip: IP): string {
  if (ip.family === 4) return Address4.fromBigInt(ip.value).correctForm();
  if (ip.value >> 32n === 0xffffn) return `::ffff:${Address4.fromBigInt(ip.value & 0xffffffffn).correctForm()}`;
  return Address6.fromBigInt(ip.value).correctForm();
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

/**
 * The cnikit command's argument and environment parsers: cnitool's container id and CNI_ARGS
 * splitting, CAP_ARGS, container names, `--valid` attachments, and the values `network create`
 * and `run` take (subnets, addresses, MACs, labels, --add-host). `-p` is in ports.ts. Pure
 * functions; a bad value throws commander's InvalidArgumentError (a usage error) when it came
 * from an option, or a CniError when it came from the environment, as cnitool reports it.
 */
import { resolve } from 'node:path';
import { InvalidArgumentError } from 'commander';
import { CniCode, CniError } from '../pkg/cni/errors.ts';
import { type Cidr, type Family, type IP, formatCidr, formatIP, networkOf, tryParseCidr, tryParseIP } from '../pkg/ip/cidr.ts';
import type { Attachment } from '../pkg/cni/skel.ts';

/** cnitool's container id: "cnitool-" + the first 20 hex digits of SHA-512(absolute netns path). */
export function cnitoolContainerId(netnsPath: string): string {
  return `cnitool-${process.getBuiltinModule('node:crypto').createHash('sha512').update(resolve(netnsPath)).digest('hex').slice(0, 20)}`;
}

/** Splits a CNI_ARGS string as cnitool does: every `;` piece must be a non-empty `k=v`. */
export function parseArgsEnv(raw: string | undefined): [string, string][] {
  if (!raw) return [];
  return raw.split(';').map((pair) => {
    const i = pair.indexOf('=');
    if (i <= 0) throw new CniError(CniCode.InvalidEnv, `invalid CNI_ARGS pair "${pair}"`, 'CNI_ARGS is KEY=VALUE pairs separated by ";", e.g. IgnoreUnknown=1;K8S_POD_NAME=web');
    return [pair.slice(0, i), pair.slice(i + 1)] as [string, string];
  });
}

/** Parses CAP_ARGS: a JSON object of capability arguments. */
export function parseCapArgs(value: string | undefined): Record<string, unknown> {
  if (!value) return {};
  let v: unknown;
  try {
    v = JSON.parse(value);
  } catch (err) {
    throw new CniError(CniCode.DecodingFailure, 'CAP_ARGS is not valid JSON', `${(err as Error).message}; expected e.g. '{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]}'`);
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new CniError(CniCode.DecodingFailure, 'CAP_ARGS must be a JSON object', 'e.g. {"portMappings":[...]}');
  return v as Record<string, unknown>;
}

const NAME_RE = /^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/;

/** Checks a container name or alias: a DNS label, so it can go in CNI_ARGS and be resolved. */
export function parseName(value: string): string {
  if (!NAME_RE.test(value)) throw new InvalidArgumentError(`"${value}" is not a valid name: use letters, digits and "-" (a DNS label, at most 63 characters)`);
  return value;
}

const NETWORK_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/;
/** Names `cnikit run --network` reads as modes, never as networks (Podman refuses them too). */
const RESERVED_NETWORKS = ['host', 'none'];

/** Checks a new network's name: libcni's network name rule, at most 63 characters, not host or none. */
export function parseNetworkName(value: string): string {
  if (!NETWORK_RE.test(value)) throw new InvalidArgumentError(`"${value}" is not a valid network name: start with a letter or digit, then letters, digits, "_", "." or "-" (at most 63)`);
  if (RESERVED_NETWORKS.includes(value)) throw new InvalidArgumentError(`"${value}" cannot be a network name: \`cnikit run --network ${value}\` means the ${value === 'host' ? 'host\'s namespace' : 'namespace with lo only'}`);
  return value;
}

/** Collects a repeatable `--alias`, each checked as a name. */
export function collectName(value: string, previous: string[] = []): string[] {
  return [...previous, parseName(value)];
}

/** Collects a repeatable option's values. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** Parses a repeatable `--valid CONTAINERID:IFNAME`. */
export function parseValid(value: string, previous: Attachment[] = []): Attachment[] {
  const i = value.lastIndexOf(':');
  if (i <= 0 || i === value.length - 1) throw new InvalidArgumentError(`"${value}" is not CONTAINERID:IFNAME, e.g. cnitool-0a1b2c3d4e5f60718293:eth0`);
  return [...previous, { containerID: value.slice(0, i), ifname: value.slice(i + 1) }];
}

/** Parses a positive whole number of milliseconds. */
export function parseMillis(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`"${value}" is not a positive number of milliseconds`);
  return n;
}

/** Parses an IP address option (`--gateway`, `--dns`); with `family`, only that family. */
export function parseAddress(value: string, family?: Family): IP {
  const ip = tryParseIP(value);
  if (!ip || (family && ip.family !== family)) throw new InvalidArgumentError(`"${value}" is not an IPv${family ?? '4 or IPv6'} address`);
  return ip;
}

/** Collects a repeatable address option as canonical text. */
export function collectAddress(family?: Family): (value: string, previous?: string[]) => string[] {
  return (value, previous = []) => [...previous, formatIP(parseAddress(value, family))];
}

/** Parses a repeatable `--subnet CIDR` (its network address: host bits must be zero). */
export function collectSubnet(value: string, previous: Cidr[] = []): Cidr[] {
  const c = tryParseCidr(value);
  if (!c) throw new InvalidArgumentError(`"${value}" is not a subnet: use ADDRESS/PREFIX, e.g. 10.89.5.0/24 or fd00:89:5::/64`);
  const net = networkOf(c);
  if (net.value !== c.value) throw new InvalidArgumentError(`"${value}" has host bits set: did you mean ${formatCidr(net)}?`);
  if (c.prefix > (c.family === 4 ? 30 : 126)) throw new InvalidArgumentError(`subnet ${value} is too small for a gateway and a container`);
  return [...previous, c];
}

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

/** Parses `--mac`: a unicast MAC address (lower-cased). */
export function parseMac(value: string): string {
  const mac = value.toLowerCase();
  if (!MAC_RE.test(mac)) throw new InvalidArgumentError(`"${value}" is not a MAC address: use the form 92:d0:c6:0a:29:33`);
  if (parseInt(mac.slice(0, 2), 16) & 1) throw new InvalidArgumentError(`"${value}" is a multicast MAC address; the first byte must be even`);
  return mac;
}

/** Parses a repeatable `--label KEY=VALUE`. */
export function collectLabel(value: string, previous: Record<string, string> = {}): Record<string, string> {
  const i = value.indexOf('=');
  if (i <= 0) throw new InvalidArgumentError(`"${value}" is not KEY=VALUE`);
  return { ...previous, [value.slice(0, i)]: value.slice(i + 1) };
}

/** Parses a repeatable `--add-host NAME:IP` (or NAME=IP; the address may be IPv6). */
export function collectAddHost(value: string, previous: [string, string][] = []): [string, string][] {
  const eq = value.indexOf('=');
  const i = eq > 0 ? eq : value.indexOf(':');
  const name = value.slice(0, i);
  const ip = tryParseIP(value.slice(i + 1).replace(/^\[|\]$/g, ''));
  if (i <= 0 || !ip || !/^[a-zA-Z0-9]([a-zA-Z0-9.-]*[a-zA-Z0-9])?$/.test(name)) throw new InvalidArgumentError(`"${value}" is not NAME:IP, e.g. db:10.89.0.5`);
  return [...previous, [name, formatIP(ip)]];
}

/** Parses an integer within [min, max] (`--mtu`). */
export function intIn(min: number, max: number): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`"${value}" is not a whole number between ${min} and ${max}`);
    return n;
  };
}

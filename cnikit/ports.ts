/**
 * `-p` as Docker takes it, and turning the requests into port mappings before anything starts:
 * `80` (a free host port is chosen), `8080:80`, `127.0.0.1:8080:80`, `127.0.0.1::80`,
 * `[::1]:8080:80`, `8000-8010:8000-8010` (pairwise), `8000-8010:80` (one free port of the
 * range), each with `/tcp` (default), `/udp` or `/sctp`.
 *
 * A host port is taken when something in the host network namespace listens on it (host-ports.ts
 * reads the sockets) or another attachment already publishes it (the results cache), on the same
 * protocol and an overlapping address (an unspecified address overlaps every address). Pure: the
 * caller passes what is taken, the port range to choose from and the randomness.
 */
import { InvalidArgumentError } from 'commander';
import type { PortMapping, PortProtocol } from '../pkg/cni/capabilities.ts';
import { CniCode, CniError } from '../pkg/cni/errors.ts';
import { type IP, formatIP, ipEquals, tryParseIP } from '../pkg/ip/cidr.ts';

/** One `-p` as given: host ports undefined means "choose". */
export interface PublishRequest {
  /** The text as typed, for messages. */
  spec: string;
  hostIP?: string;
  host?: [number, number];
  container: [number, number];
  protocol: PortProtocol;
}

const USAGE = 'use [HOSTIP:][HOSTPORT:]CONTAINERPORT[/tcp|udp|sctp], e.g. 80, 8080:80, 127.0.0.1:8080:80 or 8000-8010:8000-8010/udp';

function bad(value: string, why: string): InvalidArgumentError {
  return new InvalidArgumentError(`"${value}" is not a port mapping (${why}); ${USAGE}`);
}

function portRange(value: string, text: string): [number, number] {
  const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(text);
  if (!m) throw bad(value, `"${text}" is not a port or a range`);
  const lo = Number(m[1]);
  const hi = m[2] === undefined ? lo : Number(m[2]);
  for (const p of [lo, hi]) if (p < 1 || p > 65535) throw new InvalidArgumentError(`port ${p} in "${value}" is not between 1 and 65535`);
  if (hi < lo) throw bad(value, `the range ${text} is backwards`);
  return [lo, hi];
}

/** Parses one `-p` value (commander option parser; repeatable). */
export function parsePublish(value: string, previous: PublishRequest[] = []): PublishRequest[] {
  const slash = value.lastIndexOf('/');
  const proto = slash >= 0 ? value.slice(slash + 1) : 'tcp';
  if (!['tcp', 'udp', 'sctp'].includes(proto)) throw bad(value, `unknown protocol "${proto}"`);
  let rest = slash >= 0 ? value.slice(0, slash) : value;
  let hostIP: string | undefined;
  if (rest.startsWith('[')) {
    const end = rest.indexOf(']:');
    if (end < 0) throw bad(value, 'an IPv6 host address is written [ADDR]:');
    hostIP = rest.slice(1, end);
    rest = rest.slice(end + 2);
  }
  const parts = rest.split(':');
  if (parts.length === 3 && hostIP === undefined) hostIP = parts.shift();
  if (parts.length > 2 || (hostIP !== undefined && parts.length !== 2)) throw bad(value, 'too many ":"');
  if (hostIP !== undefined && !tryParseIP(hostIP)) throw bad(value, `"${hostIP}" is not an IP address`);
  const container = portRange(value, parts[parts.length - 1]!);
  const hostText = parts.length === 2 ? parts[0]! : '';
  const host = hostText === '' ? undefined : portRange(value, hostText);
  const width = (r: [number, number]) => r[1] - r[0];
  if (host && width(container) > 0 && width(host) !== width(container)) throw bad(value, 'the host and container ranges differ in size');
  const req: PublishRequest = { spec: value, container, protocol: proto as PortProtocol };
  if (hostIP !== undefined) req.hostIP = hostIP;
  if (host) req.host = host;
  return [...previous, req];
}

/** A host port something already holds. `ip` undefined: every address. */
export interface PortUse {
  protocol: PortProtocol;
  port: number;
  ip: IP | undefined;
  /** Who holds it, for the message: `a listener on 0.0.0.0:8080 in this network namespace`. */
  who: string;
}

function addrOf(s: string | undefined): IP | undefined {
  const ip = s ? tryParseIP(s) : undefined;
  return ip && ip.value !== 0n ? ip : undefined;
}

/** Returns the use that collides with publishing `port` on `ip` (undefined = all addresses). */
export function collision(taken: readonly PortUse[], protocol: PortProtocol, port: number, ip: IP | undefined): PortUse | undefined {
  return taken.find((u) => u.protocol === protocol && u.port === port && (!u.ip || !ip || ipEquals(u.ip, ip)));
}

export interface ResolveDeps {
  /** The range to choose free ports from (the kernel's ip_local_port_range, as Docker does). */
  range: [number, number];
  /** A random number in [0, 1). */
  random: () => number;
}

function inUse(req: PublishRequest, port: number, u: PortUse): CniError {
  return new CniError(CniCode.InvalidConfig, `host port ${port}/${req.protocol}${req.hostIP ? ` on ${req.hostIP}` : ''} (-p ${req.spec}) is already in use: ${u.who}`,
    'pick another host port, or give only the container port (-p 80) to have a free one chosen', { reason: 'conflict' });
}

/**
 * Turns the requests into port mappings, choosing free host ports where asked; throws CniError
 * (reason `conflict`) naming who holds a requested port. Ports chosen earlier in the same call
 * count as taken.
 */
export function resolvePublish(reqs: readonly PublishRequest[], taken: readonly PortUse[], deps: ResolveDeps): PortMapping[] {
  const held = [...taken];
  const out: PortMapping[] = [];
  const take = (req: PublishRequest, hostPort: number, containerPort: number) => {
    const m: PortMapping = { hostPort, containerPort, protocol: req.protocol };
    if (req.hostIP) m.hostIP = formatIP(tryParseIP(req.hostIP)!);
    out.push(m);
    held.push({ protocol: req.protocol, port: hostPort, ip: addrOf(req.hostIP), who: `-p ${req.spec} of this command` });
  };
  for (const req of reqs) {
    const ip = addrOf(req.hostIP);
    const [clo, chi] = req.container;
    if (!req.host || (req.host[1] > req.host[0] && clo === chi)) {
      // Choose: from the kernel's range (random start), or the first free one of the given range.
      const [lo, hi] = req.host ?? deps.range;
      for (let c = clo; c <= chi; c++) {
        const n = hi - lo + 1;
        const start = req.host ? 0 : Math.floor(deps.random() * n);
        let port: number | undefined;
        for (let i = 0; i < n && port === undefined; i++) {
          const p = lo + ((start + i) % n);
          if (!collision(held, req.protocol, p, ip)) port = p;
        }
        if (port === undefined) throw new CniError(CniCode.InvalidConfig, `no free host port for -p ${req.spec}`, `every ${req.protocol} port in ${lo}-${hi} is in use`, { reason: 'conflict' });
        take(req, port, c);
      }
      continue;
    }
    for (let i = 0; i <= chi - clo; i++) {
      const hostPort = req.host[0] + i;
      const u = collision(held, req.protocol, hostPort, ip);
      if (u) throw inUse(req, hostPort, u);
      take(req, hostPort, clo + i);
    }
  }
  return out;
}

/** `0.0.0.0:8080->80/tcp` style text of a mapping. */
export function mappingText(m: PortMapping): string {
  const ip = m.hostIP ? (m.hostIP.includes(':') ? `[${m.hostIP}]:` : `${m.hostIP}:`) : '';
  return `${ip}${m.hostPort}->${m.containerPort}/${m.protocol}`;
}

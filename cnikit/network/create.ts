/**
 * `cnikit network create`: decides everything a new network is made of, checks it against what
 * exists, and writes NAME.conflist. Under the NETCONFPATH lock it refuses a name or bridge that
 * any config there (or, for the bridge, any host link) already has; picks the bridge name when
 * none is given (`cnikit0`, `cnikit1`, ...: the lowest free one, as Podman numbers `podman1`...);
 * checks given subnets, or picks free ones (subnets.ts), against every other network's ranges and
 * the host's addresses and routes; then writes the conflist (conflist.ts) atomically.
 *
 * It changes nothing on the host: the bridge appears on the first ADD, as with any conflist.
 */
import { randomBytes } from 'node:crypto';
import { CniCode, CniError } from '../../pkg/cni/errors.ts';
import { type Cidr, type IP, formatCidr, parseCidr } from '../../pkg/ip/cidr.ts';
import { DEFAULT_DOMAIN, type Isolation, type NetworkSpec, type Resolver, buildConflist } from './conflist.ts';
import { type HostView, readHost } from './host.ts';
import { networkSummaries, withNetconfLock, writeConflistExclusive } from './store.ts';
import { DEFAULT_POOLS, type SubnetWithGateway, type UsedRange, checkSubnets, pickFreeSubnet, pickUla } from './subnets.ts';

export interface CreateOptions {
  netconfPath: string;
  name: string;
  subnets: Cidr[];
  gateways: IP[];
  ipv6: boolean;
  internal: boolean;
  isolate: Isolation;
  icc: boolean;
  dns: boolean;
  resolver: Resolver;
  domain?: string;
  /** dnsname `upstreams`; [] = answer container names only, forward nothing. */
  upstreams?: string[];
  /** dnsname `recordsDir` (its runDir follows it). */
  dnsDir?: string;
  /** host-local `dataDir`. */
  ipamDir?: string;
  mtu?: number;
  bridge?: string;
  labels: Record<string, string>;
}

/** What create depends on, injectable for unit tests. */
export interface CreateDeps {
  host: () => Promise<HostView>;
  random: (n: number) => Buffer;
  now: () => Date;
  /** Plugin types cnikit builds (executables.ts). */
  types: ReadonlySet<string>;
}

export interface Created {
  file: string;
  spec: NetworkSpec;
  conflist: Record<string, unknown>;
}

function conflict(msg: string, details: string): CniError {
  return new CniError(CniCode.InvalidConfig, msg, details, { reason: 'conflict' });
}

function pickRanges(o: CreateOptions, used: UsedRange[], random: (n: number) => Buffer): SubnetWithGateway[] {
  const ranges = o.subnets.length ? checkSubnets(o.subnets, o.gateways, used) : [];
  if (!o.subnets.length) {
    if (o.gateways.length) throw new CniError(CniCode.InvalidConfig, '--gateway needs --subnet', 'give the subnet the gateway belongs to');
    const v4 = pickFreeSubnet(used);
    if (!v4) {
      throw conflict(`no free subnet in the default pools (${DEFAULT_POOLS.map((p) => formatCidr(p.base)).join(', ')})`,
        'each /24 there overlaps a network or a route of this host; pass --subnet');
    }
    ranges.push({ subnet: v4 });
  }
  if (o.ipv6 && !ranges.some((r) => r.subnet.family === 6)) {
    const v6 = pickUla(used, random);
    if (!v6) throw conflict('no free IPv6 ULA /64 found', 'fd00::/8 seems to be in use; pass an IPv6 --subnet');
    ranges.push({ subnet: v6 });
  }
  return ranges;
}

/** Checks `o` against NETCONFPATH and the host, then writes the network's conflist. */
export async function createNetwork(o: CreateOptions, deps: CreateDeps): Promise<Created> {
  return withNetconfLock(o.netconfPath, async () => {
    const networks = networkSummaries(o.netconfPath);
    const same = networks.find((n) => n.name === o.name);
    if (same) throw conflict(`network "${o.name}" exists`, `it is defined in ${same.file}; pick another name, or \`cnikit network rm ${o.name}\` first`);
    const host = await deps.host();
    const bridgeUser = (br: string) => networks.find((n) => n.bridge === br)?.name;
    let bridge = o.bridge;
    if (bridge) {
      const owner = bridgeUser(bridge);
      if (owner) throw conflict(`bridge "${bridge}" is used by network "${owner}"`, 'pick another --bridge, or leave it out to have a free name chosen');
      if (host.links.some((l) => l.name === bridge)) throw conflict(`an interface named "${bridge}" exists on this host`, 'pick another --bridge, or leave it out to have a free name chosen');
    } else {
      for (let n = 0; n < 1000 && !bridge; n++) {
        const cand = `cnikit${n}`;
        if (!bridgeUser(cand) && !host.links.some((l) => l.name === cand)) bridge = cand;
      }
      if (!bridge) throw conflict('no free bridge name cnikit0..cnikit999', 'pass --bridge');
    }
    const used: UsedRange[] = [
      ...networks.flatMap((n) => n.subnets.map((s) => ({ cidr: parseCidr(s), what: `network "${n.name}" (${s} in ${n.file})` }))),
      ...host.used,
    ];
    const spec: NetworkSpec = {
      name: o.name, bridge, ranges: pickRanges(o, used, deps.random), internal: o.internal, isolate: o.isolate, icc: o.icc,
      ...(o.mtu ? { mtu: o.mtu } : {}),
      ...(o.dns ? { dns: { domain: o.domain ?? DEFAULT_DOMAIN, resolver: o.resolver, ...(o.upstreams ? { upstreams: o.upstreams } : {}), ...(o.dnsDir ? { dir: o.dnsDir } : {}) } } : {}),
      labels: o.labels, ...(o.ipamDir ? { ipamDir: o.ipamDir } : {}), created: deps.now().toISOString(),
    };
    const conflist = buildConflist(spec, deps.types);
    const file = writeConflistExclusive(o.netconfPath, o.name, conflist);
    return { file, spec, conflist };
  });
}

/** The default dependencies: this host over netlink, crypto randomness, the clock. */
export function defaultCreateDeps(types: ReadonlySet<string>): CreateDeps {
  return { host: readHost, random: (n) => randomBytes(n), now: () => new Date(), types };
}

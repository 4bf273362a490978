/**
 * The portmap plugin (type `portmap`, chained after bridge): publishes container ports on the
 * host with DNAT, as `docker run -p 8080:80` does, through nftables only (see rules.ts for the
 * ruleset and why per-container state is set elements).
 *
 * ADD   validate; then ONE nftables transaction: table, sets, chains, fixed rules, and this
 *       attachment's elements added exclusively. A host port someone else holds fails the whole
 *       transaction (nothing of ours lands) with an error naming the holder; its mapping keeps
 *       working. Then, with snat and an IPv4 mapping, route_localnet=1 on the interface that
 *       routes to the container, so that 127.0.0.1:hostPort works (shared by the bridge's other
 *       containers and never undone, as upstream; if it fails, our elements are removed again).
 *       Last, like upstream, deletes the conntrack entries of UDP flows to newly mapped host
 *       ports, so that a client already sending there is mapped too (conntrack.ts). Echoes
 *       prevResult.
 * DEL   removes exactly the elements whose owner tag is this attachment's: by point queries on
 *       the keys derived from runtimeConfig + prevResult when both are there (cost independent of
 *       the number of containers), else by scanning our sets. Idempotent; nothing there is fine.
 * CHECK the fixed rules are in place, every element this attachment should own is there, ours,
 *       and points at the container, and (snat, IPv4) route_localnet is on.
 * GC    removes elements of this network whose attachment is not in cni.dev/valid-attachments,
 *       then deletes table inet cnikit if no element of anyone is left.
 */
import { aboutOf } from '../../executables.ts';
import { CniCode, CniError, describe, invalidConfig, wrap } from '../../pkg/cni/errors.ts';
import type { Result } from '../../pkg/cni/result.ts';
import type { Attachment, CmdArgs, Plugin } from '../../pkg/cni/skel.ts';
import { type Cidr, contains } from '../../pkg/ip/cidr.ts';
import { native } from '../../pkg/native.ts';
import { RouteHandle, RT_TABLE_MAIN } from '../../pkg/netlink/route.ts';
import { type Nftables, isNftError, openNftables } from '../../pkg/nftables/handle.ts';
import {
  CNIKIT_TABLE, applyRuleset, deleteElements, diffRuleset, findElements, ownerTag, parseOwnerTag, removeTableIfEmpty,
} from '../../pkg/nftables/model.ts';
import { getElement } from '../../pkg/nftables/objects.ts';
import { type PortmapConf, containerAddresses, parsePortmapConf } from './config.ts';
import { flushUdpPort } from './conntrack.ts';
import {
  ALL_SETS, type OwnedElement, type PortmapInput, mappingsFor, portmapElements, portmapRuleset, portmapSkeleton,
} from './rules.ts';

/** What portmap touches outside itself; tests replace it to inject failures. */
export interface PortmapDeps {
  /** An nftables handle in the host namespace (where the plugin runs). */
  openNft(): Nftables;
  /** Sets route_localnet=1 on the interface that routes to `ip` in the host namespace. */
  enableRouteLocalnet(ip: Cidr): void;
  /** Deletes conntrack entries of UDP flows to a host port (absent: skipped). */
  flushUdp?(family: 4 | 6, port: number): void;
  /** For CHECK: the link whose route_localnet should be on but is off (absent: not checked). */
  routeLocalnetOff?(ip: Cidr): string | undefined;
}

/** Returns the name of the link the main table routes `ip` through (the bridge), if any. */
function routingLink(ip: Cidr): string | undefined {
  const rt = RouteHandle.open();
  try {
    let best: { oif: number; prefix: number } | undefined;
    for (const r of rt.routeList(4)) {
      if ((r.table ?? RT_TABLE_MAIN) !== RT_TABLE_MAIN || r.oif === undefined || !contains(r.dst, ip)) continue;
      if (!best || r.dst.prefix > best.prefix) best = { oif: r.oif, prefix: r.dst.prefix };
    }
    if (!best) return undefined;
    const link = rt.linkGetByIndex(best.oif);
    if (!link) throw new Error(`link ${best.oif} vanished`);
    return link.name;
  } finally {
    rt.close();
  }
}

/**
 * Sets route_localnet=1 on the link that routes to `ip`; does nothing when no route leads there
 * (as upstream: localhost could not reach the container anyway).
 */
function enableRouteLocalnet(ip: Cidr): void {
  const link = routingLink(ip);
  if (link) native().sysctlWrite(null, `net/ipv4/conf/${link}/route_localnet`, '1');
}

/** For CHECK: the link routing to `ip` when its route_localnet is off (undefined when fine or unrouted). */
function routeLocalnetOff(ip: Cidr): string | undefined {
  const link = routingLink(ip);
  return link && native().sysctlRead(null, `net/ipv4/conf/${link}/route_localnet`).trim() !== '1' ? link : undefined;
}

export const defaultDeps: PortmapDeps = { openNft: () => openNftables(), enableRouteLocalnet, flushUdp: flushUdpPort, routeLocalnetOff };

function inputOf(conf: PortmapConf, a: CmdArgs): PortmapInput {
  const addrs = containerAddresses(conf.prevResult, a.ifName);
  return { network: conf.name, containerId: a.containerId, ifName: a.ifName, ...addrs, mappings: conf.mappings, snat: conf.snat, masqAll: conf.masqAll };
}

/** Turns a failed ADD transaction into a message naming the mapping and its current holder. */
function explainAddError(nft: Nftables, err: unknown, elems: OwnedElement[], owner: string): CniError {
  // Elements come last in either form of the transaction (see applyRuleset).
  if (isNftError(err) && err.index >= err.count - elems.length) {
    const e = elems[err.index - (err.count - elems.length)]!;
    if (err.code === 'EEXIST' || err.code === 'ENOTEMPTY') {
      let holder = 'another attachment';
      try {
        const [cur] = nft.getElements([getElement(CNIKIT_TABLE, e.set, e.key, e.keyEnd)]);
        const o = parseOwnerTag(cur?.comment);
        if (cur?.comment === owner) holder = 'this very attachment (ADD repeated without DEL)';
        else if (o) holder = `container "${o.containerId}" (interface ${o.ifName}) of network "${o.network}"`;
      } catch { /* the holder is only for the message */ }
      const what = e.mapping ? `host port ${e.describe}` : e.describe;
      return new CniError(CniCode.Internal, `failed to map ${what}`, `already mapped by ${holder}; nothing was changed`, { cause: err });
    }
    return wrap(err, `failed to add ${e.describe}`);
  }
  return wrap(err, 'failed to apply the portmap ruleset');
}

/** True when an element found in the kernel has exactly the key (and range end) of `e`. */
export function sameKey(f: { key: Buffer; keyEnd?: Buffer }, e: { key: Buffer; keyEnd?: Buffer }): boolean {
  return f.key.equals(e.key) && (!e.keyEnd || (f.keyEnd !== undefined && f.keyEnd.equals(e.keyEnd)));
}

/** Drops repeated (set, key, keyEnd) entries, keeping the first. */
function dedupe<T extends { set: string; key: Buffer; keyEnd?: Buffer | undefined }>(elems: T[]): T[] {
  const seen = new Set<string>();
  return elems.filter((e) => {
    const k = `${e.set}/${e.key.toString('hex')}/${e.keyEnd?.toString('hex') ?? ''}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/** Creates the portmap Plugin over `deps`. */
export function makePortmapPlugin(deps: PortmapDeps = defaultDeps): Plugin {
  return {
    about: aboutOf('portmap'),

    async add(a: CmdArgs): Promise<Result> {
      const conf = parsePortmapConf(a.conf);
      if (!conf.prevResult) throw invalidConfig('must be called as chained plugin: prevResult is missing');
      if (!conf.mappings.length) return conf.prevResult;
      const input = inputOf(conf, a);
      if (!input.v4 && !input.v6) throw invalidConfig(`prevResult has no IP address of interface "${a.ifName}" to map ports to`);
      const rs = portmapRuleset(input);
      const nft = deps.openNft();
      try {
        try {
          applyRuleset(nft, rs);
        } catch (err) {
          throw explainAddError(nft, err, rs.elements as OwnedElement[], ownerTag(conf.name, a.containerId, a.ifName));
        }
        if (conf.snat && input.v4 && mappingsFor(4, conf.mappings).length) {
          try {
            deps.enableRouteLocalnet(input.v4);
          } catch (err) {
            // Roll back: take our elements out again (the shared skeleton may stay).
            try { deleteElements(nft, CNIKIT_TABLE, rs.elements); } catch (e) { a.log.warn('rollback: failed to remove port mappings', { error: describe(e) }); }
            throw wrap(err, 'failed to enable route_localnet for localhost port mappings');
          }
        }
      } finally {
        nft.close();
      }
      for (const f of [4, 6] as const) {
        if (!(f === 4 ? input.v4 : input.v6)) continue;
        for (const m of mappingsFor(f, conf.mappings).filter((x) => x.protocol === 'udp')) {
          try {
            deps.flushUdp?.(f, m.hostPort);
          } catch (err) {
            // Informative only (as upstream): every new flow is mapped; an old one times out.
            a.log.warn(`portmap: could not flush UDP conntrack entries of port ${m.hostPort}`, { error: describe(err) });
          }
        }
      }
      return conf.prevResult;
    },

    async del(a: CmdArgs): Promise<void> {
      const conf = parsePortmapConf(a.conf);
      const owner = ownerTag(conf.name, a.containerId, a.ifName);
      const input = inputOf(conf, a);
      const nft = deps.openNft();
      try {
        // Two rounds at most: an element can vanish between the lookup and the delete only if
        // something else deleted it, and then the second round sees what is really left.
        for (let round = 0; ; round++) {
          let victims: { set: string; key: Buffer; keyEnd?: Buffer }[];
          if (conf.mappings.length && (input.v4 || input.v6)) {
            // Both hairpin forms, in case snat/masqAll changed since the ADD.
            const want = dedupe([...portmapElements({ ...input, snat: true, masqAll: false }), ...portmapElements({ ...input, snat: true, masqAll: true })]);
            const found = nft.getElements(want.map((e) => getElement(CNIKIT_TABLE, e.set, e.key, e.keyEnd)));
            // Delete what the kernel returned: for an interval set a query answers with the
            // element that contains the key, which may be another range than the one asked for.
            victims = dedupe(want.flatMap((e, i) => {
              const f = found[i];
              return f && f.comment === owner ? [{ ...e, key: f.key, keyEnd: f.keyEnd }] : [];
            }));
          } else {
            victims = findElements(nft, CNIKIT_TABLE, ALL_SETS, (c) => c === owner);
          }
          try {
            deleteElements(nft, CNIKIT_TABLE, victims);
            return;
          } catch (err) {
            if ((err as { code?: string }).code !== 'ENOENT' || round >= 1) throw wrap(err, 'failed to remove port mappings');
          }
        }
      } finally {
        nft.close();
      }
    },

    async check(a: CmdArgs): Promise<void> {
      const conf = parsePortmapConf(a.conf);
      if (!conf.prevResult) throw invalidConfig('Required prevResult missing');
      if (!conf.mappings.length) return;
      const input = inputOf(conf, a);
      const owner = ownerTag(conf.name, a.containerId, a.ifName);
      const nft = deps.openNft();
      try {
        const problems = diffRuleset(nft, portmapSkeleton());
        const want = portmapElements(input);
        const found = nft.getElements(want.map((e) => getElement(CNIKIT_TABLE, e.set, e.key, e.keyEnd)));
        want.forEach((e, i) => {
          const f = found[i];
          if (!f || !sameKey(f, e)) problems.push(`${e.describe} is missing`);
          else if (f.comment !== owner) problems.push(`${e.describe} belongs to ${f.comment ?? 'someone else'}`);
          else if (e.data && (!f.data || !f.data.equals(e.data))) problems.push(`${e.describe} points elsewhere`);
        });
        if (conf.snat && input.v4 && mappingsFor(4, conf.mappings).length) {
          const off = deps.routeLocalnetOff?.(input.v4);
          if (off) problems.push(`route_localnet is off on ${off}, so 127.0.0.1 cannot reach the published ports`);
        }
        if (problems.length) throw new CniError(CniCode.Internal, 'portmap: published ports are not in place', problems.join('; '));
      } finally {
        nft.close();
      }
    },

    async gc(a: CmdArgs, valid: Attachment[]): Promise<void> {
      const conf = parsePortmapConf(a.conf);
      const keep = new Set(valid.map((v) => `${v.containerID}\n${v.ifname}`));
      const nft = deps.openNft();
      try {
        const stale = findElements(nft, CNIKIT_TABLE, ALL_SETS, (c) => {
          const o = parseOwnerTag(c);
          return !!o && o.network === conf.name && !keep.has(`${o.containerId}\n${o.ifName}`);
        });
        try {
          deleteElements(nft, CNIKIT_TABLE, stale);
        } catch (err) {
          throw wrap(err, `failed to remove ${stale.length} stale port mappings`);
        }
        try {
          removeTableIfEmpty(nft, CNIKIT_TABLE);
        } catch (err) {
          // Harmless: an empty table costs nothing and the next GC tries again.
          a.log.warn('portmap gc: could not remove the empty cnikit table', { error: describe(err) });
        }
      } finally {
        nft.close();
      }
    },
  };
}

export const portmapPlugin: Plugin = makePortmapPlugin();

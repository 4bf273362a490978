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
 *       the keys derived from runtimeConfig + prevResult when both are there and readable (cost
 *       independent of the number of containers), else by scanning our sets, so a config, a
 *       mapping or a prevResult it cannot use never fails it. Idempotent; nothing there is fine.
 * CHECK the fixed rules are in place, every element this attachment should own is there, ours,
 *       and points at the container, and (snat, IPv4) route_localnet is on.
 * GC    removes elements of this network whose attachment is not in cni.dev/valid-attachments,
 *       then deletes table inet cnikit if no element of anyone is left. It needs only the
 *       network name, so a config it cannot parse does not stop it (docs/cni-notes.md §1.5).
 */
import { aboutOf } from '../../executables.ts';
import { CniCode, CniError, describe, invalidConfig, wrap } from '../../pkg/cni/errors.ts';
import type { Result } from '../../pkg/cni/result.ts';
import type { Attachment, CmdArgs, Plugin } from '../../pkg/cni/skel.ts';
import type { Cidr, IP } from '../../pkg/ip/cidr.ts';
import type { Kernel } from '../../pkg/kernel.ts';
import { type Nftables, isNftError } from '../../pkg/nftables/handle.ts';
import { CNIKIT_TABLE, applyRuleset, deleteElements, diffRuleset, removeTableIfEmpty } from '../../pkg/nftables/model.ts';
import { checkOwned, deleteOwned, gcOwned, ownerTag, parseOwnerTag } from '../../pkg/nftables/owned.ts';
import { type ElementSpec, getElement } from '../../pkg/nftables/objects.ts';
import { type PortmapConf, containerAddresses, parsePortmapConf } from './config.ts';
import { flushUdpPort } from './conntrack.ts';
import {
  ALL_SETS, type OwnedElement, type PortmapInput, SET, legacyHairpinElements, mappingsFor, portmapElements, portmapRuleset, portmapSkeleton,
} from './rules.ts';

/**
 * What portmap does outside nftables; tests replace it to inject failures. The kernel handles
 * themselves (nftables, routes, sysctls) come from the call (`a.kernel`).
 */
export interface PortmapDeps {
  /**
   * Sets route_localnet=1 on the interface that routes to `ip` in the host namespace (`link`:
   * that interface, when the caller has looked it up already).
   */
  enableRouteLocalnet(ip: Cidr, k: Kernel, link?: string): void | Promise<void>;
  /** Deletes conntrack entries of UDP flows to a host port (absent: skipped). */
  flushUdp?(family: 4 | 6, port: number, k: Kernel): unknown;
  /** For CHECK: the link whose route_localnet should be on but is off (absent: not checked). */
  routeLocalnetOff?(ip: Cidr, k: Kernel, link?: string): Promise<string | undefined>;
}

/** Returns the name of the link the host routes `ip` through (the bridge), if any. */
async function routingLink(ip: IP, k: Kernel): Promise<string | undefined> {
  const rt = await k.route();
  const oif = await rt.routeGetOif(ip);
  if (oif === undefined) return undefined;
  const link = await rt.linkGetByIndex(oif);
  if (!link) throw new Error(`link ${oif} vanished`);
  return link.name;
}

/**
 * The hairpin elements' links: per family the attachment maps ports in, the link that routes to
 * the container's address. `complete` is false when one of them has no route (DEL then scans).
 */
async function hairpinLinks(input: PortmapInput, k: Kernel): Promise<{ via: NonNullable<PortmapInput['via']>; complete: boolean }> {
  const via: NonNullable<PortmapInput['via']> = {};
  let complete = true;
  for (const f of [4, 6] as const) {
    const cip = f === 4 ? input.v4 : input.v6;
    if (!cip || !mappingsFor(f, input.mappings).length) continue;
    const link = await routingLink(cip, k);
    if (link) via[f] = link;
    else complete = false;
  }
  return { via, complete };
}

/**
 * Sets route_localnet=1 on the link that routes to `ip`; does nothing when no route leads there
 * (as upstream: localhost could not reach the container anyway).
 */
async function enableRouteLocalnet(ip: Cidr, k: Kernel, known?: string): Promise<void> {
  const link = known ?? await routingLink(ip, k);
  if (link) await k.sysctlWrite(null, `net/ipv4/conf/${link}/route_localnet`, '1');
}

/** For CHECK: the link routing to `ip` when its route_localnet is off (undefined when fine or unrouted). */
async function routeLocalnetOff(ip: Cidr, k: Kernel, known?: string): Promise<string | undefined> {
  const link = known ?? await routingLink(ip, k);
  return link && (await k.sysctlRead(null, `net/ipv4/conf/${link}/route_localnet`)).trim() !== '1' ? link : undefined;
}

async function flushUdp(family: 4 | 6, port: number, k: Kernel): Promise<number> {
  return flushUdpPort(await k.netfilter(), family, port);
}

const HAIRPIN_SETS = new Set<string>([SET.HAIRPIN_IF4, SET.HAIRPIN_IF6]);

export const defaultDeps: PortmapDeps = { enableRouteLocalnet, flushUdp, routeLocalnetOff };

function inputOf(conf: PortmapConf, a: CmdArgs): PortmapInput {
  const addrs = containerAddresses(conf.prevResult, a.ifName);
  return { network: conf.name, containerId: a.containerId, ifName: a.ifName, ...addrs, mappings: conf.mappings, snat: conf.snat, masqAll: conf.masqAll };
}

/** Turns a failed ADD transaction into a message naming the mapping and its current holder. */
async function explainAddError(nft: Nftables, err: unknown, elems: readonly OwnedElement[], owner: string): Promise<CniError> {
  const e = isNftError(err) ? elems.find((x) => x === err.ref) : undefined;
  if (!e) return wrap(err, 'failed to apply the portmap ruleset');
  if ((err as { code?: string }).code === 'EEXIST' || (err as { code?: string }).code === 'ENOTEMPTY') {
    let holder = 'another attachment';
    try {
      const [cur] = await nft.getElements([getElement(CNIKIT_TABLE, e.set, e.key, e.keyEnd)]);
      const o = parseOwnerTag(cur?.comment);
      if (cur?.comment === owner) holder = 'this very attachment (ADD repeated without DEL)';
      else if (o) holder = `container "${o.containerId}" (interface ${o.ifName}) of network "${o.network}"`;
    } catch { /* the holder is only for the message */ }
    const what = e.mapping ? `host port ${e.describe}` : e.describe;
    return new CniError(CniCode.Internal, `failed to map ${what}`, `already mapped by ${holder}; nothing was changed`, { cause: err });
  }
  return wrap(err, `failed to add ${e.describe}`);
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
      if (conf.snat && !conf.masqAll) input.via = (await hairpinLinks(input, a.kernel)).via;
      const rs = portmapRuleset(input);
      const nft = await a.kernel.nftables();
      try {
        await applyRuleset(nft, rs);
      } catch (err) {
        throw await explainAddError(nft, err, rs.elements as OwnedElement[], ownerTag(conf.name, a.containerId, a.ifName));
      }
      if (conf.snat && input.v4 && mappingsFor(4, conf.mappings).length) {
        try {
          await deps.enableRouteLocalnet(input.v4, a.kernel, input.via?.[4]);
        } catch (err) {
          // Roll back: take our elements out again (the shared skeleton may stay).
          try { await deleteElements(nft, CNIKIT_TABLE, rs.elements); } catch (e) { a.log.warn('rollback: failed to remove port mappings', { error: describe(e) }); }
          throw wrap(err, 'failed to enable route_localnet for localhost port mappings');
        }
      }
      for (const f of [4, 6] as const) {
        if (!(f === 4 ? input.v4 : input.v6)) continue;
        for (const m of mappingsFor(f, conf.mappings).filter((x) => x.protocol === 'udp')) {
          try {
            await deps.flushUdp?.(f, m.hostPort, a.kernel);
          } catch (err) {
            // Informative only (as upstream): every new flow is mapped; an old one times out.
            a.log.warn(`portmap: could not flush UDP conntrack entries of port ${m.hostPort}`, { error: describe(err) });
          }
        }
      }
      return conf.prevResult;
    },

    async del(a: CmdArgs): Promise<void> {
      // DEL needs only the owner tag (network, container, ifname); the rest only makes it faster.
      let conf: PortmapConf | undefined;
      try {
        conf = parsePortmapConf(a.conf);
      } catch (err) {
        a.log.warn('portmap DEL: config not usable, removing this attachment\'s mappings by owner', { error: describe(err) });
      }
      const input = conf && inputOf(conf, a);
      // Every hairpin form (snat or masqAll may have changed since the ADD, or an earlier
      // version made it); without the mappings, the addresses or a route to them, a scan of our
      // sets by owner.
      let candidates: ElementSpec[] | undefined;
      if (conf?.mappings.length && input && (input.v4 || input.v6)) {
        try {
          const { via, complete } = await hairpinLinks(input, a.kernel);
          if (complete) {
            candidates = [...portmapElements({ ...input, via, snat: true, masqAll: false }), ...portmapElements({ ...input, snat: true, masqAll: true }), ...legacyHairpinElements(input)];
          }
        } catch (err) {
          a.log.warn('portmap DEL: no route lookup, removing this attachment\'s mappings by owner', { error: describe(err) });
        }
      }
      try {
        await deleteOwned(await a.kernel.nftables(), CNIKIT_TABLE, ALL_SETS, ownerTag(a.conf.name, a.containerId, a.ifName), candidates);
      } catch (err) {
        throw wrap(err, 'failed to remove port mappings');
      }
    },

    async check(a: CmdArgs): Promise<void> {
      const conf = parsePortmapConf(a.conf);
      if (!conf.prevResult) throw invalidConfig('Required prevResult missing');
      if (!conf.mappings.length) return;
      const input = inputOf(conf, a);
      if (conf.snat && !conf.masqAll) input.via = (await hairpinLinks(input, a.kernel)).via;
      const nft = await a.kernel.nftables();
      const problems = await diffRuleset(nft, portmapSkeleton());
      const owner = ownerTag(conf.name, a.containerId, a.ifName);
      let owned = await checkOwned(nft, CNIKIT_TABLE, portmapElements(input), owner);
      if (owned.some((p) => HAIRPIN_SETS.has(p.element.set))) {
        // An attachment made before the hash sets has its hairpin in the legacy range instead.
        const legacy = legacyHairpinElements(input);
        if ((await checkOwned(nft, CNIKIT_TABLE, legacy, owner)).length < legacy.length) owned = owned.filter((p) => !HAIRPIN_SETS.has(p.element.set));
      }
      for (const p of owned) {
        const d = p.element.describe;
        problems.push(p.problem === 'missing' ? `${d} is missing` : p.problem === 'foreign' ? `${d} belongs to ${p.owner ?? 'someone else'}` : `${d} points elsewhere`);
      }
      if (conf.snat && input.v4 && mappingsFor(4, conf.mappings).length) {
        const off = await deps.routeLocalnetOff?.(input.v4, a.kernel, input.via?.[4]);
        if (off) problems.push(`route_localnet is off on ${off}, so 127.0.0.1 cannot reach the published ports`);
      }
      if (problems.length) throw new CniError(CniCode.Internal, 'portmap: published ports are not in place', problems.join('; '));
    },

    async gc(a: CmdArgs, valid: Attachment[]): Promise<void> {
      // The owner tags carry the network (skel checked the name): nothing else of the config is
      // read, so mappings or options GC cannot parse never keep stale mappings alive.
      const nft = await a.kernel.nftables();
      try {
        await gcOwned(nft, CNIKIT_TABLE, ALL_SETS, a.conf.name, valid);
      } catch (err) {
        throw wrap(err, 'failed to remove stale port mappings');
      }
      try {
        await removeTableIfEmpty(nft, CNIKIT_TABLE);
      } catch (err) {
        // Harmless: an empty table costs nothing and the next GC tries again.
        a.log.warn('portmap gc: could not remove the empty cnikit table', { error: describe(err) });
      }
    },
  };
}

export const portmapPlugin: Plugin = makePortmapPlugin();

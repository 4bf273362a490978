/**
 * The firewall plugin (type `firewall`, chained after bridge): keeps containers' traffic flowing
 * on hosts whose forward chains drop by default (iptables-nft's `filter FORWARD` after
 * `iptables -P FORWARD DROP`, as Docker leaves it, or a native nft table), and isolates networks
 * (`ingressPolicy`, `internal`, `icc`, `strictIsolation`) in table inet cnikit. rules.ts holds
 * the ruleset and why it passes its verdict on as a packet mark; foreign.ts the one rule we add
 * to foreign chains; network.ts the state a network's containers share.
 *
 * ADD   validate; bring the bridge's shared state in line with this network's policy; ONE
 *       transaction: table, sets, chains, fixed rules, the network's elements (shared) and this
 *       attachment's `bridge . address` elements (exclusive; one left by a container whose DEL
 *       never came is taken over, since IPAM gave the address to us); with icc off, the
 *       container's bridge port is isolated; then our rule at the end of every foreign forward
 *       chain with policy drop. A failure undoes it all. Echoes prevResult.
 * DEL   removes exactly this attachment's elements (point queries with prevResult, else a scan
 *       for its owner tag), then the bridge's shared state if it was its last container, and our
 *       foreign rules with the last container of all. Idempotent; never fails on input it cannot
 *       use. The port flag goes with the veth (bridge DEL).
 * CHECK the fixed part, this attachment's elements, the bridge's state against the config, our
 *       rule in every foreign drop chain, the port flag.
 * GC    removes elements of this network whose attachment is not in cni.dev/valid-attachments,
 *       then what network.ts releases, then table inet cnikit if nothing of anyone is left.
 */
import { aboutOf } from '../../executables.ts';
import { CniCode, CniError, describe, invalidConfig, wrap } from '../../pkg/cni/errors.ts';
import type { Result } from '../../pkg/cni/result.ts';
import type { Attachment, CmdArgs, Plugin } from '../../pkg/cni/skel.ts';
import type { Kernel } from '../../pkg/kernel.ts';
import type { Logger } from '../../pkg/log.ts';
import { type Nftables, isNftError } from '../../pkg/nftables/handle.ts';
import { CNIKIT_TABLE, applyRuleset, deleteElements, diffRuleset, findElements, removeTableIfEmpty } from '../../pkg/nftables/model.ts';
import { checkOwned, deleteOwned, gcOwned, ownerTag } from '../../pkg/nftables/owned.ts';
import { getElement } from '../../pkg/nftables/objects.ts';
import { Rollback } from '../../pkg/rollback.ts';
import { type FirewallAttachment, type FirewallConf, attachmentOf, parseFirewallConf, parseFirewallDel } from './config.ts';
import { checkForeignRules, ensureForeignRules } from './foreign.ts';
import { bridgeDifferences, deleteStale, planBridge, readBridge, releaseBridges } from './network.ts';
import {
  CONTAINER_SETS, type FirewallElement, SET, bridgeOfKey, containerElements, firewallRuleset, firewallSkeleton, parseNetworkTag,
} from './rules.ts';

/** What the firewall touches outside nftables, and the foreign rules; tests replace them to inject failures. */
export interface FirewallDeps {
  /** Sets or clears the `isolated` flag of bridge port `veth` in the host namespace. */
  setPortIsolated(k: Kernel, veth: string, on: boolean): Promise<void>;
  /** Whether bridge port `veth` is isolated (undefined: no such port). */
  portIsolated(k: Kernel, veth: string): Promise<boolean | undefined>;
  /** Puts our rule into every foreign drop chain (foreign.ts). */
  ensureForeignRules(nft: Nftables): Promise<string[]>;
}

export const defaultDeps: FirewallDeps = {
  async setPortIsolated(k, veth, on) {
    const rt = await k.route();
    const link = await rt.linkGet(veth);
    if (!link) throw new Error(`no link "${veth}" in the host namespace`);
    await rt.linkSetIsolated(link.index, on);
  },
  async portIsolated(k, veth) {
    return (await k.route()).linkIsolated(veth);
  },
  ensureForeignRules,
};

/**
 * Applies the ADD's ruleset. An address element that exists already is a leftover (IPAM gave the
 * address to this attachment; with our own owner tag, ADD was repeated): all such are deleted
 * and the ruleset is applied once more.
 */
async function applyTakingOver(nft: Nftables, a: FirewallAttachment, p: FirewallConf, log: Logger): Promise<void> {
  const rs = firewallRuleset(a, p);
  for (let round = 0; ; round++) {
    try {
      await applyRuleset(nft, rs);
      return;
    } catch (err) {
      const e = isNftError(err) ? rs.elements.find((x) => x === err.ref) : undefined;
      if (!e || e.shared || (err as { code?: string }).code !== 'EEXIST' || round >= 1) throw err;
      const mine = rs.elements.filter((x) => !x.shared) as FirewallElement[];
      const held = await nft.getElements(mine.map((x) => getElement(CNIKIT_TABLE, x.set, x.key)));
      const stale = mine.filter((_x, i) => held[i]);
      for (const x of stale) {
        const by = held[mine.indexOf(x)]?.comment;
        if (by !== x.comment) log.warn(`firewall: ${x.describe} was held by ${by ?? 'an untagged element'}; taken over`);
      }
      await deleteStale(nft, stale);
    }
  }
}

/** Removes an attachment's elements and releases what it leaves unused; returns how many elements went. */
async function teardown(nft: Nftables, owner: string, known: Pick<FirewallAttachment, 'network' | 'containerId' | 'ifName' | 'bridge' | 'addrs'> | undefined, log: Logger): Promise<number> {
  let bridges: string[];
  let n: number;
  if (known) {
    n = await deleteOwned(nft, CNIKIT_TABLE, CONTAINER_SETS, owner, containerElements(known));
    bridges = [known.bridge];
  } else {
    const found = await findElements(nft, CNIKIT_TABLE, CONTAINER_SETS, (c) => c === owner);
    await deleteElements(nft, CNIKIT_TABLE, found);
    n = found.length;
    bridges = [...new Set(found.map((e) => bridgeOfKey(e.key)))];
  }
  await releaseBridges(nft, bridges, log);
  return n;
}

/** Creates the firewall Plugin over `deps`. */
export function makeFirewallPlugin(deps: FirewallDeps = defaultDeps): Plugin {
  return {
    about: aboutOf('firewall'),

    async add(a: CmdArgs): Promise<Result> {
      const conf = parseFirewallConf(a.conf);
      const att = attachmentOf(conf, a.containerId, a.ifName);
      if (!conf.icc && !att.hostVeth) {
        throw invalidConfig('icc false (or ingressPolicy "isolated") needs the host end of the container\'s veth in prevResult.interfaces, to isolate its bridge port');
      }
      const owner = ownerTag(conf.name, a.containerId, a.ifName);
      const nft = await a.kernel.nftables();
      const undo = new Rollback(a.log);
      try {
        const plan = await planBridge(nft, conf.name, att.bridge, conf);
        if (plan.note) a.log.info(`firewall: ${plan.note}`);
        await deleteStale(nft, plan.stale);
        await applyTakingOver(nft, att, conf, a.log);
        undo.push('remove the firewall elements', () => teardown(nft, owner, att, a.log));
        if (!conf.icc) {
          await deps.setPortIsolated(a.kernel, att.hostVeth!, true);
          undo.push(`clear the isolated flag of ${att.hostVeth}`, () => deps.setPortIsolated(a.kernel, att.hostVeth!, false));
        }
        const changed = await deps.ensureForeignRules(nft);
        if (changed.length) a.log.info(`firewall: added the cnikit accept rule to ${changed.join(', ')}`);
      } catch (err) {
        await undo.run();
        throw wrap(err, 'failed to set up the firewall');
      }
      return conf.prevResult!;
    },

    async del(a: CmdArgs): Promise<void> {
      const d = parseFirewallDel(a.conf, a.containerId, a.ifName);
      const owner = ownerTag(d.network, a.containerId, a.ifName);
      try {
        await teardown(await a.kernel.nftables(), owner, d.complete ? d : undefined, a.log);
      } catch (err) {
        throw wrap(err, 'failed to remove the firewall elements');
      }
    },

    async check(a: CmdArgs): Promise<void> {
      const conf = parseFirewallConf(a.conf);
      if (!conf.prevResult) throw invalidConfig('Required prevResult missing');
      const att = attachmentOf(conf, a.containerId, a.ifName);
      const nft = await a.kernel.nftables();
      const problems = await diffRuleset(nft, firewallSkeleton(conf.adminChain));
      for (const p of await checkOwned(nft, CNIKIT_TABLE, containerElements(att), ownerTag(conf.name, a.containerId, a.ifName))) {
        const d = (p.element as FirewallElement).describe;
        problems.push(p.problem === 'foreign' ? `${d} belongs to ${p.owner ?? 'an untagged element'}` : `${d} is missing`);
      }
      const diff = bridgeDifferences(await readBridge(nft, att.bridge), conf.name, att.bridge, conf);
      problems.push(...diff.missing, ...diff.stale.map((s) => s.describe));
      problems.push(...await checkForeignRules(nft));
      if (!conf.icc && att.hostVeth && (await deps.portIsolated(a.kernel, att.hostVeth)) !== true) {
        problems.push(`bridge port ${att.hostVeth} is not isolated, so containers of ${att.bridge} reach each other`);
      }
      if (problems.length) throw new CniError(CniCode.Internal, 'firewall: the container\'s firewall state is not in place', problems.join('; '));
    },

    async gc(a: CmdArgs, valid: Attachment[]): Promise<void> {
      const network = typeof a.conf.name === 'string' ? a.conf.name : '';
      const nft = await a.kernel.nftables();
      try {
        await gcOwned(nft, CNIKIT_TABLE, CONTAINER_SETS, network, valid);
        const bridges = (await nft.listElements(CNIKIT_TABLE, SET.BRIDGES)).filter((e) => parseNetworkTag(e.comment) === network).map((e) => bridgeOfKey(e.key));
        await releaseBridges(nft, bridges, a.log);
      } catch (err) {
        throw wrap(err, 'failed to remove stale firewall elements');
      }
      try {
        await removeTableIfEmpty(nft, CNIKIT_TABLE);
      } catch (err) {
        // Harmless: an empty table costs nothing and the next GC tries again.
        a.log.warn('firewall gc: could not remove the empty cnikit table', { error: describe(err) });
      }
    },
  };
}

export const firewallPlugin: Plugin = makeFirewallPlugin();

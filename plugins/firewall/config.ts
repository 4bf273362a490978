/**
 * The firewall plugin's config (docs/cni-notes.md §11.1): the reference keys `backend`,
 * `iptablesAdminChainName`, `ingressPolicy` (and `firewalldZone`, accepted and unused as the
 * reference's iptables backend does), cnikit's extensions `internal`, `icc` and
 * `strictIsolation`, and what the plugin takes from prevResult: the host-side interface (the
 * bridge) and the container's addresses. Every check happens here, before anything is touched.
 *
 * `strictIsolation: true` is netavark's `isolate: strict` (docs/cni-notes.md §15.2): besides
 * keeping other networks out (the ingress part, which it implies), nothing of this network
 * reaches another cnikit bridge, an open one included, while its containers still reach each
 * other, the outside and other networks' published ports through a host address. The
 * reference's `isolated` is not that: it also cuts the bridge's containers off from each other
 * (icc false), which is why `--isolate strict` writes `same-bridge` plus this key.
 *
 * `backend`: cnikit has one implementation, its own nftables one (plugins/firewall/rules.ts),
 * selected by `""`, by leaving the key out, or by `"nftables"`. `"iptables"` and `"firewalld"`
 * are refused with code 2 naming the key: the reference's iptables backend writes chains in
 * iptables' own filter table (CNI-FORWARD, CNI-ADMIN, the isolation stages) that admins and
 * scripts manipulate with `iptables`, and works with iptables-legacy; ours decides in table
 * `inet cnikit` and only adds one tagged rule to each foreign drop chain. The packets that pass
 * are not even the same (ours lets published ports through), so claiming "iptables" would give
 * whoever asked for it something else under its name. firewalld is spoken to over D-Bus, which
 * cnikit does not do.
 *
 * Not here: the DEL side, which must not fail on input it cannot use (`parseFirewallDel`).
 */
import * as z from 'zod/mini';
import { CniCode, CniError, invalidConfig } from '../../pkg/cni/errors.ts';
import { type Result, containerIPs, parsePrevResult, parseResult } from '../../pkg/cni/result.ts';
import { netConfBase, parseWith } from '../../pkg/cni/schema.ts';
import { type Cidr, tryParseCidr } from '../../pkg/ip/cidr.ts';

const schema = z.object({
  ...netConfBase,
  backend: z.optional(z.string()),
  iptablesAdminChainName: z.optional(z.string()),
  ingressPolicy: z.optional(z.string()),
  firewalldZone: z.optional(z.string()),
  internal: z.optional(z.boolean()),
  icc: z.optional(z.boolean()),
  strictIsolation: z.optional(z.boolean()),
});

export type IngressPolicy = 'open' | 'same-bridge' | 'isolated';

/** The reference's default admin chain name. */
export const DEFAULT_ADMIN_CHAIN = 'CNI-ADMIN';

/** What the firewall does for one network, decided from its config. */
export interface NetworkPolicy {
  ingressPolicy: IngressPolicy;
  /** Nothing is forwarded between the bridge and any other interface. */
  internal: boolean;
  /** Containers of the bridge may reach each other (false: Docker's enable_icc=false; implied by `isolated`). */
  icc: boolean;
  /** Nothing is forwarded from this bridge into another cnikit bridge either (netavark isolate strict; implies ingress isolation). */
  strict: boolean;
  /** The chain in table inet cnikit that runs first for this network's traffic. */
  adminChain: string;
}

export interface FirewallConf extends NetworkPolicy {
  name: string;
  cniVersion: string;
  /** prevResult in the internal shape; undefined when the runtime sent none. */
  prevResult: Result | undefined;
}

/** The attachment as the firewall sees it: its host-side interface and its addresses. */
export interface FirewallAttachment {
  network: string;
  containerId: string;
  ifName: string;
  /** The host-side interface the container's traffic comes from: the bridge (prevResult.interfaces[0]). */
  bridge: string;
  /** The container end's peer on the host (the veth enslaved to the bridge), when prevResult names it. */
  hostVeth: string | undefined;
  addrs: Cidr[];
}

const BACKEND_OURS = ['', 'nftables'];

function checkBackend(backend: string | undefined): void {
  if (backend === undefined || BACKEND_OURS.includes(backend)) return;
  const use = 'set "backend": "" (or remove the key) for cnikit\'s nftables firewall';
  if (backend === 'iptables') {
    throw new CniError(CniCode.UnsupportedField, 'unsupported config field "backend"',
      `backend "iptables": cnikit implements the firewall in nftables under backend "" (its table inet cnikit plus one tagged rule in each foreign forward chain with policy drop), not as the reference's iptables chains (CNI-FORWARD, CNI-ADMIN); ${use}`);
  }
  if (backend === 'firewalld') {
    throw new CniError(CniCode.UnsupportedField, 'unsupported config field "backend"',
      `backend "firewalld": cnikit does not talk to firewalld over D-Bus; it implements the firewall in nftables under backend "": ${use}, and put the bridge into firewalld's trusted zone if firewalld rejects forwarded traffic`);
  }
  throw invalidConfig(`backend: must be "", "nftables", "iptables" or "firewalld", got ${JSON.stringify(backend)}`);
}

function ingressPolicyOf(v: string | undefined): IngressPolicy {
  if (v === undefined || v === '' || v === 'open') return 'open';
  if (v === 'same-bridge' || v === 'isolated') return v;
  throw new CniError(CniCode.InvalidConfig, `unknown ingress policy: ${JSON.stringify(v)}`, 'ingressPolicy: must be "open", "same-bridge" or "isolated"');
}

/** Chain names cnikit uses itself in table inet cnikit (the admin chain must not be one). */
const OUR_CHAIN = /^(firewall|portmap|ipmasq)_/;

function adminChainOf(v: string | undefined): string {
  if (v === undefined || v === '') return DEFAULT_ADMIN_CHAIN;
  // 28 characters is iptables' limit, so every name the reference accepts is accepted here.
  if (!/^[A-Za-z0-9_.-]{1,28}$/.test(v) || v.startsWith('-')) {
    throw invalidConfig(`iptablesAdminChainName: must be 1-28 characters of A-Z a-z 0-9 _ . - not starting with "-", got ${JSON.stringify(v)}`);
  }
  if (OUR_CHAIN.test(v)) throw invalidConfig(`iptablesAdminChainName: ${JSON.stringify(v)} is a name cnikit uses for its own chains`);
  return v;
}

/** Parses the config for ADD and CHECK; throws CniError 7 (invalid) or 2 (a backend cnikit does not implement). No side effects. */
export function parseFirewallConf(raw: Record<string, unknown>): FirewallConf {
  const c = parseWith(schema, raw);
  checkBackend(c.backend);
  let ingressPolicy = ingressPolicyOf(c.ingressPolicy);
  if (ingressPolicy === 'isolated' && c.icc === true) {
    throw invalidConfig('icc: ingressPolicy "isolated" already keeps containers of the bridge from reaching each other; "icc": true contradicts it');
  }
  const strict = c.strictIsolation ?? false;
  if (strict && c.ingressPolicy === 'open') {
    throw invalidConfig('strictIsolation: it keeps other networks out as well as in; "ingressPolicy": "open" contradicts it (use "same-bridge", or leave ingressPolicy out)');
  }
  // Strict isolation includes the ingress part: an unset (or "") policy becomes same-bridge.
  if (strict && ingressPolicy === 'open') ingressPolicy = 'same-bridge';
  const prevResult = parsePrevResult(c.prevResult, c.cniVersion ?? '0.1.0');
  return {
    name: c.name, cniVersion: c.cniVersion ?? '0.1.0', prevResult, ingressPolicy,
    internal: c.internal ?? false, icc: ingressPolicy === 'isolated' ? false : (c.icc ?? true), strict, adminChain: adminChainOf(c.iptablesAdminChainName),
  };
}

/** Linux's limit on interface names (IFNAMSIZ - 1). */
const MAX_IFNAME = 15;

/** The host-side interface of a result: interfaces[0] when it is not inside a sandbox (the bridge). */
function hostInterface(r: Result): string | undefined {
  const first = r.interfaces?.[0];
  return first && !first.sandbox && first.name ? first.name : undefined;
}

/** The host end of the container's veth: an interface without sandbox after the bridge (bridge's result lists it second). */
function hostVethOf(r: Result): string | undefined {
  return r.interfaces?.slice(1).find((i) => !i.sandbox && i.name)?.name;
}

function addressesOf(r: Result, ifName: string): Cidr[] {
  return containerIPs(r, ifName).flatMap((ip) => {
    const c = tryParseCidr(ip.address);
    return c ? [c] : [];
  });
}

/** Builds the attachment from prevResult for ADD and CHECK; throws CniError 7 when prevResult lacks what the firewall needs. */
export function attachmentOf(conf: FirewallConf, containerId: string, ifName: string): FirewallAttachment {
  const r = conf.prevResult;
  if (!r) throw invalidConfig('must be called as chained plugin: prevResult is missing (put firewall after bridge in the plugin list)');
  const bridge = hostInterface(r);
  if (!bridge) {
    throw invalidConfig('prevResult.interfaces[0] is not a host interface: the firewall needs the bridge the container is attached to (chain it after "bridge")');
  }
  if (bridge.length > MAX_IFNAME) throw invalidConfig(`prevResult.interfaces[0].name: ${JSON.stringify(bridge)} is longer than ${MAX_IFNAME} characters`);
  const addrs = addressesOf(r, ifName);
  if (!addrs.length) throw invalidConfig(`prevResult has no IP address of the container interface "${ifName}"`);
  const veth = hostVethOf(r);
  return { network: conf.name, containerId, ifName, bridge, hostVeth: veth && veth.length <= MAX_IFNAME ? veth : undefined, addrs };
}

/**
 * What DEL can use of its input, never throwing: the network name (skel checked it), and the
 * bridge, veth and addresses from prevResult when it is there and readable. Missing pieces are
 * undefined and DEL falls back to scanning for the attachment's owner tag.
 */
export function parseFirewallDel(raw: Record<string, unknown>, containerId: string, ifName: string): FirewallAttachment & { complete: boolean } {
  const name = typeof raw.name === 'string' ? raw.name : '';
  let r: Result | undefined;
  try {
    const version = typeof raw.cniVersion === 'string' ? raw.cniVersion : '0.1.0';
    r = raw.prevResult && typeof raw.prevResult === 'object' ? parseResult(raw.prevResult, version, 'prevResult') : undefined;
  } catch {
    r = undefined; // an unreadable prevResult is as good as none: DEL scans instead
  }
  const bridge = r && hostInterface(r);
  const ok = bridge !== undefined && bridge.length <= MAX_IFNAME;
  const addrs = r ? addressesOf(r, ifName) : [];
  const veth = r && hostVethOf(r);
  return {
    network: name, containerId, ifName, bridge: ok ? bridge : '', hostVeth: veth && veth.length <= MAX_IFNAME ? veth : undefined,
    addrs, complete: ok && addrs.length > 0,
  };
}

/**
 * Attaching a container's namespace to networks and detaching it, shared by `run`, `connect`,
 * `disconnect` and `network rm -f`: which capability arguments go to which network (ports to the
 * first that can publish, each --ip to the network whose subnet holds it, the MAC to the first,
 * aliases to all), the attachment as the state file records it (from the ADD result), and DEL
 * with the network's config, or the copy the results cache kept at ADD when the config is gone.
 */
import type { PortMapping } from '../../pkg/cni/capabilities.ts';
import { CniCode, CniError } from '../../pkg/cni/errors.ts';
import { type Cidr, contains, formatCidr, parseIP, tryParseCidr } from '../../pkg/ip/cidr.ts';
import type { Result } from '../../pkg/cni/result.ts';
import type { ResultsCache } from '../../runtime/cache.ts';
import { type NetworkConfigList, parseConfList, resolveNetwork } from '../../runtime/conf.ts';
import type { CniRuntime, RuntimeConf } from '../../runtime/runtime.ts';
import { subnetsOf } from '../network/conflist.ts';
import type { AttachmentState } from './state.ts';

/** True when a plugin of the list declares capability `cap`. */
export function hasCapability(list: NetworkConfigList, cap: string): boolean {
  return list.plugins.some((p) => p.capabilities?.[cap] === true);
}

/** The subnets a list's IPAM hands out from. */
export function subnetsOfList(list: NetworkConfigList): Cidr[] {
  try {
    return subnetsOf(JSON.parse(list.bytes.toString('utf8')) as Record<string, unknown>);
  } catch {
    return [];
  }
}

/** What the container asks of its networks. */
export interface AttachRequest {
  /** K8S_POD_NAME: its --name, else its id (dnsname needs a name; Docker names every container). */
  name: string;
  aliases: string[];
  ports: PortMapping[];
  /** --ip/--ip6 addresses. */
  ips: string[];
  mac?: string;
  /** CNI_ARGS and capability args the user passed through. */
  args: [string, string][];
  capabilityArgs: Record<string, unknown>;
}

function configError(msg: string, details: string): CniError {
  return new CniError(CniCode.InvalidConfig, msg, details, { reason: 'config-invalid' });
}

/**
 * Splits a request over the networks, in order: returns each one's CNI_ARGS and capability args.
 * Throws before anything is done when a network cannot take what is asked of it.
 */
export function planAttachments(lists: readonly NetworkConfigList[], req: AttachRequest): { args: [string, string][]; caps: Record<string, unknown> }[] {
  const plans = lists.map(() => ({ args: [...req.args] as [string, string][], caps: { ...req.capabilityArgs } as Record<string, unknown> }));
  for (const p of plans) {
    if (p.args.some(([k]) => k === 'K8S_POD_NAME')) continue;
    if (!p.args.some(([k]) => k === 'IgnoreUnknown')) p.args.unshift(['IgnoreUnknown', '1']);
    p.args.push(['K8S_POD_NAME', req.name]);
  }
  if (req.ports.length) {
    const i = lists.findIndex((l) => hasCapability(l, 'portMappings'));
    if (i < 0) {
      throw configError(`network "${lists[0]!.name}" cannot publish ports`,
        `no plugin in ${lists[0]!.file} declares the portMappings capability; add {"type": "portmap", "capabilities": {"portMappings": true}} to its plugins, or drop -p`);
    }
    plans[i]!.caps.portMappings = req.ports;
  }
  for (const ip of req.ips) {
    const addr = parseIP(ip);
    const i = lists.findIndex((l) => subnetsOfList(l).some((s) => contains(s, addr)));
    if (i < 0) {
      const where = lists.map((l) => `${l.name}: ${subnetsOfList(l).map(formatCidr).join(', ') || '?'}`).join('; ');
      throw configError(`--ip ${ip} is in none of the networks' subnets`, `${where}; pick an address inside one`);
    }
    if (!hasCapability(lists[i]!, 'ips')) throw configError(`network "${lists[i]!.name}" cannot take a static address`, `no plugin in ${lists[i]!.file} declares the ips capability (the bridge plugin does: "capabilities": {"ips": true})`);
    const caps = plans[i]!.caps;
    caps.ips = [...((caps.ips as string[] | undefined) ?? []), ip];
  }
  if (req.mac) {
    if (!hasCapability(lists[0]!, 'mac')) throw configError(`network "${lists[0]!.name}" cannot set a MAC address`, `no plugin in ${lists[0]!.file} declares the mac capability`);
    plans[0]!.caps.mac = req.mac;
  }
  if (req.aliases.length) lists.forEach((l, i) => { plans[i]!.caps.aliases = { [l.name]: req.aliases }; });
  return plans;
}

/** The attachment as the state file records it, from its ADD result. */
export function attachmentState(list: NetworkConfigList, conf: RuntimeConf, r: Result, names: string[]): AttachmentState {
  const ips = r.ips ?? [];
  const ctr = (r.interfaces ?? []).find((i) => i.name === conf.ifName && i.sandbox);
  const a: AttachmentState = {
    network: list.name, ifName: conf.ifName,
    addresses: ips.map((ip) => ip.address).filter((x) => tryParseCidr(x)),
    gateways: [...new Set(ips.flatMap((ip) => (ip.gateway ? [ip.gateway] : [])))],
    ports: Array.isArray(conf.capabilityArgs.portMappings) ? conf.capabilityArgs.portMappings as PortMapping[] : [],
    names: hasCapability(list, 'aliases') || list.plugins.some((p) => p.type === 'dnsname') ? names : [],
  };
  if (ctr?.mac) a.mac = ctr.mac;
  const d = r.dns;
  if (d?.nameservers?.length) {
    const search = [...(d.search ?? [])];
    if (d.domain && !search.includes(d.domain)) search.push(d.domain);
    a.dns = { nameservers: d.nameservers, search, options: d.options ?? [] };
  }
  return a;
}

/**
 * The network config to DEL an attachment with: the one in NETCONFPATH, or, when it is gone or
 * broken, the bytes the results cache kept at ADD (as `cnikit del` does).
 */
export function listForDel(netconfPath: string, network: string, cache: ResultsCache, containerId: string, ifName: string): NetworkConfigList {
  try {
    return resolveNetwork(netconfPath, network);
  } catch (err) {
    let cached;
    try { cached = cache.read(network, containerId, ifName); } catch { throw err; }
    if (!cached?.config.length) throw err;
    return parseConfList(cached.config, `cached config in ${cached.file}`);
  }
}

/** DELs one attachment (args and capability args come from the cache, as at ADD). */
export async function detach(rt: CniRuntime, netconfPath: string, containerId: string, netns: string, a: { network: string; ifName: string }): Promise<void> {
  const list = listForDel(netconfPath, a.network, rt.cache, containerId, a.ifName);
  await rt.del(list, { containerId, netns, ifName: a.ifName, args: [], capabilityArgs: {} });
}

/**
 * Output for people: `--format table` for results, and the listing of cached attachments
 * (`cnikit ls` / `inspect`). JSON output is the CNI result itself and needs nothing here.
 */
import type { PortMapping } from '../pkg/cni/capabilities.ts';
import type { Result } from '../pkg/cni/result.ts';
import type { CachedAttachment } from '../runtime/cache.ts';

/** Lays out rows under a header, columns padded to their widest cell. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

/** A result as tables: interfaces, addresses, routes, DNS. */
export function resultTable(r: Result): string {
  const parts: string[] = [];
  const ifs = r.interfaces ?? [];
  if (ifs.length) parts.push(table(['#', 'INTERFACE', 'MAC', 'SANDBOX'], ifs.map((i, n) => [String(n), i.name, i.mac ?? '', i.sandbox ?? '(host)'])));
  if (r.ips?.length) {
    parts.push(table(['ADDRESS', 'GATEWAY', 'INTERFACE'], r.ips.map((ip) => [
      ip.address, ip.gateway ?? '', ip.interface !== undefined && ifs[ip.interface] ? ifs[ip.interface]!.name : '',
    ])));
  }
  if (r.routes?.length) parts.push(table(['ROUTE', 'VIA'], r.routes.map((rt) => [rt.dst, rt.gw ?? ''])));
  const d = r.dns;
  if (d && (d.nameservers?.length || d.search?.length || d.domain)) {
    parts.push(table(['DNS', 'VALUE'], [
      ...(d.nameservers ?? []).map((n) => ['nameserver', n]),
      ...(d.domain ? [['domain', d.domain]] : []),
      ...(d.search ?? []).map((s) => ['search', s]),
    ]));
  }
  return parts.join('\n') || '(empty result)\n';
}

/** Port mappings of an attachment as `8080->80/tcp`. */
export function portsOf(a: CachedAttachment): string[] {
  const pm = a.capabilityArgs.portMappings;
  if (!Array.isArray(pm)) return [];
  // The cache is written by any libcni runtime: read each field as it comes, unchecked.
  return (pm as Partial<Record<keyof PortMapping, unknown>>[]).map((p) => `${p.hostIP ? `${String(p.hostIP)}:` : ''}${String(p.hostPort)}->${String(p.containerPort)}/${String(p.protocol ?? 'tcp')}`);
}

/** Names of an attachment: K8S_POD_NAME from CNI_ARGS and the `aliases` capability. */
export function namesOf(a: CachedAttachment): string[] {
  const names: string[] = [];
  for (const [k, v] of a.cniArgs) if (k === 'K8S_POD_NAME' && v) names.push(v);
  const al = a.capabilityArgs.aliases;
  if (Array.isArray(al)) names.push(...al.filter((x): x is string => typeof x === 'string'));
  else if (al && typeof al === 'object') {
    const mine = (al as Record<string, unknown>)[a.networkName];
    if (Array.isArray(mine)) names.push(...mine.filter((x): x is string => typeof x === 'string'));
  }
  return [...new Set(names)];
}

/** Addresses of the container interface in a cached result. */
export function addressesOf(a: CachedAttachment): string[] {
  const ips = a.result?.ips;
  if (!Array.isArray(ips)) {
    // 0.1.0/0.2.0 results
    const out: string[] = [];
    for (const k of ['ip4', 'ip6']) {
      const v = (a.result?.[k] as { ip?: unknown } | undefined)?.ip;
      if (typeof v === 'string') out.push(v);
    }
    return out;
  }
  return ips.map((ip) => (ip as { address?: unknown }).address).filter((x): x is string => typeof x === 'string');
}

/** `cnikit ls`. */
export function attachmentsTable(list: CachedAttachment[]): string {
  return table(['NETWORK', 'CONTAINER', 'IFNAME', 'NETNS', 'ADDRESSES', 'PORTS', 'NAMES'], list.map((a) => [
    a.networkName, a.containerId, a.ifName, a.netns || '-', addressesOf(a).join(',') || '-', portsOf(a).join(',') || '-', namesOf(a).join(',') || '-',
  ]));
}

/** The structured form `inspect --json` prints. */
export function attachmentJson(a: CachedAttachment): Record<string, unknown> {
  let config: unknown;
  try { config = JSON.parse(a.config.toString('utf8')); } catch { config = a.config.toString('base64'); }
  return {
    network: a.networkName, containerId: a.containerId, ifName: a.ifName, netns: a.netns,
    addresses: addressesOf(a), ports: portsOf(a), names: namesOf(a),
    cniArgs: a.cniArgs, capabilityArgs: a.capabilityArgs, result: a.result, config, cacheFile: a.file,
  };
}

/** `cnikit inspect` for people. */
export function attachmentText(a: CachedAttachment): string {
  const r = a.result ?? {};
  const lines = [
    `${a.containerId} on ${a.networkName} (${a.ifName})`,
    `  netns:      ${a.netns || '-'}`,
    `  addresses:  ${addressesOf(a).join(', ') || '-'}`,
    `  ports:      ${portsOf(a).join(', ') || '-'}`,
    `  names:      ${namesOf(a).join(', ') || '-'}`,
    `  cniVersion: ${typeof r.cniVersion === 'string' ? r.cniVersion : '-'}`,
    `  cniArgs:    ${a.cniArgs.map(([k, v]) => `${k}=${v}`).join(';') || '-'}`,
    `  cache file: ${a.file}`,
  ];
  return lines.join('\n') + '\n';
}

/**
 * Which host ports are taken, for `cnikit run -p`: the sockets listening in the host network
 * namespace (sock_diag over netlink, what `ss -tuln` shows) and the ports every attachment in the
 * results cache already publishes (ours, cnitool's, containerd's: the cache is libcni's). A port
 * that either holds would be stolen or doubly mapped by portmap's DNAT, so `run` refuses it
 * before anything starts. Also the range free ports are chosen from, as Docker chooses them.
 */
import { readFileSync } from 'node:fs';
import type { PortProtocol } from '../pkg/cni/capabilities.ts';
import { formatIP, tryParseIP } from '../pkg/ip/cidr.ts';
import { inetSockets } from '../pkg/netlink/sock-diag.ts';
import type { CachedAttachment } from '../runtime/cache.ts';
import type { PortUse } from './ports.ts';

/** Returns what listens in the caller's network namespace, as port uses. */
export async function hostListeners(): Promise<PortUse[]> {
  const out: PortUse[] = [];
  for (const protocol of ['tcp', 'udp', 'sctp'] as const) {
    let socks;
    try {
      socks = await inetSockets(protocol);
    } catch (err) {
      // SCTP sockets are only listed when the sctp_diag module is there; without it none can listen.
      if (protocol === 'sctp') continue;
      throw err;
    }
    for (const s of socks) {
      const addr = s.local.family === 6 ? `[${formatIP(s.local)}]` : formatIP(s.local);
      out.push({ protocol, port: s.port, ip: s.local.value === 0n ? undefined : s.local, who: `${protocol === 'udp' ? 'a socket bound to' : 'a listener on'} ${addr}:${s.port} in this network namespace` });
    }
  }
  return out;
}

/** Returns the host ports the cached attachments publish; `nameOf` gives a container's name if known. */
export function publishedPorts(attachments: readonly CachedAttachment[], nameOf: (id: string) => string | undefined = () => undefined): PortUse[] {
  const out: PortUse[] = [];
  for (const a of attachments) {
    const pm = a.capabilityArgs.portMappings;
    if (!Array.isArray(pm)) continue;
    const name = nameOf(a.containerId);
    const who = `published by ${name ? `container "${name}" (${a.containerId})` : a.containerId} on network "${a.networkName}"`;
    // Written by any libcni runtime: read each field as it comes.
    for (const m of pm as Record<string, unknown>[]) {
      if (typeof m.hostPort !== 'number') continue;
      const ip = typeof m.hostIP === 'string' ? tryParseIP(m.hostIP) : undefined;
      const protocol = (typeof m.protocol === 'string' ? m.protocol.toLowerCase() : 'tcp') as PortProtocol;
      out.push({ protocol, port: m.hostPort, ip: ip && ip.value !== 0n ? ip : undefined, who });
    }
  }
  return out;
}

/** The kernel's ephemeral port range (net.ipv4.ip_local_port_range), where Docker picks free ports. */
export function localPortRange(): [number, number] {
  try {
    const [lo, hi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (lo && hi && lo <= hi) return [lo, hi];
  } catch { /* no procfs: use the kernel's default */ }
  return [32768, 60999];
}

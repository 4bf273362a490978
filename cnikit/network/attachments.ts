/**
 * A network's live attachments, as `network ls`/`inspect`/`rm` show them: every entry of the
 * results cache for the network (whoever added it: cnikit, cnitool, containerd), joined with the
 * `cnikit run` record that owns it, if any, for the container's name and pid.
 */
import type { CachedAttachment } from '../../runtime/cache.ts';
import type { ContainerState } from '../containers/state.ts';
import { addressesOf, namesOf, portsOf } from '../format.ts';

export interface NetworkAttachment {
  containerId: string;
  /** The `cnikit run --name`, when a live record owns the attachment. */
  name?: string;
  /** The owning `cnikit run` command's pid, when one is live. */
  pid?: number;
  ifName: string;
  netns: string;
  addresses: string[];
  names: string[];
  ports: string[];
}

/** The attachments of `network` in the cache, with their `cnikit run` owner where there is one. */
export function attachmentsOf(network: string, cached: readonly CachedAttachment[], live: readonly ContainerState[]): NetworkAttachment[] {
  return cached.filter((c) => c.networkName === network).map((c) => {
    const owner = live.find((s) => s.id === c.containerId);
    const a: NetworkAttachment = {
      containerId: c.containerId, ifName: c.ifName, netns: c.netns,
      addresses: addressesOf(c), names: namesOf(c), ports: portsOf(c),
    };
    if (owner?.name) a.name = owner.name;
    if (owner) a.pid = owner.commandPid ?? owner.pid;
    return a;
  });
}

/** `web (cnikit-1a2b3c4d5e6f, eth0)`: one attachment in a message. */
export function attachmentLabel(a: NetworkAttachment): string {
  return a.name ? `${a.name} (${a.containerId}, ${a.ifName})` : `${a.containerId} (${a.ifName})`;
}

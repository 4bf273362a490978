/**
 * `cnikit connect` / `disconnect`: attach a running `cnikit run` container to one more network,
 * or detach it from one, from another process. Both hold the container's lock (so `run`'s
 * teardown, which DELs whatever the record lists when the command ends, sees the change or waits
 * for it), update the record, and rewrite the command's resolv.conf and hosts in place, so the
 * new network's DNS is usable at once. `network rm -f` detaches through the same path.
 */
import { CniCode, CniError } from '../../pkg/cni/errors.ts';
import { RouteHandle } from '../../pkg/netlink/route.ts';
import { resolveNetwork } from '../../runtime/conf.ts';
import type { CniRuntime } from '../../runtime/runtime.ts';
import { type AttachmentState, type ContainerState, StateDir, isLive } from './state.ts';
import { attachmentState, detach, planAttachments } from './attach.ts';
import { writeContainerFiles } from './files.ts';

export interface ConnectOptions {
  stateDir: string;
  netconfPath: string;
  network: string;
  container: string;
  ips: string[];
  aliases: string[];
}

/** Runs `fn` on the container's current record under its lock; refuses one that is stopping. */
async function withRecord<T>(states: StateDir, ref: string, fn: (s: ContainerState) => Promise<T>): Promise<T> {
  const found = states.find(ref);
  return states.withContainerLock(found.id, async () => {
    const s = states.read(found.id);
    if (!s || s.stopping || !isLive(s)) throw new CniError(CniCode.UnknownContainer, `container "${ref}" is stopping`, 'its networks are being removed', { reason: 'not-found' });
    return fn(s);
  });
}

/** The first ethN that neither the record nor the namespace uses. */
async function nextIfName(s: ContainerState): Promise<string> {
  const rt = RouteHandle.open(s.netns);
  let names: string[];
  try {
    names = (await rt.linkList()).map((l) => l.name);
  } finally {
    rt.close();
  }
  const used = new Set([...names, ...s.attachments.map((a) => a.ifName)]);
  for (let i = 0; i < 100; i++) if (!used.has(`eth${i}`)) return `eth${i}`;
  throw new CniError(CniCode.Internal, `container ${s.id} has no free interface name eth0..eth99`);
}

/** Attaches a running container to a network; returns the record and the new attachment. */
export async function connectContainer(rt: CniRuntime, o: ConnectOptions): Promise<{ state: ContainerState; attachment: AttachmentState }> {
  const list = resolveNetwork(o.netconfPath, o.network);
  const states = new StateDir(o.stateDir);
  return withRecord(states, o.container, async (s) => {
    if (s.mode === 'host') throw new CniError(CniCode.InvalidConfig, `container "${o.container}" uses the host's network namespace`, 'run it with --network NAME (or none) to attach networks', { reason: 'config-invalid' });
    const there = s.attachments.find((a) => a.network === list.name);
    if (there) throw new CniError(CniCode.InvalidConfig, `container "${o.container}" is already on network "${list.name}" (${there.ifName})`, `disconnect it first: cnikit disconnect ${list.name} ${o.container}`, { reason: 'conflict' });
    const aliases = [...new Set([...s.aliases, ...o.aliases])];
    const [plan] = planAttachments([list], { name: s.name ?? s.id, aliases, ports: [], ips: o.ips, args: [], capabilityArgs: {} });
    const conf = { containerId: s.id, netns: s.netns, ifName: await nextIfName(s), args: plan!.args, capabilityArgs: plan!.caps };
    const r = await rt.add(list, conf);
    const attachment = attachmentState(list, conf, r, [s.name ?? s.id, ...aliases]);
    s.attachments.push(attachment);
    s.mode = 'bridge';
    states.write(s);
    writeContainerFiles(s);
    return { state: s, attachment };
  });
}

/** Detaches a running container from a network (DEL); returns the record and what was removed. */
export async function disconnectContainer(rt: CniRuntime, o: Pick<ConnectOptions, 'stateDir' | 'netconfPath' | 'network' | 'container'>): Promise<{ state: ContainerState; attachment: AttachmentState }> {
  const states = new StateDir(o.stateDir);
  return withRecord(states, o.container, async (s) => {
    const attachment = s.attachments.find((a) => a.network === o.network);
    if (!attachment) {
      throw new CniError(CniCode.UnknownContainer, `container "${o.container}" is not on network "${o.network}"`,
        `it is on: ${s.attachments.map((a) => a.network).join(', ') || 'no network'}`, { reason: 'not-found' });
    }
    await detach(rt, o.netconfPath, s.id, s.netns, attachment);
    s.attachments = s.attachments.filter((a) => a !== attachment);
    states.write(s);
    writeContainerFiles(s);
    return { state: s, attachment };
  });
}

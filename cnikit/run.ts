/**
 * `cnikit run`: a container's network without a container runtime. It makes a network namespace
 * (pinned under --netns-dir, /run/netns by default), ADDs it to each --network in order (eth0,
 * eth1, ...), runs the command inside it through `cnikit __exec-in-netns` (the native addon joins
 * the namespace and execs: no `ip`, no `nsenter`), and when the command ends, or cnikit gets
 * SIGINT/SIGTERM/SIGHUP, stops what is left in the namespace, DELs every attachment in reverse
 * (those `cnikit connect` added too) and deletes the namespace. The exit status is the command's
 * (128+N when a signal killed it). `--network host` runs the command in the caller's namespace,
 * `--network none` in one with only `lo`.
 *
 * Everything that can be refused is refused before the namespace exists: unknown networks, a
 * network that cannot take what is asked (ports, static addresses, MAC), host ports in use. A
 * failure attaching a later network undoes the earlier ones. While it runs, the container has a
 * state file (containers/state.ts) that `ps`, `connect` and `disconnect` read, and the command
 * gets its own /etc/resolv.conf and /etc/hosts (containers/files.ts), bind-mounted in a private
 * mount namespace. What it does not do: no cgroups, no filesystem isolation beyond those files.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { constants } from 'node:os';
import { join } from 'node:path';
import { InvalidArgumentError } from 'commander';
import { CniCode, CniError, errorText } from '../pkg/cni/errors.ts';
import { type NetworkConfigList, listNetworks, resolveNetwork } from '../runtime/conf.ts';
import { CniRuntime } from '../runtime/runtime.ts';
import { OwnPluginsExec } from './own-exec.ts';
import { type AttachRequest, attachmentState, detach, hasCapability, planAttachments } from './containers/attach.ts';
import { writeContainerFiles } from './containers/files.ts';
import { type ContainerState, StateDir, processStart } from './containers/state.ts';
import { ExitCode } from './exit-codes.ts';
import { hostListeners, localPortRange, publishedPorts } from './host-ports.ts';
import { createNetns, deleteNetns, stopNetnsProcesses } from './netns.ts';
import { type PublishRequest, mappingText, resolvePublish } from './ports.ts';
import { progressReporter } from './progress.ts';
import { selfExe } from './self.ts';
import { forwardSignals } from './signals.ts';

export interface RunOptions {
  /** As given; [] = the first network in NETCONFPATH; ['host'] or ['none'] alone. */
  networks: string[];
  name: string | undefined;
  aliases: string[];
  publish: PublishRequest[];
  ips: string[];
  mac: string | undefined;
  dns: string[];
  dnsSearch: string[];
  dnsOption: string[];
  addHosts: [string, string][];
  /** Only with one network; otherwise eth0, eth1, ... */
  ifName: string | undefined;
  netnsDir: string;
  stateDir: string;
  netconfPath: string;
  cniPath: string[];
  cacheDir: string;
  args: [string, string][];
  capabilityArgs: Record<string, unknown>;
  containerId: string | undefined;
  quiet: boolean;
  verbose: boolean;
}

type Mode = ContainerState['mode'];

function modeOf(o: RunOptions): Mode {
  const special = o.networks.filter((n) => n === 'host' || n === 'none');
  if (!special.length) return 'bridge';
  if (o.networks.length > 1) throw new InvalidArgumentError(`--network ${special[0]} cannot be combined with other networks`);
  const what = special[0] as Mode;
  const extra = [o.publish.length && '-p', o.ips.length && '--ip', o.mac && '--mac', o.aliases.length && '--alias'].filter(Boolean);
  if (extra.length) throw new InvalidArgumentError(`${extra.join(', ')} cannot be used with --network ${what}: it attaches no network`);
  return what;
}

function pickNetworks(o: RunOptions): NetworkConfigList[] {
  if (o.networks.length) {
    const dup = o.networks.find((n, i) => o.networks.indexOf(n) !== i);
    if (dup) throw new InvalidArgumentError(`--network ${dup} is given twice`);
    return o.networks.map((n) => resolveNetwork(o.netconfPath, n));
  }
  const all = listNetworks(o.netconfPath);
  if (!all.length) {
    throw new CniError(CniCode.InvalidConfig, `no net configurations found in ${o.netconfPath}`,
      'pass --network <name|file> (e.g. --network conf/10-cnikit.conflist) or --netconf-path, or make one with `cnikit network create NAME`', { reason: 'config-not-found' });
  }
  return [all[0]!];
}

function summary(s: ContainerState): string {
  const lines = s.attachments.map((a) => `cnikit: ${s.id} on network "${a.network}": ${a.ifName} ${a.addresses.join(', ') || 'no addresses'}`);
  if (s.mode !== 'bridge') lines.push(`cnikit: ${s.id} on network ${s.mode}`);
  const ports = s.attachments.flatMap((a) => a.ports);
  if (ports.length) lines.push(`cnikit: published ${ports.map(mappingText).join(', ')}`);
  if (s.name) lines.push(`cnikit: name ${[s.name, ...s.aliases].join(', ')}`);
  const dns = [...new Set(s.attachments.flatMap((a) => a.dns?.nameservers ?? []))];
  const search = [...new Set(s.attachments.flatMap((a) => a.dns?.search ?? []))];
  if (dns.length && !s.dns?.nameservers) lines.push(`cnikit: DNS ${dns.join(', ')}${search.length ? ` (search ${search.join(' ')})` : ''}`);
  if (s.netns) lines.push(`cnikit: netns ${s.netns}`);
  return lines.join('\n') + '\n';
}

/** Runs `cmd` in a new attached namespace (or the caller's, for host); returns the exit code to use. */
export async function runContainer(o: RunOptions, cmd: string[]): Promise<number> {
  const mode = modeOf(o);
  const lists = mode === 'bridge' ? pickNetworks(o) : [];
  if (lists.length > 1 && o.ifName) throw new InvalidArgumentError('--ifname applies to one network; with several they are eth0, eth1, ...');
  if (o.aliases.length && lists.length && !lists.some((l) => hasCapability(l, 'aliases'))) {
    process.stderr.write(`cnikit: warning: no plugin of network "${lists[0]!.name}" declares the aliases capability; --alias has no effect\n`);
  }
  const p = progressReporter(o);
  const rt = new CniRuntime({ path: o.cniPath, cacheDir: o.cacheDir, env: process.env, onEvent: p.onEvent, exec: new OwnPluginsExec() });
  const states = new StateDir(o.stateDir);
  const known = new Map(states.listLive().live.map((s) => [s.id, s.name]));
  // Host ports are chosen and checked before anything exists, so a conflict stops nothing half-made.
  const ports = o.publish.length
    ? resolvePublish(o.publish, [...await hostListeners(), ...publishedPorts(rt.cache.list(), (id) => known.get(id))], { range: localPortRange(), random: Math.random })
    : [];
  const id = o.containerId || `cnikit-${process.getBuiltinModule('node:crypto').randomBytes(6).toString('hex')}`;
  const req: AttachRequest = { name: o.name ?? id, aliases: o.aliases, ports, ips: o.ips, mac: o.mac, args: o.args, capabilityArgs: o.capabilityArgs };
  const plans = lists.length ? planAttachments(lists, req) : [];

  const netns = mode === 'host' ? '' : join(o.netnsDir, id);
  const filesDir = states.filesDir(id);
  const state: ContainerState = {
    version: 1, id, ...(o.name ? { name: o.name } : {}), aliases: o.aliases, pid: process.pid, pidStart: processStart(process.pid) ?? '',
    command: cmd, mode, netns, created: new Date().toISOString(), cacheDir: o.cacheDir,
    files: mode === 'host' ? { ...(o.dns.length || o.dnsSearch.length || o.dnsOption.length ? { resolvConf: join(filesDir, 'resolv.conf') } : {}), ...(o.addHosts.length ? { hosts: join(filesDir, 'hosts') } : {}) }
      : { resolvConf: join(filesDir, 'resolv.conf'), hosts: join(filesDir, 'hosts') },
    ...(o.dns.length || o.dnsSearch.length || o.dnsOption.length ? { dns: { ...(o.dns.length ? { nameservers: o.dns } : {}), ...(o.dnsSearch.length ? { search: o.dnsSearch } : {}), ...(o.dnsOption.length ? { options: o.dnsOption } : {}) } } : {}),
    addHosts: o.addHosts, attachments: [],
  };
  const say = (s: string) => { if (!o.quiet) process.stderr.write(s); };

  // From here on a signal tears down instead of killing cnikit, and reaches the command once it runs.
  let child: ChildProcess | undefined;
  const signals = forwardSignals(() => child);
  let created = false;
  const teardown = () => states.withContainerLock(id, async () => {
    const now = states.read(id) ?? state;
    now.stopping = true;
    states.write(now);
    if (created) await stopNetnsProcesses(netns);
    for (const a of [...now.attachments].reverse()) {
      try {
        await detach(rt, o.netconfPath, id, netns, a);
      } catch (err) {
        process.stderr.write(`cnikit: warning: DEL of ${id} from "${a.network}" (${a.ifName}) failed: ${errorText(err)}\n  hint: retry with: cnikit del ${a.network} ${netns} --container-id ${id} --ifname ${a.ifName}\n`);
      }
    }
    if (created) {
      try { deleteNetns(netns); } catch (err) { process.stderr.write(`cnikit: warning: cannot delete ${netns}: ${errorText(err)}\n`); }
    }
    states.remove(id);
    p.done();
  });

  let binds: [string, string][] = [];
  try {
    if (netns) {
      await createNetns(netns);
      created = true;
    }
    states.write(state);
    for (let i = 0; i < lists.length && !signals.received; i++) {
      const conf = { containerId: id, netns, ifName: o.ifName || `eth${i}`, args: plans[i]!.args, capabilityArgs: plans[i]!.caps };
      const r = await rt.add(lists[i]!, conf);
      state.attachments.push(attachmentState(lists[i]!, conf, r, [req.name, ...o.aliases]));
      states.write(state);
    }
    p.done();
    if (!signals.received) {
      mkdirSync(filesDir, { recursive: true, mode: 0o755 });
      binds = writeContainerFiles(state);
      say(summary(state));
    }
    if (signals.received) {
      await teardown();
      signals.stop();
      return 128 + (constants.signals[signals.received] ?? 2);
    }
  } catch (err) {
    await teardown();
    signals.stop();
    throw err;
  }

  const code = await new Promise<number>((resolve) => {
    const bindArgs = binds.flatMap(([src, dst]) => ['--bind', src, dst]);
    child = mode === 'host' && !binds.length
      ? spawn(cmd[0]!, cmd.slice(1), { stdio: 'inherit' })
      : spawn(process.execPath, [selfExe(), '__exec-in-netns', netns || '/proc/self/ns/net', ...bindArgs, '--', ...cmd], { stdio: 'inherit' });
    child.on('spawn', () => {
      state.commandPid = child!.pid;
      void states.withContainerLock(id, () => {
        const now = states.read(id);
        if (now && !now.stopping) states.write({ ...now, commandPid: child!.pid });
      });
    });
    child.on('error', (err) => {
      const notFound = (err as { code?: string }).code === 'ENOENT';
      process.stderr.write(`cnikit: cannot run "${cmd[0]}": ${notFound ? 'command not found' : errorText(err)}\n`);
      resolve(notFound ? ExitCode.CommandNotFound : ExitCode.RunSetup);
    });
    child.on('exit', (c, sig) => resolve(c ?? 128 + (sig ? constants.signals[sig] ?? 0 : 0)));
  });
  say(`cnikit: command exited with ${code}; removing ${id}\n`);
  await teardown();
  signals.stop();
  return code;
}

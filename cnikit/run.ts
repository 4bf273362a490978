/**
 * `cnikit run`: a container's network without a container runtime. It makes a network namespace
 * (pinned under --netns-dir, /run/netns by default), ADDs it to a network with the caller's port
 * mappings and name, runs the command inside it through `cnikit __exec-in-netns` (the native
 * addon joins the namespace and execs: no `ip`, no `nsenter`), and when the command ends, or
 * cnikit gets SIGINT/SIGTERM/SIGHUP, stops what is left in the namespace, DELs the network and
 * deletes the namespace. The exit status is the command's (128+N when a signal killed it).
 *
 * Name resolution works as in a container: when the network's result carries DNS servers (the
 * dnsname plugin adds the gateway and its domain), the command gets its own /etc/resolv.conf,
 * and with --name its own /etc/hosts, bind-mounted in a private mount namespace (files in a temp
 * dir removed at the end). What it does not do: no cgroups, no filesystem isolation beyond
 * those two files. It is a network sandbox for one command.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PortMapping } from '../pkg/cni/capabilities.ts';
import { CniCode, CniError, errorText } from '../pkg/cni/errors.ts';
import type { Result } from '../pkg/cni/result.ts';
import { type NetworkConfigList, listNetworks, resolveNetwork } from '../runtime/conf.ts';
import { CniRuntime, type RuntimeConf } from '../runtime/runtime.ts';
import { ExitCode } from './exit-codes.ts';
import { createNetns, deleteNetns, stopNetnsProcesses } from './netns.ts';
import { progressReporter } from './progress.ts';
import { selfExe } from './self.ts';
import { forwardSignals } from './signals.ts';

export interface RunOptions {
  network: string | undefined;
  name: string | undefined;
  publish: PortMapping[];
  aliases: string[];
  ifName: string;
  netnsDir: string;
  netconfPath: string;
  cniPath: string[];
  cacheDir: string;
  args: [string, string][];
  capabilityArgs: Record<string, unknown>;
  containerId: string | undefined;
  quiet: boolean;
  verbose: boolean;
}

function pickNetwork(o: RunOptions): NetworkConfigList {
  if (o.network) return resolveNetwork(o.netconfPath, o.network);
  const all = listNetworks(o.netconfPath);
  if (!all.length) {
    throw new CniError(CniCode.InvalidConfig, `no net configurations found in ${o.netconfPath}`,
      'pass --network <name|file> (e.g. --network conf/10-cnikit.conflist) or --netconf-path, or install a conflist there', { reason: 'config-not-found' });
  }
  return all[0]!;
}

/** The attachment's CNI_ARGS and capability args from the run options. */
export function attachmentArgs(o: RunOptions, network: string): { args: [string, string][]; caps: Record<string, unknown> } {
  const args: [string, string][] = [...o.args];
  if (o.name) {
    if (!args.some(([k]) => k === 'IgnoreUnknown')) args.unshift(['IgnoreUnknown', '1']);
    args.push(['K8S_POD_NAME', o.name]);
  }
  const caps: Record<string, unknown> = { ...o.capabilityArgs };
  if (o.publish.length) caps.portMappings = o.publish;
  if (o.aliases.length) caps.aliases = { [network]: o.aliases };
  return { args, caps };
}

/**
 * Writes the command's resolv.conf (when the result has DNS servers) and hosts (when it has a
 * name) into `dir`; returns the [file, target] pairs to bind-mount.
 */
export function containerFiles(dir: string, r: Result, o: Pick<RunOptions, 'name' | 'aliases'>, network: string): [string, string][] {
  const binds: [string, string][] = [];
  const dns = r.dns;
  if (dns?.nameservers?.length) {
    const lines = [`# written by cnikit run (network "${network}")`, ...dns.nameservers.map((n) => `nameserver ${n}`)];
    const search = [...(dns.search ?? []), ...(dns.domain && !dns.search?.includes(dns.domain) ? [dns.domain] : [])];
    if (search.length) lines.push(`search ${search.join(' ')}`);
    if (dns.options?.length) lines.push(`options ${dns.options.join(' ')}`);
    writeFileSync(join(dir, 'resolv.conf'), lines.join('\n') + '\n', { mode: 0o644 });
    binds.push([join(dir, 'resolv.conf'), '/etc/resolv.conf']);
  }
  if (o.name) {
    const names = [o.name, ...o.aliases].join(' ');
    const lines = ['127.0.0.1\tlocalhost', '::1\tlocalhost ip6-localhost ip6-loopback',
      ...(r.ips ?? []).map((ip) => `${ip.address.split('/')[0]}\t${names}`)];
    writeFileSync(join(dir, 'hosts'), lines.join('\n') + '\n', { mode: 0o644 });
    binds.push([join(dir, 'hosts'), '/etc/hosts']);
  }
  return binds;
}

function summary(list: NetworkConfigList, conf: RuntimeConf, r: Result, o: RunOptions): string {
  const addrs = (r.ips ?? []).map((ip) => ip.address).join(', ') || 'no addresses';
  const lines = [`cnikit: ${conf.containerId} on network "${list.name}": ${conf.ifName} ${addrs}`];
  if (o.publish.length) lines.push(`cnikit: published ${o.publish.map((p) => `${p.hostIP ? `${p.hostIP}:` : ''}${p.hostPort}->${p.containerPort}/${p.protocol}`).join(', ')}`);
  if (o.name) lines.push(`cnikit: name ${[o.name, ...o.aliases].join(', ')}`);
  const ns = r.dns?.nameservers ?? [];
  if (ns.length) lines.push(`cnikit: DNS ${ns.join(', ')}${r.dns?.search?.length ? ` (search ${r.dns.search.join(' ')})` : ''}`);
  lines.push(`cnikit: netns ${conf.netns}`);
  return lines.join('\n') + '\n';
}

/** Runs `cmd` in a new attached namespace; returns the exit code to use. */
export async function runContainer(o: RunOptions, cmd: string[]): Promise<number> {
  const list = pickNetwork(o);
  const hasCap = (cap: string) => list.plugins.some((pl) => pl.capabilities?.[cap] === true);
  if (o.publish.length && !hasCap('portMappings')) {
    throw new CniError(CniCode.InvalidConfig, `network "${list.name}" cannot publish ports`,
      `no plugin in ${list.file} declares the portMappings capability; add {"type": "portmap", "capabilities": {"portMappings": true}} to its plugins, or drop -p`, { reason: 'config-invalid' });
  }
  if (o.aliases.length && !hasCap('aliases')) {
    process.stderr.write(`cnikit: warning: no plugin of network "${list.name}" declares the aliases capability; --alias has no effect\n`);
  }
  const id = o.containerId || `cnikit-${process.getBuiltinModule('node:crypto').randomBytes(6).toString('hex')}`;
  const netns = join(o.netnsDir, id);
  const { args, caps } = attachmentArgs(o, list.name);
  const conf: RuntimeConf = { containerId: id, netns, ifName: o.ifName, args, capabilityArgs: caps };
  const p = progressReporter(o);
  const rt = new CniRuntime({ path: o.cniPath, cacheDir: o.cacheDir, env: process.env, onEvent: p.onEvent });
  const say = (s: string) => { if (!o.quiet) process.stderr.write(s); };

  // From here on a signal tears down instead of killing cnikit, and reaches the command once it runs.
  let child: ChildProcess | undefined;
  const signals = forwardSignals(() => child);

  let attached = false;
  let created = false;
  let filesDir: string | undefined;
  let binds: [string, string][] = [];
  const teardown = async () => {
    if (created) await stopNetnsProcesses(netns);
    if (attached) {
      try {
        await rt.del(list, conf);
      } catch (err) {
        process.stderr.write(`cnikit: warning: DEL of ${id} from "${list.name}" failed: ${errorText(err)}\n  hint: retry with: cnikit del ${list.file} ${netns} --container-id ${id}\n`);
      }
    }
    if (created) {
      try { deleteNetns(netns); } catch (err) { process.stderr.write(`cnikit: warning: cannot delete ${netns}: ${errorText(err)}\n`); }
    }
    if (filesDir) rmSync(filesDir, { recursive: true, force: true });
    p.done();
  };

  try {
    await createNetns(netns);
    created = true;
    if (!signals.received) {
      const r = await rt.add(list, conf);
      attached = true;
      p.done();
      filesDir = mkdtempSync(join(tmpdir(), `${id}-`));
      binds = containerFiles(filesDir, r, o, list.name);
      say(summary(list, conf, r, o));
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
    child = spawn(process.execPath, [selfExe(), '__exec-in-netns', netns, ...bindArgs, '--', ...cmd], { stdio: 'inherit' });
    child.on('error', (err) => {
      process.stderr.write(`cnikit: cannot start the command: ${errorText(err)}\n`);
      resolve(ExitCode.RunSetup);
    });
    child.on('exit', (c, sig) => resolve(c ?? 128 + (sig ? constants.signals[sig] ?? 0 : 0)));
  });
  say(`cnikit: command exited with ${code}; removing ${id}\n`);
  await teardown();
  signals.stop();
  return code;
}

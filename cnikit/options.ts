/**
 * What the commands that run a network share: cnitool's environment as options
 * (`withCniOptions`), and turning those options into what the runtime library takes (the plugin
 * path, the network, the attachment, a CniRuntime). This is the process boundary: the runtime
 * gets the environment passed in here and reads none itself.
 *
 * The library is imported on first use, not at the top: commander and the options are all that
 * `cnikit --help` or `cnikit ls` should load.
 */
import { resolve } from 'node:path';
import { type Command, Option } from 'commander';
import { DEFAULT_CACHE_DIR, DEFAULT_NETCONF_PATH } from '../runtime/defaults.ts';
import type { NetworkConfigList } from '../runtime/conf.ts';
import type { ChainEvent, CniRuntime, RuntimeConf } from '../runtime/runtime.ts';
import { DEFAULT_STATE_DIR } from './defaults.ts';
import { cnitoolContainerId, parseArgsEnv, parseCapArgs } from './parse.ts';
import { selfDir } from './self.ts';

/** The options withCniOptions adds (each with its environment variable). */
export interface CniOptions {
  cniPath?: string;
  netconfPath?: string;
  cacheDir?: string;
  ifname?: string;
  args?: string;
  capArgs?: string;
  containerId?: string;
  format?: 'json' | 'table';
  quiet?: boolean;
  verbose?: boolean;
}

/** The help line naming the variables. */
export const ENV_HELP = `
Environment (each also has a flag): NETCONFPATH, CNI_PATH, CNI_IFNAME, CNI_ARGS, CAP_ARGS,
CNI_CONTAINERID, CNI_CACHE_DIR, CNIKIT_STATE_DIR.`;

/** The --cache-dir option (CNI_CACHE_DIR), also used alone by `ls` and `inspect`. */
export function cacheDirOption(): Option {
  return new Option('--cache-dir <dir>', `results cache directory (default: ${DEFAULT_CACHE_DIR})`).env('CNI_CACHE_DIR');
}

/** The --state-dir option (CNIKIT_STATE_DIR): where `cnikit run` keeps its containers' records. */
export function stateDirOption(): Option {
  return new Option('--state-dir <dir>', `where cnikit run keeps its containers' state (default: ${DEFAULT_STATE_DIR})`).env('CNIKIT_STATE_DIR');
}

export function stateDirOf(o: { stateDir?: string }): string {
  return o.stateDir || DEFAULT_STATE_DIR;
}

/** Adds the cnitool environment options (each with its variable) to a command. */
export function withCniOptions(cmd: Command, which: { attachment?: boolean; format?: boolean } = {}): Command {
  cmd.addOption(new Option('--cni-path <dirs>', 'plugin directories, ":"-separated (default: cnikit\'s own directory, then /opt/cni/bin)').env('CNI_PATH'));
  cmd.addOption(new Option('--netconf-path <dir>', `directory of network configs (default: ${DEFAULT_NETCONF_PATH})`).env('NETCONFPATH'));
  cmd.addOption(cacheDirOption());
  if (which.attachment) {
    cmd.addOption(new Option('-i, --ifname <name>', 'interface name in the container (default: eth0)').env('CNI_IFNAME'));
    cmd.addOption(new Option('--args <k=v;...>', 'CNI_ARGS passed to the plugins, e.g. "IgnoreUnknown=1;K8S_POD_NAME=web"').env('CNI_ARGS'));
    cmd.addOption(new Option('--cap-args <json>', 'capability arguments as JSON, e.g. \'{"portMappings":[...]}\'').env('CAP_ARGS'));
    cmd.addOption(new Option('--container-id <id>', 'container id (default: derived from the netns path, as cnitool does)').env('CNI_CONTAINERID'));
  }
  if (which.format) cmd.addOption(new Option('--format <fmt>', 'output format').choices(['json', 'table']).default('json'));
  cmd.option('-q, --quiet', 'no progress output');
  cmd.option('-v, --verbose', 'print each plugin call on stderr');
  return cmd;
}

/** CNI_PATH as cnikit uses it: the given list, or (unset) cnikit's own directory then /opt/cni/bin. */
export function cniPathOf(value: string | undefined): string[] {
  if (value) return value.split(':').filter(Boolean);
  return [selfDir(), '/opt/cni/bin'];
}

export function netconfDirOf(o: CniOptions): string {
  return o.netconfPath || DEFAULT_NETCONF_PATH;
}

export function cacheDirOf(o: { cacheDir?: string }): string {
  return o.cacheDir || DEFAULT_CACHE_DIR;
}

/** The runtime for these options, with this process's environment as the plugins' base. */
export async function openRuntime(o: CniOptions, onEvent?: (e: ChainEvent) => void): Promise<CniRuntime> {
  const [{ CniRuntime }, { OwnPluginsExec }] = await Promise.all([import('../runtime/runtime.ts'), import('./own-exec.ts')]);
  return new CniRuntime({ path: cniPathOf(o.cniPath), cacheDir: cacheDirOf(o), env: process.env, onEvent, exec: new OwnPluginsExec() });
}

/** The network a user named: a name in the netconf directory, or a path to a config file. */
export async function networkOf(o: CniOptions, nameOrPath: string): Promise<NetworkConfigList> {
  const { resolveNetwork } = await import('../runtime/conf.ts');
  return resolveNetwork(netconfDirOf(o), nameOrPath);
}

/** The attachment as cnitool makes it: container id from the netns path unless given, ifname eth0 unless given. */
export function runtimeConfOf(o: CniOptions, netns: string): RuntimeConf {
  const abs = netns ? resolve(netns) : '';
  return {
    containerId: o.containerId || cnitoolContainerId(netns),
    netns: abs,
    ifName: o.ifname || 'eth0',
    args: parseArgsEnv(o.args),
    capabilityArgs: parseCapArgs(o.capArgs),
  };
}

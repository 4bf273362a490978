/**
 * `cnikit del <network> <netns-path>`: cnitool's del. Detaches the namespace (DEL through the
 * chain in reverse, with the cached result) and removes the cache entry. When the network's
 * config is gone or broken, the copy cached at ADD is used, so removing a config file does not
 * strand its containers.
 */
import type { Command } from 'commander';
import { errorText } from '../../pkg/cni/errors.ts';
import type { NetworkConfigList } from '../../runtime/conf.ts';
import type { RuntimeConf } from '../../runtime/runtime.ts';
import { act } from '../act.ts';
import { type CniOptions, ENV_HELP, cacheDirOf, networkOf, openRuntime, runtimeConfOf, withCniOptions } from '../options.ts';
import { progressReporter } from '../progress.ts';

const HELP = `
Examples:
  $ sudo cnikit del mynet /run/netns/ctr1
  $ sudo cnikit del mynet /run/netns/ctr1 --container-id cnitool-0a1b2c3d4e5f60718293
Without CNI_ARGS/CAP_ARGS, those cached at ADD are used again (cnitool needs them repeated).
DEL works when the namespace is already gone, and, using the config cached at ADD, when the
network's config file was removed.${ENV_HELP}`;

/** The network for DEL: as usual, or the conflist bytes libcni keeps in the cache entry. */
async function networkForDel(o: CniOptions, nameOrPath: string, conf: RuntimeConf): Promise<NetworkConfigList> {
  try {
    return await networkOf(o, nameOrPath);
  } catch (err) {
    if (nameOrPath.includes('/')) throw err;
    const [{ ResultsCache }, { parseConfList }] = await Promise.all([import('../../runtime/cache.ts'), import('../../runtime/conf.ts')]);
    let cached;
    try {
      cached = new ResultsCache(cacheDirOf(o)).read(nameOrPath, conf.containerId, conf.ifName);
    } catch {
      throw err;
    }
    if (!cached?.config.length) throw err;
    process.stderr.write(`cnikit: warning: ${errorText(err)}; using the config cached at ADD (${cached.file})\n`);
    return parseConfList(cached.config, `cached config in ${cached.file}`);
  }
}

export function register(program: Command): void {
  const cmd = withCniOptions(program.command('del').description('detach it (DEL the chain in reverse with the cached result)')
    .argument('<network>', 'network name in NETCONFPATH, or a path to a .conflist/.conf file')
    .argument('<netns-path>', 'network namespace path, e.g. /run/netns/ctr1'), { attachment: true });
  cmd.addHelpText('after', HELP);
  cmd.action(act(async (network: string, netns: string, o: CniOptions) => {
    const conf = runtimeConfOf(o, netns);
    const list = await networkForDel(o, network, conf);
    const p = progressReporter(o);
    const rt = await openRuntime(o, p.onEvent);
    await rt.del(list, conf).finally(p.done);
    if (o.verbose) process.stderr.write(`cnikit: del ${list.name} ${conf.containerId} ${conf.ifName}: ok\n`);
  }));
}

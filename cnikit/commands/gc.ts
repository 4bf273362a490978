/**
 * `cnikit gc <network>`: cnitool's gc. DELs every cached attachment of the network that is not
 * given as valid, then sends GC with the valid list to every plugin, so they free what no
 * attachment owns (leases, rules). `--keep-cached` treats every cached attachment as valid;
 * `--keep-running` those of running `cnikit run` containers (so only dead runs' are removed).
 */
import type { Command } from 'commander';
import type { Attachment } from '../../pkg/cni/skel.ts';
import { act } from '../act.ts';
import { type CniOptions, ENV_HELP, networkOf, openRuntime, stateDirOf, stateDirOption, withCniOptions } from '../options.ts';
import { parseValid } from '../parse.ts';
import { progressReporter } from '../progress.ts';

const HELP = `
Examples:
  $ sudo cnikit gc mynet --keep-cached        free leaked leases/rules, keep every cached attachment
  $ sudo cnikit gc mynet --keep-running       remove what runs killed with SIGKILL left (see cnikit ps)
  $ sudo cnikit gc mynet --valid cnikit-1a2b3c4d5e6f:eth0
  $ sudo cnikit gc mynet                      like cnitool: nothing is valid, everything is removed
${ENV_HELP}`;

interface GcOptions extends CniOptions { valid?: Attachment[]; keepCached?: boolean; keepRunning?: boolean; stateDir?: string }

export function register(program: Command): void {
  const cmd = withCniOptions(program.command('gc').description('garbage-collect a network: DEL cached attachments that are not valid, then GC every plugin')
    .argument('<network>', 'network name or config file').argument('[netns-path]', 'accepted for cnitool compatibility; unused'));
  cmd.option('--valid <containerid:ifname>', 'an attachment that is still in use (repeatable)', parseValid);
  cmd.option('--keep-cached', 'treat every cached attachment as valid: only free what the cache does not know');
  cmd.option('--keep-running', 'treat the attachments of running `cnikit run` containers as valid');
  cmd.addOption(stateDirOption());
  cmd.addHelpText('after', HELP);
  cmd.action(act(async (network: string, _netns: string | undefined, o: GcOptions) => {
    const list = await networkOf(o, network);
    const p = progressReporter(o);
    const rt = await openRuntime(o, p.onEvent);
    const valid = [...(o.valid ?? [])];
    if (o.keepCached) for (const c of rt.cache.list(list.name)) valid.push({ containerID: c.containerId, ifname: c.ifName });
    if (o.keepRunning) {
      const { StateDir } = await import('../containers/state.ts');
      for (const s of new StateDir(stateDirOf(o)).listLive().live) for (const a of s.attachments) if (a.network === list.name) valid.push({ containerID: s.id, ifname: a.ifName });
    }
    const removed = await rt.gc(list, valid).finally(p.done);
    for (const c of removed) process.stdout.write(`removed ${c.containerId} ${c.ifName} (netns ${c.netns || '-'})\n`);
    process.stdout.write(`gc ${list.name}: ${removed.length} attachment(s) removed, ${valid.length} kept\n`);
  }));
}

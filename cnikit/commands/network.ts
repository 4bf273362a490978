/**
 * `cnikit network`: networks as Docker and Podman users know them, kept as ordinary conflists in
 * NETCONFPATH: create, ls, inspect, rm, prune (one file per verb beside this one).
 */
import type { Command } from 'commander';
import * as create from './network-create.ts';
import * as inspect from './network-inspect.ts';
import * as ls from './network-ls.ts';
import * as rm from './network-rm.ts';

const HELP = `
Examples:
  $ sudo cnikit network create web
  $ cnikit network ls
  $ sudo cnikit run --network web --name app -- sleep infinity &
  $ cnikit network inspect web
  $ sudo cnikit network rm -f web
A network is NAME.conflist in NETCONFPATH (default /etc/cni/net.d); any CNI runtime can use it.`;

export function register(program: Command): void {
  const network = program.command('network').description('create, list, inspect and remove networks (conflists in NETCONFPATH)');
  network.addHelpText('after', HELP);
  for (const c of [create, ls, inspect, rm]) c.register(network);
}

/**
 * `cnikit dns serve`: the DNS responder that serves container names (what the dnsname plugin
 * starts), in the foreground over a records directory, until SIGINT or SIGTERM; SIGHUP reloads.
 */
import { type Command, InvalidArgumentError } from 'commander';
import { act } from '../act.ts';
import { collect, parseMillis } from '../parse.ts';

const HELP = `
Examples:
  $ sudo cnikit dns serve --records /run/cnikit/dns
  $ cnikit dns serve --records ./records --listen 127.0.0.1:5353`;

const SERVE_HELP = `
Examples:
  $ sudo cnikit dns serve --records /run/cnikit/dns
  $ cnikit dns serve --records ./records --listen 127.0.0.1:5353 &
  $ dig @127.0.0.1 -p 5353 web.cnikit.internal
With --listen every network's names are served on that address; otherwise each network is
answered only on its own gateway addresses (isolation). The records directory is followed as it
changes; SIGHUP forces a reload.`;

interface ServeOptions { records: string; listen?: string[]; resolvConf: string; forwardTimeoutMs?: number }

export function register(program: Command): void {
  const dns = program.command('dns').description('the DNS responder that serves container names (what the dnsname plugin runs)')
    .addHelpText('after', HELP);
  const serve = dns.command('serve').description('serve the names in a records directory, in the foreground, until Ctrl-C')
    .requiredOption('--records <dir>', 'directory of <network>.records files (the dnsname plugin\'s recordsDir, default /run/cnikit/dns)')
    .option('--listen <addr:port>', 'listen here (repeatable); default: on each network\'s gateway addresses, port 53', collect)
    .option('--resolv-conf <file>', 'upstream resolvers for names outside the networks\' domains', '/etc/resolv.conf')
    .option('--forward-timeout-ms <ms>', 'how long to wait for an upstream answer', parseMillis);
  serve.addHelpText('after', SERVE_HELP);
  serve.action(act(async (o: ServeOptions) => {
    const { serveDns, parseListen } = await import('../../responder/serve.ts');
    let listen;
    try {
      listen = o.listen?.map(parseListen);
    } catch (err) {
      throw new InvalidArgumentError((err as Error).message);
    }
    const svc = await serveDns({ recordsDir: o.records, listen, watch: true, resolvConf: o.resolvConf, forwardTimeoutMs: o.forwardTimeoutMs });
    process.stderr.write(`cnikit: serving DNS from ${o.records}${listen ? ` on ${o.listen!.join(', ')}` : ' on the networks\' gateways'}; Ctrl-C stops\n`);
    const stop = () => { void svc.close(); };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    process.on('SIGHUP', () => { void svc.reload('SIGHUP'); });
    await svc.done;
  }));
}

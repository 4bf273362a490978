/**
 * `cnikit network create NAME`: writes NAME.conflist into NETCONFPATH, refusing a name, bridge or
 * subnet in use, and picking free ones when not given (network/create.ts does the work).
 */
import { type Command, InvalidArgumentError, Option } from 'commander';
import { type Cidr, formatCidr, parseIP } from '../../pkg/ip/cidr.ts';
import { DEFAULT_NETCONF_PATH } from '../../runtime/defaults.ts';
import { act } from '../act.ts';
import { collect, collectAddress, collectLabel, collectSubnet, intIn, parseNetworkName } from '../parse.ts';

const HELP = `
Examples:
  $ sudo cnikit network create web                       a free 10.89.x.0/24, bridge cnikit0, DNS
  $ sudo cnikit network create db --subnet 10.90.5.0/24 --gateway 10.90.5.254 --ipv6
  $ sudo cnikit network create backend --internal --isolate strict --no-dns
  $ sudo cnikit run --network web --name app -p 8080:80 -- ...
The chain is cnikit's: bridge + host-local, portmap, firewall and tuning where built, dnsname
unless --no-dns. Without --subnet the first /24 of 10.89.0.0/16 (then 10.90.0.0/15 ... as
Podman) that overlaps no other network, address or route of this host is used; --ipv6 adds a
random ULA /64. The bridge is cnikitN (the lowest free N) unless --bridge; it appears on the
first container. The file is an ordinary conflist: cnitool, containerd and Podman's CNI
backend use it unchanged. --internal and --isolate are enforced by the firewall plugin.`;

interface CreateCliOptions {
  subnet?: Cidr[]; gateway?: string[]; ipv6?: boolean; internal?: boolean; isolate?: 'open' | 'same-bridge' | 'strict'; icc: boolean;
  dns: boolean; resolver: 'gateway' | '127.0.0.11'; dnsDomain?: string; dnsUpstream?: string[]; dnsDir?: string; ipamDir?: string;
  mtu?: number; bridge?: string; label?: Record<string, string>; netconfPath?: string; json?: boolean; quiet?: boolean;
}

function parseBridge(value: string): string {
  if (!/^[a-zA-Z0-9_.-]{1,15}$/.test(value) || value === '.' || value === '..') throw new InvalidArgumentError(`"${value}" is not an interface name (1-15 letters, digits, "_", "." or "-")`);
  return value;
}

export function register(network: Command): void {
  const cmd = network.command('create').description('write a new network\'s conflist (free subnet and bridge chosen unless given)')
    .argument('<name>', 'network name (letters, digits, "_", ".", "-"; also the file name NAME.conflist)', parseNetworkName)
    .option('--subnet <cidr>', 'subnet (repeatable: one per range, IPv4 and/or IPv6)', collectSubnet)
    .option('--gateway <ip>', 'gateway of the subnet that holds it (default: its first address)', collectAddress())
    .option('--ipv6', 'also a ULA /64 (when no IPv6 --subnet is given)')
    .option('--internal', 'no route or masquerade out; DNS answers container names only')
    .addOption(new Option('--isolate <mode>', 'isolation from other networks: open (anyone may connect in), same-bridge (default: no other network may), strict (nor may this one connect out to them)').choices(['open', 'same-bridge', 'strict']))
    .option('--no-icc', 'containers of this network cannot reach each other (Docker enable_icc=false)')
    .option('--no-dns', 'no dnsname plugin in the chain')
    .addOption(new Option('--resolver <where>', 'where containers ask for names').choices(['gateway', '127.0.0.11']).default('gateway'))
    .option('--dns-domain <domain>', 'DNS domain of the network (default: dns.cnikit)')
    .option('--dns-upstream <ip[:port]>', 'where names outside the network are forwarded (repeatable; "none": nowhere; default: the host\'s resolv.conf)', collect)
    .option('--dns-dir <dir>', 'dnsname records and runtime directory (default: /run/cnikit/dns)')
    .option('--ipam-dir <dir>', 'host-local lease directory (default: /var/lib/cni/networks)')
    .option('--mtu <n>', 'MTU of the bridge and veths', intIn(68, 65535))
    .option('--bridge <ifname>', 'bridge name (default: cnikitN, the lowest free N)', parseBridge)
    .option('--label <key=value>', 'a label kept in the conflist (repeatable)', collectLabel)
    .addOption(new Option('--netconf-path <dir>', `directory to write to (default: ${DEFAULT_NETCONF_PATH})`).env('NETCONFPATH'))
    .option('--json', 'print the network as JSON (with the conflist)')
    .option('-q, --quiet', 'no warnings');
  cmd.addHelpText('after', HELP);
  cmd.action(act(async (name: string, o: CreateCliOptions) => {
    const [{ createNetwork, defaultCreateDeps }, { PLUGINS }] = await Promise.all([import('../network/create.ts'), import('../../executables.ts')]);
    const types = new Set(PLUGINS.map((p) => p.type));
    const upstreams = o.dnsUpstream?.flatMap((u) => (u === 'none' ? [] : [u]));
    const c = await createNetwork({
      netconfPath: o.netconfPath || DEFAULT_NETCONF_PATH, name, subnets: o.subnet ?? [], gateways: (o.gateway ?? []).map(parseIP), ipv6: !!o.ipv6,
      internal: !!o.internal, isolate: o.isolate ?? 'same-bridge', icc: o.icc, dns: o.dns, resolver: o.resolver, domain: o.dnsDomain, upstreams,
      dnsDir: o.dnsDir, ipamDir: o.ipamDir, mtu: o.mtu, bridge: o.bridge, labels: o.label ?? {},
    }, defaultCreateDeps(types));
    if (!types.has('firewall') && !o.quiet && (o.internal || o.isolate || !o.icc)) {
      process.stderr.write('cnikit: warning: the firewall plugin is not built yet, so --internal/--isolate/--no-icc are not enforced by a firewall: an internal network has no route or masquerade out, nothing more\n');
    }
    const subnets = c.spec.ranges.map((r) => formatCidr(r.subnet));
    if (o.json) process.stdout.write(JSON.stringify({ name, file: c.file, bridge: c.spec.bridge, subnets, conflist: c.conflist }, null, 2) + '\n');
    else process.stdout.write(`created network "${name}": ${subnets.join(', ')} on bridge ${c.spec.bridge}${c.spec.dns ? `, DNS ${c.spec.dns.domain}` : ''} (${c.file})\n`);
  }));
}

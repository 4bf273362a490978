/**
 * The executables cnikit builds: one line per CNI plugin type, plus the runtime command. This is
 * the only list of them. scripts/build.ts bundles each `entry` into dist/bin/<type>,
 * `cnikit install` copies the plugins (role main, ipam or meta), each entry prints its `about`
 * text when CNI_COMMAND is empty, and the README's table is checked against it
 * (executables.test.ts). Adding a plugin means adding its folder under plugins/ and one line here.
 *
 * Roles follow containernetworking/plugins: `main` creates the container's interface, `ipam`
 * hands out addresses to a main plugin, `meta` is chained after a main plugin and adjusts what it
 * made (it needs prevResult). Plugins are native launchers in dist/bin (native/launcher.c) that
 * hand the call to the warm engine or run the bundle fresh; `runtime` is a Node executable;
 * a `daemon` has only its bundle in dist/bin/.lib (launchers start it).
 */
export type Role = 'main' | 'ipam' | 'meta' | 'runtime' | 'daemon';

export interface Executable {
  /** The executable's name: the CNI `type` for plugins. */
  type: string;
  /** Its entry module, relative to the project root. */
  entry: string;
  role: Role;
  /** One line: what it does (the about text and the README's table). */
  about: string;
}

export const EXECUTABLES = [
  { type: 'bridge', entry: 'plugins/bridge/main.ts', role: 'main', about: 'a host bridge, a veth pair per container, addresses and routes inside the container, the gateway on the bridge, hairpin, VLAN, dual-stack' },
  { type: 'host-local', entry: 'plugins/host-local/main.ts', role: 'ipam', about: 'IPAM: address leases from configured ranges, on disk under a lock, in the reference\'s on-disk format' },
  { type: 'portmap', entry: 'plugins/portmap/main.ts', role: 'meta', about: 'published ports (`-p 8080:80`) in nftables: from outside, from the host, from 127.0.0.1 and from other containers' },
  { type: 'firewall', entry: 'plugins/firewall/main.ts', role: 'meta', about: 'containers\' traffic through forward chains that drop by default (iptables-nft or nft), and isolation between networks (`ingressPolicy`, `strictIsolation`, `internal`, `icc`), in nftables' },
  { type: 'dnsname', entry: 'plugins/dnsname/main.ts', role: 'meta', about: 'container names resolvable inside a network (like Docker\'s 127.0.0.11 or Podman\'s aardvark-dns), other names forwarded upstream' },
  { type: 'bandwidth', entry: 'plugins/bandwidth/main.ts', role: 'meta', about: 'rate limits per container in each direction (the `bandwidth` capability, Kubernetes\' bandwidth annotations): a token bucket on the host veth, and on an ifb for what the container sends' },
  { type: 'tuning', entry: 'plugins/tuning/main.ts', role: 'meta', about: 'sysctls of the container\'s namespace and its interface\'s MAC, MTU, promiscuous and all-multicast modes and queue length, put back on DEL' },
  { type: 'loopback', entry: 'plugins/loopback/main.ts', role: 'main', about: 'sets lo up in the container\'s namespace (containerd\'s `cni-loopback` network), the reference\'s results; DEL sets it down' },
  { type: 'engine', entry: 'engine/main.ts', role: 'daemon', about: 'the warm engine: one per host network namespace, runs the plugin calls that launchers hand it, with the same code and results as a fresh process; started by the first call, exits when idle' },
  { type: 'cnikit', entry: 'cnikit/main.ts', role: 'runtime', about: 'a cnitool-compatible runtime: `add`/`del`/`check`/`status`/`gc`, `network create`/`ls`/`inspect`/`rm`/`prune`, `run` a command with networking, `ps`, `connect`/`disconnect`, `ls`/`inspect`, `install`, `demo`' },
] as const satisfies readonly Executable[];

export type ExecutableType = (typeof EXECUTABLES)[number]['type'];

/** True for the CNI plugins' roles (each is a launcher in dist/bin). */
export function isPlugin(e: Executable): boolean {
  return e.role === 'main' || e.role === 'ipam' || e.role === 'meta';
}

/** The CNI plugins (not the runtime command or the engine), in manifest order. */
export const PLUGINS: readonly Executable[] = EXECUTABLES.filter(isPlugin);

/** The about text of `type` (`cnikit <type>: <about>`), for its entry's empty-CNI_COMMAND reply. */
export function aboutOf(type: ExecutableType): string {
  const e = EXECUTABLES.find((x) => x.type === type);
  return `cnikit ${type}: ${e?.about ?? ''}`;
}

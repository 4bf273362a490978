/**
 * The cnikit command (commander): cnitool's verbs with cnitool's environment, plus `run`, `ls`,
 * `inspect`, `install`, `demo` and `dns serve`. Each subcommand parses its arguments, calls the
 * runtime library (chain.ts) and prints; errors are printed once, here, with a hint saying what
 * to do, and exit codes come from exit-codes.ts.
 *
 * cnitool compatibility: `cnikit add|check|del <network> <netns-path>` reads NETCONFPATH,
 * CNI_PATH, CNI_IFNAME (empty = eth0), CNI_ARGS, CAP_ARGS, and derives the container id from the
 * netns path exactly as cnitool does, so either tool can DEL what the other added. Extras: each
 * variable also has a flag; CNI_CONTAINERID/CNI_CACHE_DIR are honoured; `<network>` may be a
 * path to a config file; with CNI_PATH unset the directory cnikit lives in comes first.
 */
import { resolve } from 'node:path';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { CniCode, CniError, describe } from '../pkg/cni/errors.ts';
import { SUPPORTED_VERSIONS } from '../pkg/cni/version.ts';
import { DEFAULT_CACHE_DIR } from '../runtime/cache.ts';
import type { Attachment, ChainEvent, CniRuntime, RuntimeConf } from '../runtime/chain.ts';
import type { NetworkConfigList } from '../runtime/conf.ts';
import type { Result } from '../pkg/cni/result.ts';
import { EXIT_CODES_HELP, ExitCode, exitCodeFor } from './exit-codes.ts';
import { DEFAULT_NETCONF_PATH, DEFAULT_NETNS_DIR, errorText, parseArgsEnv, progressReporter, selfDir } from './self.ts';

const VERSION = '0.1.0';

/** cnitool's container id: "cnitool-" + the first 20 hex digits of SHA-512(absolute netns path). */
export function cnitoolContainerId(netnsPath: string): string {
  return `cnitool-${process.getBuiltinModule('node:crypto').createHash('sha512').update(resolve(netnsPath)).digest('hex').slice(0, 20)}`;
}

/** CNI_PATH as cnikit uses it: the given list, or (unset) cnikit's own directory then /opt/cni/bin. */
export function cniPathOf(value: string | undefined): string[] {
  if (value) return value.split(':').filter(Boolean);
  return [selfDir(), '/opt/cni/bin'];
}

/** Parses CAP_ARGS: a JSON object of capability arguments. */
export function parseCapArgs(value: string | undefined): Record<string, unknown> {
  if (!value) return {};
  let v: unknown;
  try {
    v = JSON.parse(value);
  } catch (err) {
    throw new CniError(CniCode.DecodingFailure, 'CAP_ARGS is not valid JSON', `${(err as Error).message}; expected e.g. '{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]}'`);
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new CniError(CniCode.DecodingFailure, 'CAP_ARGS must be a JSON object', 'e.g. {"portMappings":[...]}');
  return v as Record<string, unknown>;
}

export interface PortMapping { hostPort: number; containerPort: number; protocol: string; hostIP?: string }

/** Parses `-p [HOSTIP:]HOST:CONTAINER[/PROTO]` (commander option parser; repeatable). */
export function parsePublish(value: string, previous: PortMapping[] = []): PortMapping[] {
  const m = /^(?:(\[[0-9a-fA-F:.]+\]|[0-9.]+):)?(\d+):(\d+)(?:\/(tcp|udp|sctp))?$/.exec(value);
  if (!m) throw new InvalidArgumentError(`"${value}" is not HOST:CONTAINER[/tcp|udp|sctp], e.g. 8080:80 or 127.0.0.1:8080:80/tcp`);
  const hostPort = Number(m[2]);
  const containerPort = Number(m[3]);
  for (const p of [hostPort, containerPort]) if (p < 1 || p > 65535) throw new InvalidArgumentError(`port ${p} in "${value}" is not between 1 and 65535`);
  const pm: PortMapping = { hostPort, containerPort, protocol: m[4] ?? 'tcp' };
  if (m[1]) pm.hostIP = m[1].replace(/^\[|\]$/g, '');
  return [...previous, pm];
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

const NAME_RE = /^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/;

/** Checks a container name or alias: a DNS label, so it can go in CNI_ARGS and be resolved. */
export function parseName(value: string): string {
  if (!NAME_RE.test(value)) throw new InvalidArgumentError(`"${value}" is not a valid name: use letters, digits and "-" (a DNS label, at most 63 characters)`);
  return value;
}

function collectName(value: string, previous: string[] = []): string[] {
  return [...previous, parseName(value)];
}

function parseValid(value: string, previous: Attachment[] = []): Attachment[] {
  const i = value.lastIndexOf(':');
  if (i <= 0 || i === value.length - 1) throw new InvalidArgumentError(`"${value}" is not CONTAINERID:IFNAME, e.g. cnitool-0a1b2c3d4e5f60718293:eth0`);
  return [...previous, { containerID: value.slice(0, i), ifname: value.slice(i + 1) }];
}

interface CommonOpts {
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

// The engine (child processes, schemas, results, netlink) loads only for the commands that run it.
async function runtimeOf(o: CommonOpts, onEvent?: (e: ChainEvent) => void): Promise<CniRuntime> {
  const { CniRuntime } = await import('../runtime/chain.ts');
  return new CniRuntime({ path: cniPathOf(o.cniPath), cacheDir: o.cacheDir || DEFAULT_CACHE_DIR, onEvent });
}

/**
 * The network for DEL: from NETCONFPATH as usual, or, when the config is gone or broken, the
 * copy cached at ADD (libcni keeps the conflist bytes in the cache), so that removing a config
 * file does not strand its containers.
 */
async function networkForDel(o: CommonOpts, nameOrPath: string, conf: RuntimeConf): Promise<NetworkConfigList> {
  try {
    return await networkOf(o, nameOrPath);
  } catch (err) {
    if (nameOrPath.includes('/')) throw err;
    const [{ ResultsCache }, { parseConfList }] = await Promise.all([import('../runtime/cache.ts'), import('../runtime/conf.ts')]);
    let cached;
    try {
      cached = new ResultsCache(o.cacheDir || DEFAULT_CACHE_DIR).read(nameOrPath, conf.containerId, conf.ifName);
    } catch {
      throw err;
    }
    if (!cached?.config.length) throw err;
    process.stderr.write(`cnikit: warning: ${errorText(err)}; using the config cached at ADD (${cached.file})\n`);
    return parseConfList(cached.config, `cached config in ${cached.file}`);
  }
}

async function networkOf(o: CommonOpts, nameOrPath: string): Promise<NetworkConfigList> {
  const { resolveNetwork } = await import('../runtime/conf.ts');
  return resolveNetwork(netconfDir(o), nameOrPath);
}

function netconfDir(o: CommonOpts): string {
  return o.netconfPath || DEFAULT_NETCONF_PATH;
}

function runtimeConf(o: CommonOpts, netns: string): RuntimeConf {
  const abs = netns ? resolve(netns) : '';
  return {
    containerId: o.containerId || cnitoolContainerId(netns),
    netns: abs,
    ifName: o.ifname || 'eth0',
    args: parseArgsEnv(o.args),
    capabilityArgs: parseCapArgs(o.capArgs),
  };
}

/** Adds the cnitool environment options (each with its variable) to a command. */
function cniOptions(cmd: Command, which: { attachment?: boolean; format?: boolean } = {}): Command {
  cmd.addOption(new Option('--cni-path <dirs>', 'plugin directories, ":"-separated (default: cnikit\'s own directory, then /opt/cni/bin)').env('CNI_PATH'));
  cmd.addOption(new Option('--netconf-path <dir>', `directory of network configs (default: ${DEFAULT_NETCONF_PATH})`).env('NETCONFPATH'));
  cmd.addOption(new Option('--cache-dir <dir>', `results cache directory (default: ${DEFAULT_CACHE_DIR})`).env('CNI_CACHE_DIR'));
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

/** What to do about an error, in one line (or undefined when the message says it all). */
function hintFor(err: unknown, code: ExitCode): string | undefined {
  const text = describe(err);
  if (code === ExitCode.Permission) return 'run as root: CNI plugins need CAP_NET_ADMIN and CAP_SYS_ADMIN';
  if (/failed to find plugin/.test(text)) return `point CNI_PATH or --cni-path at the plugin directory (cnikit's plugins are in ${selfDir()})`;
  if (/failed to open netns|no such file: the container's network namespace/.test(text)) return 'check the netns path; create one with e.g. `ip netns add ctr1` and pass /run/netns/ctr1';
  if (code === ExitCode.NotFound) return 'cnitool derives the container id from the netns path; pass the same path, or --container-id (see `cnikit ls`)';
  if (/incompatible CNI versions|IncompatibleVersion|does not support config version/.test(text)) return 'set "cniVersion" in the config to a version all its plugins support (cnikit speaks ' + SUPPORTED_VERSIONS.join(', ') + ')';
  return undefined;
}

/** Prints an error with its hint and returns the exit code to use. */
export function report(err: unknown): ExitCode {
  const code = exitCodeFor(err);
  const msg = errorText(err);
  process.stderr.write(`cnikit: ${msg}\n`);
  const hint = hintFor(err, code);
  if (hint) process.stderr.write(`  hint: ${hint}\n`);
  if (process.env.CNIKIT_DEBUG && err instanceof Error) process.stderr.write(`${err.stack ?? ''}\n`);
  return code;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- commander passes untyped action arguments
type Action = (...args: any[]) => Promise<number | void>;

/** Wraps an action so that its errors are reported once and its result becomes the exit code. */
function act(fn: Action): (...args: unknown[]) => Promise<void> {
  return async (...args: unknown[]) => {
    try {
      const code = await fn(...args);
      process.exitCode = code ?? ExitCode.Ok;
    } catch (err) {
      if (err instanceof CommanderError) {
        process.stderr.write(`cnikit: ${err.message.replace(/^error: /, '')}\n`);
        process.exitCode = ExitCode.Usage;
      } else process.exitCode = report(err);
    }
  };
}

async function printResult(o: CommonOpts, r: Result): Promise<void> {
  if (o.format === 'table') {
    const { resultTable } = await import('./format.ts');
    process.stdout.write(resultTable(r));
  } else {
    const { formatResult } = await import('../pkg/cni/result.ts');
    process.stdout.write(JSON.stringify(formatResult(r, r.cniVersion), null, 4) + '\n');
  }
}

const ENV_HELP = `
Environment (each also has a flag): NETCONFPATH, CNI_PATH, CNI_IFNAME, CNI_ARGS, CAP_ARGS,
CNI_CONTAINERID, CNI_CACHE_DIR.`;

/** Builds the commander program. */
export function buildProgram(): Command {
  const program = new Command('cnikit')
    .description('A CNI runtime (cnitool-compatible) and the cnikit plugins: bridge, host-local, portmap, dnsname.')
    .version(`cnikit ${VERSION} (CNI spec ${SUPPORTED_VERSIONS.join(', ')})`, '-V, --version')
    .enablePositionalOptions()
    .showHelpAfterError('(add --help for usage and examples)')
    .exitOverride()
    .addHelpText('after', `
Start here:
  $ sudo cnikit demo                 a two-minute tour in throwaway namespaces (host untouched)

Examples:
  $ sudo ip netns add ctr1
  $ sudo NETCONFPATH=conf cnikit add cnikit /run/netns/ctr1
  $ sudo NETCONFPATH=conf cnikit del cnikit /run/netns/ctr1
  $ sudo cnikit run --network cnikit --name web -p 8080:80 -- python3 -m http.server 80
  $ sudo cnikit ls
${ENV_HELP}

${EXIT_CODES_HELP}`);

  for (const verb of ['add', 'del', 'check'] as const) {
    const summary = {
      add: 'attach a network namespace to a network (ADD the whole chain) and print the result',
      del: 'detach it (DEL the chain in reverse with the cached result)',
      check: 'check that an attachment is still as ADD made it (CHECK the chain)',
    }[verb];
    const cmd = cniOptions(program.command(verb).description(summary)
      .argument('<network>', 'network name in NETCONFPATH, or a path to a .conflist/.conf file')
      .argument('<netns-path>', 'network namespace path, e.g. /run/netns/ctr1'), { attachment: true, format: verb === 'add' });
    cmd.addHelpText('after', {
      add: `
Examples:
  $ sudo ip netns add ctr1 && sudo cnikit add mynet /run/netns/ctr1
  $ sudo cnikit add conf/10-cnikit.conflist /run/netns/ctr1 --format table
  $ sudo CAP_ARGS='{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]}' cnikit add mynet /run/netns/ctr1
  $ sudo cnikit add mynet /run/netns/ctr1 --args 'IgnoreUnknown=1;K8S_POD_NAME=web'
The result is cached in <cache-dir>/results/<network>-<container-id>-<ifname> (libcni's format).${ENV_HELP}`,
      del: `
Examples:
  $ sudo cnikit del mynet /run/netns/ctr1
  $ sudo cnikit del mynet /run/netns/ctr1 --container-id cnitool-0a1b2c3d4e5f60718293
Without CNI_ARGS/CAP_ARGS, those cached at ADD are used again (cnitool needs them repeated).
DEL works when the namespace is already gone, and, using the config cached at ADD, when the
network's config file was removed.${ENV_HELP}`,
      check: `
Examples:
  $ sudo cnikit check mynet /run/netns/ctr1 && echo healthy
Needs cniVersion 0.4.0 or later and a cached ADD result.${ENV_HELP}`,
    }[verb]);
    cmd.action(act(async (network: string, netns: string, o: CommonOpts) => {
      const conf = runtimeConf(o, netns);
      const list = verb === 'del' ? await networkForDel(o, network, conf) : await networkOf(o, network);
      const p = progressReporter(o);
      const rt = await runtimeOf(o, p.onEvent);
      try {
        if (verb === 'add') {
          const r = await rt.add(list, conf);
          p.done();
          await printResult(o, r);
        } else if (verb === 'del') {
          await rt.del(list, conf);
        } else {
          await rt.check(list, conf);
        }
      } finally {
        p.done();
      }
      if (o.verbose) process.stderr.write(`cnikit: ${verb} ${list.name} ${conf.containerId} ${conf.ifName}: ok\n`);
      return ExitCode.Ok;
    }));
  }

  const status = cniOptions(program.command('status').description('ask every plugin of a network whether it can take new containers (STATUS)')
    .argument('<network>', 'network name or config file').argument('[netns-path]', 'accepted for cnitool compatibility; unused'));
  status.addHelpText('after', `
Examples:
  $ sudo cnikit status mynet && echo ready
Exits 4 when a plugin says the network is not available (CNI code 50/51). Lists before
cniVersion 1.1.0 have no STATUS; then nothing is asked and the exit code is 0.${ENV_HELP}`);
  status.action(act(async (network: string, _netns: string | undefined, o: CommonOpts) => {
    const list = await networkOf(o, network);
    const p = progressReporter(o);
    const asked = await (await runtimeOf(o, p.onEvent)).status(list).finally(p.done);
    process.stdout.write(asked ? `network "${list.name}": available\n` : `network "${list.name}": cniVersion ${list.cniVersion} has no STATUS (needs 1.1.0); nothing asked\n`);
    return ExitCode.Ok;
  }));

  const gc = cniOptions(program.command('gc').description('garbage-collect a network: DEL cached attachments that are not valid, then GC every plugin')
    .argument('<network>', 'network name or config file').argument('[netns-path]', 'accepted for cnitool compatibility; unused'));
  gc.option('--valid <containerid:ifname>', 'an attachment that is still in use (repeatable)', parseValid);
  gc.option('--keep-cached', 'treat every cached attachment as valid: only free what the cache does not know');
  gc.addHelpText('after', `
Examples:
  $ sudo cnikit gc mynet --keep-cached        free leaked leases/rules, keep every cached attachment
  $ sudo cnikit gc mynet --valid cnikit-1a2b3c4d5e6f:eth0
  $ sudo cnikit gc mynet                      like cnitool: nothing is valid, everything is removed
${ENV_HELP}`);
  gc.action(act(async (network: string, _netns: string | undefined, o: CommonOpts & { valid?: Attachment[]; keepCached?: boolean }) => {
    const list = await networkOf(o, network);
    const p = progressReporter(o);
    const rt = await runtimeOf(o, p.onEvent);
    const valid = [...(o.valid ?? [])];
    if (o.keepCached) for (const c of rt.cache.list(list.name)) valid.push({ containerID: c.containerId, ifname: c.ifName });
    const removed = await rt.gc(list, valid).finally(p.done);
    for (const c of removed) process.stdout.write(`removed ${c.containerId} ${c.ifName} (netns ${c.netns || '-'})\n`);
    process.stdout.write(`gc ${list.name}: ${removed.length} attachment(s) removed, ${valid.length} kept\n`);
    return ExitCode.Ok;
  }));

  const ls = program.command('ls').description('list attachments from the results cache')
    .addOption(new Option('--cache-dir <dir>', `results cache directory (default: ${DEFAULT_CACHE_DIR})`).env('CNI_CACHE_DIR'))
    .option('--network <name>', 'only this network')
    .option('--json', 'print JSON');
  ls.addHelpText('after', `
Examples:
  $ sudo cnikit ls
  $ sudo cnikit ls --network cnikit --json | jq '.[].addresses'
Entries written by cnitool, containerd or Podman (libcni) show up as well.`);
  ls.action(act(async (o: { cacheDir?: string; network?: string; json?: boolean }) => {
    const [{ ResultsCache }, { attachmentJson, attachmentsTable }] = await Promise.all([import('../runtime/cache.ts'), import('./format.ts')]);
    const list = new ResultsCache(o.cacheDir || DEFAULT_CACHE_DIR).list(o.network);
    if (o.json) process.stdout.write(JSON.stringify(list.map(attachmentJson), null, 2) + '\n');
    else process.stdout.write(list.length ? attachmentsTable(list) : 'no attachments\n');
    return ExitCode.Ok;
  }));

  const inspect = program.command('inspect').description('show cached attachments in detail')
    .argument('[id]', 'container id (or a unique prefix), or netns path or name; all when omitted')
    .addOption(new Option('--cache-dir <dir>', `results cache directory (default: ${DEFAULT_CACHE_DIR})`).env('CNI_CACHE_DIR'))
    .option('--json', 'print JSON (result, decoded config, args)');
  inspect.addHelpText('after', `
Examples:
  $ sudo cnikit inspect cnikit-1a2b
  $ sudo cnikit inspect /run/netns/ctr1 --json
Exits 5 when nothing matches.`);
  inspect.action(act(async (id: string | undefined, o: { cacheDir?: string; json?: boolean }) => {
    const [{ ResultsCache }, { attachmentJson, attachmentText }] = await Promise.all([import('../runtime/cache.ts'), import('./format.ts')]);
    let list = new ResultsCache(o.cacheDir || DEFAULT_CACHE_DIR).list();
    if (id) {
      const exact = list.filter((a) => a.containerId === id || a.netns === id || a.netns.endsWith(`/${id}`) || a.netns === resolve(id));
      list = exact.length ? exact : list.filter((a) => a.containerId.startsWith(id));
      if (!list.length) {
        process.stderr.write(`cnikit: no cached attachment matches "${id}"\n  hint: \`cnikit ls\` lists them (is --cache-dir / CNI_CACHE_DIR the same as at ADD?)\n`);
        return ExitCode.NotFound;
      }
    }
    if (o.json) process.stdout.write(JSON.stringify(list.map(attachmentJson), null, 2) + '\n');
    else process.stdout.write(list.length ? list.map(attachmentText).join('\n') : 'no attachments\n');
    return ExitCode.Ok;
  }));

  const run = cniOptions(program.command('run').description('run a command in a new network namespace attached to a network; detach and delete it on exit')
    .argument('<command...>', 'the command and its arguments (put them after --)')
    .option('--network <name>', 'network name or config file (default: the first network in NETCONFPATH)')
    .option('--name <name>', 'container name: K8S_POD_NAME for the plugins, the DNS name on networks with dnsname', parseName)
    .option('-p, --publish <[hostip:]host:container[/proto]>', 'publish a port (repeatable), needs portmap in the chain', parsePublish)
    .option('--alias <name>', 'extra DNS name (repeatable)', collectName)
    .addOption(new Option('--netns-dir <dir>', 'where the namespace is pinned').default(DEFAULT_NETNS_DIR))
    .passThroughOptions(), { attachment: true });
  run.addHelpText('after', `
Examples:
  $ sudo cnikit run -- ip addr
  $ sudo cnikit run --network cnikit --name web -p 8080:80 -- python3 -m http.server 80
  $ sudo cnikit run --name db --alias postgres -- sleep infinity
On a network with DNS (dnsname) the command gets the network's resolv.conf, so other
containers are found by name (curl http://web/); with --name it also gets an /etc/hosts entry.
Ctrl-C stops the command; the network and namespace are removed whatever way it ends. Exit
status is the command's.${ENV_HELP}`);
  run.action(async (command: string[], o: CommonOpts & { network?: string; name?: string; publish?: PortMapping[]; alias?: string[]; netnsDir: string }) => {
    const { runContainer } = await import('./run.ts');
    try {
      process.exitCode = await runContainer({
        network: o.network, name: o.name, publish: o.publish ?? [], aliases: o.alias ?? [], ifName: o.ifname || 'eth0',
        netnsDir: o.netnsDir, netconfPath: netconfDir(o), cniPath: cniPathOf(o.cniPath), cacheDir: o.cacheDir || DEFAULT_CACHE_DIR,
        args: parseArgsEnv(o.args), capabilityArgs: parseCapArgs(o.capArgs), containerId: o.containerId, quiet: !!o.quiet, verbose: !!o.verbose,
      }, command);
    } catch (err) {
      report(err);
      process.exitCode = ExitCode.RunSetup;
    }
  });

  const install = program.command('install').description('install the cnikit plugins into a CNI plugin directory')
    .option('--dir <dir>', 'target directory', '/opt/cni/bin')
    .option('--force', 'replace files that are not cnikit plugins (e.g. the reference bridge)')
    .option('--symlink', 'link to the built files instead of copying them');
  install.addHelpText('after', `
Examples:
  $ sudo cnikit install                    copies bridge, host-local, portmap, dnsname to /opt/cni/bin
  $ sudo cnikit install --dir /usr/local/lib/cni --force
Each installed plugin starts with an absolute interpreter path (this checkout's Node 24) and
finds its native addon in this checkout, so runtimes can call it with an empty environment.
Keep the checkout where it is, or install again after moving it.`);
  install.action(act(async (o: { dir: string; force?: boolean; symlink?: boolean }) => {
    const { installPlugins } = await import('./install.ts');
    const done = installPlugins({ from: selfDir(), to: o.dir, force: !!o.force, symlink: !!o.symlink });
    for (const d of done) process.stdout.write(`${d.action} ${d.to}\n`);
    return ExitCode.Ok;
  }));

  const demo = program.command('demo').description('a self-contained tour: two containers, DNS by name, a published port; the host network is not touched')
    .option('--tmp-dir <dir>', 'parent directory for the demo\'s temporary state', '')
    .option('--inner <state>', 'internal: the half that runs inside the sandbox host namespace');
  demo.addHelpText('after', `
Examples:
  $ sudo dist/bin/cnikit demo
  $ sudo npx cnikit demo
Everything happens in network namespaces made for the tour (a sandbox "host", an "outside"
peer and two containers) with state in a temp dir; all of it is removed at the end, also on
Ctrl-C. Exit 0 means every check of the tour passed.`);
  demo.action(act(async (o: { tmpDir: string; inner?: string }) => {
    const { demoOuter, demoInner } = await import('./demo.ts');
    return o.inner ? demoInner(o.inner) : demoOuter({ tmpDir: o.tmpDir });
  }));

  const dns = program.command('dns').description('the DNS responder that serves container names (what the dnsname plugin runs)')
    .addHelpText('after', `
Examples:
  $ sudo cnikit dns serve --records /run/cnikit/dns
  $ cnikit dns serve --records ./records --listen 127.0.0.1:5353`);
  const serve = dns.command('serve').description('serve the names in a records directory, in the foreground, until Ctrl-C')
    .requiredOption('--records <dir>', 'directory of <network>.records files (the dnsname plugin\'s recordsDir, default /run/cnikit/dns)')
    .option('--listen <addr:port>', 'listen here (repeatable); default: on each network\'s gateway addresses, port 53', collect)
    .option('--resolv-conf <file>', 'upstream resolvers for names outside the networks\' domains', '/etc/resolv.conf')
    .option('--forward-timeout-ms <ms>', 'how long to wait for an upstream answer', (v: string) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`"${v}" is not a positive number of milliseconds`);
      return n;
    });
  serve.addHelpText('after', `
Examples:
  $ sudo cnikit dns serve --records /run/cnikit/dns
  $ cnikit dns serve --records ./records --listen 127.0.0.1:5353 &
  $ dig @127.0.0.1 -p 5353 web.cnikit.internal
With --listen every network's names are served on that address; otherwise each network is
answered only on its own gateway addresses (isolation). The records directory is followed as it
changes; SIGHUP forces a reload.`);
  serve.action(act(async (o: { records: string; listen?: string[]; resolvConf: string; forwardTimeoutMs?: number }) => {
    const { serveDns, parseListen } = await import('../responder/serve.ts');
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
    return ExitCode.Ok;
  }));

  return program;
}

/** Runs the CLI with `argv` (process.argv form). */
export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode === 0 ? ExitCode.Ok : ExitCode.Usage;
      return;
    }
    process.exitCode = report(err);
  }
}

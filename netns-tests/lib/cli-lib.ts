/**
 * Helpers for the tests that drive `dist/bin/cnikit` as a user would (cli-network, cli-containers):
 * a sandbox with every state path of the command in its temp dir (NETCONFPATH, the results cache,
 * `run`'s records and namespace pins, and, through `network create`'s flags, host-local's leases
 * and dnsname's records), cnikit run inside the sandbox host namespace, long-running `cnikit run`s
 * that are ready once their command prints `ready`, and a list of what is left behind.
 *
 * cnikit is started with `nsenter --net=<sandbox host>`, not `ip netns exec`: the latter gives
 * every command a mount namespace of its own, so the namespace pins one `cnikit run` makes would
 * be invisible to the next cnikit command (and to the test), unlike on a real host.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { constants } from 'node:os';
import { join } from 'node:path';
import { deleteNetns, pidsInNetns } from '../../cnikit/netns.ts';
import { BIN, Sandbox, type Started, ipJson, whenReady } from './sandbox.ts';

export const CNIKIT = join(BIN, 'cnikit');

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

export class CliSandbox {
  readonly sb: Sandbox;
  readonly netconf: string;
  readonly cache: string;
  readonly state: string;
  readonly netnsDir: string;
  readonly ipam: string;
  readonly dns: string;

  constructor(t: { teardown(fn: () => void): void }, tag = 'c') {
    this.sb = new Sandbox(tag);
    t.teardown(() => this.sb.cleanup());
    const d = (x: string) => join(this.sb.tmp, x);
    this.netconf = d('net.d');
    this.cache = d('cache');
    this.state = d('state');
    this.netnsDir = d('netns');
    this.ipam = d('ipam');
    this.dns = d('dns');
    mkdirSync(this.netconf);
    // Runs before sb.cleanup (teardowns are LIFO): a `cnikit run` killed by a test leaves its
    // command running in a namespace pinned here, which the sandbox does not know about.
    t.teardown(() => this.stopPinned());
  }

  /** Kills what runs in the namespaces pinned under netnsDir (by PID) and unpins them. */
  stopPinned(): void {
    if (!existsSync(this.netnsDir)) return;
    for (const f of readdirSync(this.netnsDir)) {
      const pin = join(this.netnsDir, f);
      for (const pid of pidsInNetns(pin)) {
        try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
      }
      try { deleteNetns(pin); } catch { /* not a pin */ }
    }
  }

  /** The environment every cnikit call gets: all state in the sandbox, plugins from dist/bin. */
  get env(): NodeJS.ProcessEnv {
    return { PATH: process.env.PATH, NETCONFPATH: this.netconf, CNI_CACHE_DIR: this.cache, CNIKIT_STATE_DIR: this.state, CNI_PATH: BIN };
  }

  /** Runs cnikit in the sandbox host namespace. */
  cnikit(args: string[], timeout = 60_000, env: NodeJS.ProcessEnv = {}): CliRun {
    const r = spawnSync('nsenter', [`--net=${this.sb.hostPath}`, '--', CNIKIT, ...args], { encoding: 'utf8', env: { ...this.env, ...env }, timeout });
    return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
  }

  /** `network create NAME ...` with the leases and DNS records in the sandbox and no DNS forwarding. */
  create(name: string, ...args: string[]): CliRun {
    return this.cnikit(['network', 'create', name, '--ipam-dir', this.ipam, '--dns-dir', this.dns, '--dns-upstream', 'none', ...args]);
  }

  /** `cnikit run ... -- CMD...` in the background, resolved once CMD prints `ready`. */
  start(args: string[], cmd: string[]): Promise<Started> {
    const child = spawn('nsenter', [`--net=${this.sb.hostPath}`, '--', CNIKIT, 'run', '--netns-dir', this.netnsDir, ...args, '--', ...cmd], { env: this.env });
    return whenReady(child, new Promise<number | null>((resolve) => child.on('exit', (code, sig) => resolve(code ?? (sig ? 128 + (constants.signals[sig] ?? 0) : null)))));
  }

  /** `cnikit run ... -- CMD...` to completion. */
  run(args: string[], cmd: string[], timeout = 60_000): CliRun {
    return this.cnikit(['run', '--netns-dir', this.netnsDir, ...args, '--', ...cmd], timeout);
  }

  /** What cnikit or the plugins left: pins, records, cache entries, veths, leases, bridges. */
  leftovers(): string[] {
    const out: string[] = [];
    const ls = (dir: string, label: string, keep: (f: string) => boolean = () => true) => {
      if (existsSync(dir)) out.push(...readdirSync(dir).filter(keep).map((f) => `${label} ${f}`));
    };
    ls(this.netnsDir, 'netns');
    ls(this.state, 'state');
    ls(join(this.cache, 'results'), 'cache');
    if (existsSync(this.ipam)) for (const n of readdirSync(this.ipam)) ls(join(this.ipam, n), `lease ${n}`, (f) => /^[0-9a-f.:]+$/i.test(f));
    for (const l of ipJson(this.sb.host, 'link', 'show', 'type', 'veth') as { ifname: string }[]) if (l.ifname !== 'uplink0') out.push(`veth ${l.ifname}`);
    return out;
  }

  /** Bridges in the sandbox host. */
  bridges(): string[] {
    return (ipJson(this.sb.host, 'link', 'show', 'type', 'bridge') as { ifname: string }[]).map((l) => l.ifname);
  }
}

/**
 * What the demo's two halves share, and the inner half's bookkeeping: the tour's fixed names
 * and addresses, the state file the outer half hands over, the numbered step lines, and the
 * `Tour` that remembers every container and process it made so that teardown can undo them.
 *
 * Steps are numbered by counting what was reported: each step prints one line, passed, failed
 * or skipped, so the last step's number is right only when every earlier one was shown.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { errorText } from '../../pkg/cni/errors.ts';
import type { Result } from '../../pkg/cni/result.ts';
import type { PortMapping } from '../../pkg/cni/capabilities.ts';
import { loadConfFile } from '../../runtime/conf.ts';
import type { CniRuntime, RuntimeConf } from '../../runtime/runtime.ts';
import { createNetns, deleteNetns, stopNetnsProcesses } from '../netns.ts';
import { selfExe } from '../self.ts';
import type { HelperName } from './helpers/index.ts';

/** What the outer half hands the inner half (as JSON in the temp dir). */
export interface DemoState {
  tmp: string;
  hostNetns: string;
  outNetns: string;
  uplinkV4: string;
  outsideV4: string;
}

export const NETWORK = 'demo';
export const BRIDGE = 'cnikit-demo0';
export const DOMAIN = 'demo.internal';
export const SUBNET4 = '10.99.0.0/24';
export const SUBNET6 = 'fd00:99::/64';
export const HOST_PORT = 8080;
export const UPLINK = { host: '198.51.100.1/24', outside: '198.51.100.2/24', host6: '2001:db8:ff::1/64', outside6: '2001:db8:ff::2/64' };

export const bold = (s: string) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
export const dim = (s: string) => (process.stdout.isTTY ? `\x1b[2m${s}\x1b[0m` : s);
export const green = (s: string) => (process.stdout.isTTY ? `\x1b[32m${s}\x1b[0m` : s);
export const red = (s: string) => (process.stdout.isTTY ? `\x1b[31m${s}\x1b[0m` : s);

export function out(s: string): void {
  process.stdout.write(s + '\n');
}

/** Thrown at a checkpoint once the tour was interrupted. */
export class Interrupted extends Error {
  constructor() {
    super('interrupted');
  }
}

export interface Proc { code: number; stdout: string; stderr: string }

/** The argv that runs one of the demo's helper programs (helpers/) through this executable. */
export function helper(name: HelperName, ...args: string[]): string[] {
  return [process.execPath, selfExe(), '__demo-helper', name, ...args];
}

/** The inner half's context: what it made, so teardown can undo it. */
export class Tour {
  readonly s: DemoState;
  readonly rt: CniRuntime;
  readonly containers: { name: string; netns: string; conf: RuntimeConf; attached: boolean }[] = [];
  readonly procs = new Set<number>();
  private readonly abort = new AbortController();
  failures = 0;
  private step = 0;
  readonly total: number;

  constructor(s: DemoState, rt: CniRuntime, total: number) {
    this.s = s;
    this.rt = rt;
    this.total = total;
  }

  get aborted(): boolean {
    return this.abort.signal.aborted;
  }

  interrupt(): void {
    this.abort.abort();
  }

  checkpoint(): void {
    if (this.abort.signal.aborted) throw new Interrupted();
  }

  /** Reports the next step. */
  say(ok: boolean, text: string, detail?: string): void {
    this.step++;
    out(`${ok ? green('✓') : red('✗')} [${this.step}/${this.total}] ${text}`);
    if (detail) out(dim(`      ${detail.replace(/\n/g, '\n      ')}`));
    if (!ok) this.failures++;
  }

  /** Reports every step before the last that has not been reported as skipped, saying why. */
  skipToLast(why: string): void {
    while (this.step < this.total - 1) {
      this.step++;
      out(dim(`- [${this.step}/${this.total}] skipped: ${why}`));
    }
  }

  /** Runs argv inside a namespace (through __exec-in-netns), bounded by timeoutMs. */
  exec(netns: string, argv: string[], timeoutMs = 10_000): Promise<Proc> {
    this.checkpoint();
    return new Promise((resolve) => {
      const child = spawn(process.execPath, [selfExe(), '__exec-in-netns', netns, '--', ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
      child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
      const kill = () => { if (child.pid && child.exitCode === null) process.kill(child.pid, 'SIGKILL'); };
      const timer = setTimeout(kill, timeoutMs);
      this.abort.signal.addEventListener('abort', kill, { once: true });
      child.on('close', (code) => {
        clearTimeout(timer);
        this.abort.signal.removeEventListener('abort', kill);
        resolve({ code: code ?? -1, stdout, stderr });
      });
    });
  }

  /** Starts a long-running program in a namespace and resolves once it prints "ready". */
  start(netns: string, argv: string[], timeoutMs = 5000): Promise<number> {
    this.checkpoint();
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [selfExe(), '__exec-in-netns', netns, '--', ...argv], { stdio: ['ignore', 'pipe', 'inherit'] });
      if (child.pid) this.procs.add(child.pid);
      let buf = '';
      const timer = setTimeout(() => reject(new Error(`server did not start within ${timeoutMs} ms`)), timeoutMs);
      child.stdout.on('data', (d: Buffer) => {
        buf += d.toString();
        if (buf.includes('ready')) { clearTimeout(timer); resolve(child.pid!); }
      });
      child.on('exit', () => { clearTimeout(timer); if (child.pid) this.procs.delete(child.pid); reject(new Error(`server exited: ${buf.trim()}`)); });
      this.abort.signal.addEventListener('abort', () => { clearTimeout(timer); reject(new Interrupted()); }, { once: true });
    });
  }

  /** Makes a container namespace and ADDs it to the demo network as `name`. */
  async attach(name: string, extra: { ports?: PortMapping[]; aliases?: string[] }): Promise<Result> {
    this.checkpoint();
    const netns = join(this.s.tmp, 'netns', name);
    await createNetns(netns);
    const conf: RuntimeConf = {
      containerId: `demo-${name}`, netns, ifName: 'eth0',
      args: [['IgnoreUnknown', '1'], ['K8S_POD_NAME', name]],
      capabilityArgs: {
        ...(extra.ports ? { portMappings: extra.ports } : {}),
        ...(extra.aliases ? { aliases: { [NETWORK]: extra.aliases } } : {}),
      },
    };
    const c = { name, netns, conf, attached: false };
    this.containers.push(c);
    const r = await this.rt.add(this.network(), conf);
    c.attached = true;
    return r;
  }

  /** DELs every container, stops their processes and deletes their namespaces; never throws. */
  async teardown(): Promise<string[]> {
    const problems: string[] = [];
    for (const pid of this.procs) { try { process.kill(pid, 'SIGTERM'); } catch { /* gone */ } }
    const list = this.network();
    for (const c of [...this.containers].reverse()) {
      await stopNetnsProcesses(c.netns, 1000);
      if (c.attached) {
        try {
          await this.rt.del(list, c.conf);
          c.attached = false;
        } catch (err) {
          problems.push(`DEL ${c.name}: ${errorText(err)}`);
        }
      }
      try { deleteNetns(c.netns); } catch (err) { problems.push(`delete netns ${c.name}: ${errorText(err)}`); }
    }
    return problems;
  }

  private network() {
    return loadConfFile(join(this.s.tmp, 'net.d', `${NETWORK}.conflist`));
  }
}

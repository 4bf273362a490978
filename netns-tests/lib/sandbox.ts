/**
 * Test sandboxes: a throwaway "host" network namespace per test (its own bridge, routes,
 * nftables and sysctls), container namespaces beside it, optionally an "outside" namespace joined
 * to the host by an uplink veth, and a temp dir for every state path. Plugins run as a runtime
 * would run them: the built executable from dist/bin, inside the sandbox host namespace, with
 * CNI_* in the environment and the config on stdin.
 *
 * The machine's own namespace is never touched: every `ip` command here names a sandbox netns.
 * `cleanup()` kills every process left in the sandbox namespaces (by PID, from `ip netns pids`),
 * deletes the namespaces and removes the temp dir; tests register it with t.teardown. That
 * includes the warm engine a plugin call starts in the sandbox host.
 *
 * The suite runs the CNI-level tests in two modes (scripts/test.ts): with the engine (the
 * default: a launcher's first call in a sandbox runs fresh and starts one, later calls go to it)
 * and with CNIKIT_TEST_ENGINE=off, in which every command run here gets CNIKIT_ENGINE=off and so
 * every plugin call is a fresh Node process.
 */
import { type ChildProcess, type ChildProcessWithoutNullStreams, execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { EngineStatus } from '../../engine/protocol.ts';
import { threadId } from 'node:worker_threads';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const BIN = join(ROOT, 'dist/bin');
export const NODE = process.execPath;
/** Speaks to the engine of the netns it runs in (netns-tests/fixtures/engine-client.ts). */
export const ENGINE_CLIENT = join(ROOT, 'netns-tests/fixtures/engine-client.ts');
export const isRoot = process.getuid?.() === 0;

let counter = 0;

/** The suite's engine mode for plugin calls: 'off' when CNIKIT_TEST_ENGINE=off. */
export const ENGINE_MODE: 'on' | 'off' = process.env.CNIKIT_TEST_ENGINE === 'off' ? 'off' : 'on';

/** Returns `env` with CNIKIT_ENGINE=off in the suite's 'off' mode (unless `env` sets it). */
export function withEngineMode(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return ENGINE_MODE === 'off' && env.CNIKIT_ENGINE === undefined ? { ...env, CNIKIT_ENGINE: 'off' } : env;
}

/** PIDs of the cnikit engines running in namespace `ns`. */
export function enginePids(ns: string): number[] {
  let pids: number[];
  try {
    pids = ip('netns', 'pids', ns).split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
  return pids.filter(isEngine);
}

/** Waits until `what()` holds (checked every 100 ms), at most `ms`; returns whether it does. */
export async function until(what: () => boolean, ms = 10_000): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 100))) if (what()) return true;
  return what();
}

/** True when `pid` is a cnikit engine. */
export function isEngine(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('launch.cjs\0engine\0');
  } catch {
    return false;
  }
}

export interface PluginRun {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON, when it is. */
  json: any;
}

export interface PluginCall {
  command: string;
  containerId?: string;
  netns?: string;
  ifName?: string;
  cniArgs?: string;
  conf: unknown;
  /** Extra or overriding env (use undefined to unset a CNI_* variable). */
  env?: Record<string, string | undefined>;
  /** CNI_PATH; defaults to dist/bin. */
  path?: string;
}

/** True while process `pid` exists (signal 0). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Runs `ip ARGS...` and returns stdout; throws with stderr on failure. */
export function ip(...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Runs `ip -j ARGS` in namespace `ns` and parses the JSON. */
export function ipJson(ns: string, ...args: string[]): any {
  const out = ip('-n', ns, '-j', ...args).trim();
  return out ? JSON.parse(out) : [];
}

export class Sandbox {
  readonly id: string;
  readonly host: string;
  readonly tmp: string;
  private readonly namespaces: string[] = [];

  constructor(tag = 't') {
    // ava runs test files in worker threads of one process: the thread id keeps two files'
    // sandboxes apart (the module-level counter starts at 0 in each).
    this.id = `cnk${process.pid.toString(36)}${threadId.toString(36)}${(counter++).toString(36)}${tag}`.slice(0, 12);
    this.host = `${this.id}-h`;
    this.tmp = mkdtempSync(join(tmpdir(), `cnikit-${this.id}-`));
    this.addNetns(this.host);
  }

  /** Path of a namespace made by this sandbox. */
  static path(ns: string): string {
    return `/run/netns/${ns}`;
  }

  get hostPath(): string {
    return Sandbox.path(this.host);
  }

  private addNetns(name: string): string {
    ip('netns', 'add', name);
    this.namespaces.push(name);
    ip('-n', name, 'link', 'set', 'lo', 'up');
    return name;
  }

  /** Makes a container namespace `<id>-<name>` and returns its name. */
  container(name: string): string {
    return this.addNetns(`${this.id}-${name}`);
  }

  /**
   * Makes an "outside" namespace joined to the host by a veth: host side `uplink0` with
   * 198.51.100.1/24 and 2001:db8:ff::1/64, outside peer 198.51.100.2 and 2001:db8:ff::2, and a
   * default route in the host towards it. Returns the outside namespace name.
   */
  outside(): string {
    const out = this.addNetns(`${this.id}-out`);
    ip('-n', this.host, 'link', 'add', 'uplink0', 'type', 'veth', 'peer', 'name', 'wan0', 'netns', out);
    ip('-n', this.host, 'addr', 'add', '198.51.100.1/24', 'dev', 'uplink0');
    ip('-n', this.host, 'addr', 'add', '2001:db8:ff::1/64', 'dev', 'uplink0', 'nodad');
    ip('-n', out, 'addr', 'add', '198.51.100.2/24', 'dev', 'wan0');
    ip('-n', out, 'addr', 'add', '2001:db8:ff::2/64', 'dev', 'wan0', 'nodad');
    ip('-n', this.host, 'link', 'set', 'uplink0', 'up');
    ip('-n', out, 'link', 'set', 'wan0', 'up');
    ip('-n', this.host, 'route', 'add', 'default', 'via', '198.51.100.2');
    ip('-n', this.host, '-6', 'route', 'add', 'default', 'via', '2001:db8:ff::2');
    return out;
  }

  /** Runs a command inside namespace `ns` and returns its result (never throws). */
  exec(ns: string, cmd: string, args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv; timeout?: number } = {}) {
    return spawnSync('ip', ['netns', 'exec', ns, cmd, ...args], {
      encoding: 'utf8', input: opts.input, env: withEngineMode(opts.env ?? process.env), timeout: opts.timeout ?? 30_000,
    });
  }

  /** The env a runtime would give a plugin for `c`. */
  cniEnv(c: PluginCall): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      CNI_COMMAND: c.command,
      CNI_CONTAINERID: c.containerId ?? 'ctr1',
      CNI_NETNS: c.netns ?? '',
      CNI_IFNAME: c.ifName ?? 'eth0',
      CNI_ARGS: c.cniArgs ?? '',
      CNI_PATH: c.path ?? BIN,
    };
    for (const [k, v] of Object.entries(c.env ?? {})) {
      if (v === undefined) delete env[k];
      else env[k] = v;
    }
    return withEngineMode(env);
  }

  /** Runs the built plugin `type` in the sandbox host namespace, as a runtime would. */
  plugin(type: string, c: PluginCall): PluginRun {
    const input = typeof c.conf === 'string' ? c.conf : JSON.stringify(c.conf);
    const r = this.exec(this.host, join(BIN, type), [], { input, env: this.cniEnv(c) });
    return withJson({ code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr });
  }

  /** Like plugin(), but asynchronous, for many calls at once. */
  pluginAsync(type: string, c: PluginCall): Promise<PluginRun> {
    const input = typeof c.conf === 'string' ? c.conf : JSON.stringify(c.conf);
    return new Promise((resolve) => {
      const child = spawn('ip', ['netns', 'exec', this.host, join(BIN, type)], { env: this.cniEnv(c) });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => { stdout += d; });
      child.stderr.on('data', (d) => { stderr += d; });
      child.on('close', (code) => resolve(withJson({ code: code ?? -1, stdout, stderr })));
      child.stdin.end(input);
    });
  }

  /** The status of this sandbox's engine (its host netns'), or null when none answers. */
  engineStatus(): EngineStatus | null {
    const r = this.exec(this.host, NODE, [ENGINE_CLIENT, 'status'], { env: { PATH: process.env.PATH } });
    return r.status === 0 ? JSON.parse(r.stdout) as EngineStatus | null : null;
  }

  /**
   * Starts this sandbox's engine (a VERSION call through a launcher, with CNIKIT_ENGINE=on
   * unless `mode` is the suite's) and waits until it answers, so that the calls after run in
   * it from the first (the first call on a host otherwise runs fresh and starts a responder
   * process that the engine takes DNS over from later). Returns its status; null in the
   * suite's 'off' mode with `mode` 'suite', where nothing is started.
   */
  engineReady(mode: 'suite' | 'on' = 'suite'): EngineStatus | null {
    if (mode === 'suite' && ENGINE_MODE === 'off') return null;
    this.plugin('bridge', { command: 'VERSION', conf: '{"cniVersion":"1.0.0"}', env: { CNIKIT_ENGINE: 'on' } });
    for (let i = 0; i < 200; i++) {
      const s = this.engineStatus();
      if (s) return s;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
    }
    throw new Error('no engine answered within 10 s');
  }

  /** Kills what runs in the sandbox namespaces (by PID), deletes them and the temp dir. */
  cleanup(): void {
    for (const ns of this.namespaces.reverse()) {
      try {
        const pids = ip('netns', 'pids', ns).split(/\s+/).filter(Boolean).map(Number);
        for (const pid of pids) {
          try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
        }
      } catch { /* namespace already gone */ }
      try { ip('netns', 'del', ns); } catch { /* already gone */ }
    }
    rmSync(this.tmp, { recursive: true, force: true });
  }
}

function withJson(r: Omit<PluginRun, 'json'>): PluginRun {
  let json: unknown;
  try { json = JSON.parse(r.stdout); } catch { json = undefined; }
  return { ...r, json };
}

/** Sends one TCP line to host:port from namespace `ns` and returns the reply ('' on failure). */
export function tcpRequest(sb: Sandbox, ns: string, host: string, port: number, msg = 'ping', timeoutMs = 3000): string {
  const script = `const s=require('net').connect({host:${JSON.stringify(host)},port:${port}});let d='';s.setTimeout(${timeoutMs},()=>{s.destroy();process.exit(2)});s.on('data',x=>d+=x);s.on('end',()=>{process.stdout.write(d);process.exit(0)});s.on('error',e=>{process.stderr.write(String(e));process.exit(1)});s.end(${JSON.stringify(msg)});`;
  const r = sb.exec(ns, NODE, ['-e', script], { timeout: timeoutMs + 5000 });
  return r.status === 0 ? r.stdout : '';
}

/** Pings `addr` from namespace `ns` once; true when it answers. */
export function ping(sb: Sandbox, ns: string, addr: string): boolean {
  const r = sb.exec(ns, 'ping', ['-c', '1', '-W', '2', addr], { timeout: 10_000 });
  return r.status === 0;
}

/** A `node -e` TCP server on port 80 that answers `pong:<data>` and prints `ready` once listening. */
export const PONG_SERVER = `require('net').createServer(s=>{s.on('data',d=>s.end('pong:'+d))}).listen(80,()=>console.log('ready'))`;

export interface Started {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code once the process has exited. */
  exited: Promise<number | null>;
}

/**
 * Spawns `ip netns exec NS CMD ARGS...` and resolves once its stdout says `ready` (20 s at most);
 * rejects, with its stderr, when it exits before that. The caller stops it (by its PID).
 */
export function startUntilReady(ns: string, cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<Started> {
  const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { env: withEngineMode(env) });
  return whenReady(child, new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code))));
}

/**
 * Resolves once the child's stdout says `ready` (20 s at most) with its output so far and
 * `exited`; rejects, with its stderr, when it exits before that.
 */
export function whenReady(child: ChildProcessWithoutNullStreams, exited: Promise<number | null>): Promise<Started> {
  let out = '';
  let err = '';
  child.stderr.on('data', (d) => { err += d; });
  return new Promise<Started>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not ready: ${err}`)), 20_000);
    child.stdout.on('data', (d) => {
      out += d;
      if (out.includes('ready')) {
        clearTimeout(timer);
        resolve({ child, stdout: () => out, stderr: () => err, exited });
      }
    });
    child.on('exit', () => { clearTimeout(timer); reject(new Error(`exited early: ${err}`)); });
  });
}

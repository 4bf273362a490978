/**
 * The Exec of the cnikit command: a plugin that CNI_PATH resolves to one of this build's own
 * launchers runs in this process, through `runPlugin`, as its launcher would run it in a fresh
 * Node process; anything else (a foreign plugin, or our launcher of another build or checkout)
 * is exec'd by ProcessExec exactly as before. So `cnikit add` over a chain of our plugins costs
 * one Node start (its own) instead of one per plugin, with the same results, errors and files
 * on disk.
 *
 * "This build's own launcher" means byte for byte the launcher in this bundle's dist/bin (every
 * plugin there is a copy of the one native executable, with the absolute path of this bundle
 * directory compiled in; `cnikit install` copies it as it is): such a file would run this very
 * bundle. Its CNI type is the name of the file it resolves to, as the launcher reads it from
 * /proc/self/exe. What the plugin sees is what a fresh run gets: the env the runtime built, the
 * config on stdin, `self` = the path found in CNI_PATH, its stderr on ours, and a kernel of
 * blocking sockets. The host's sockets are kept across the calls of this process (SharedKernel),
 * so a chain closes its nf_tables socket once, not once per plugin (10-13 ms each).
 *
 * Not here: running from source (no bundle: everything is exec'd), and the engine: a plugin in a
 * CLI chain does not go to the warm engine, which would save the loading of its code but cost
 * a round trip per plugin and a dependency on a daemon.
 */
import { readFileSync, realpathSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { decodePluginOutcome } from '../pkg/cni/invoke.ts';
import type { Result } from '../pkg/cni/result.ts';
import type { Io } from '../pkg/cni/skel.ts';
import type { SharedKernel } from '../pkg/open-kernel.ts';
import { bundleDir } from '../pkg/bundle.ts';
import { PLUGINS } from '../executables.ts';
import { type Exec, type PluginCommand, ProcessExec, parseVersionOutput } from '../runtime/exec.ts';
import { PLUGIN_LOADERS } from '../engine/plugins.ts';

/** Runs this build's own plugins in-process and execs the rest; see the file's header. */
export class OwnPluginsExec implements Exec {
  private readonly fallback: Exec;
  private readonly lib: string | undefined;
  private launcherBytes: Buffer | null | undefined;
  private readonly known = new Map<string, string | undefined>();
  private kernel: SharedKernel | undefined;

  /** `lib` is the bundle directory whose launchers count as ours (default: this process's). */
  constructor(o: { fallback?: Exec; lib?: string } = {}) {
    this.fallback = o.fallback ?? new ProcessExec();
    this.lib = o.lib ?? bundleDir();
  }

  /** This build's launcher, read once; null when there is none beside the bundle (from source). */
  private get launcher(): Buffer | null {
    if (this.launcherBytes === undefined) {
      try {
        this.launcherBytes = this.lib ? readFileSync(join(dirname(this.lib), PLUGINS[0]!.type)) : null;
      } catch {
        this.launcherBytes = null;
      }
    }
    return this.launcherBytes;
  }

  find(type: string, paths: string[]): string {
    return this.fallback.find(type, paths);
  }

  /** Returns the CNI type `file` runs when it is this build's own launcher of a served type. */
  ownType(file: string): string | undefined {
    const launcher = this.launcher;
    if (!launcher) return undefined;
    try {
      const real = realpathSync(file);
      const st = statSync(real);
      const key = `${real} ${st.size} ${st.mtimeMs} ${st.ino}`;
      if (this.known.has(key)) return this.known.get(key);
      const type = basename(real);
      const ours = st.size === launcher.length && Object.hasOwn(PLUGIN_LOADERS, type) && readFileSync(real).equals(launcher);
      this.known.set(key, ours ? type : undefined);
      return ours ? type : undefined;
    } catch {
      return undefined;
    }
  }

  async exec(file: string, command: PluginCommand, env: NodeJS.ProcessEnv, stdin: Buffer, version: string): Promise<Result | undefined> {
    const type = this.ownType(file);
    if (!type) return this.fallback.exec(file, command, env, stdin, version);
    const { code, stdout } = await this.run(type, file, { ...env, CNI_COMMAND: command }, stdin);
    return decodePluginOutcome(file, command, version, { status: code, signal: null, stdout });
  }

  async version(file: string, env: NodeJS.ProcessEnv, cniVersion: string): Promise<string[]> {
    const type = this.ownType(file);
    if (!type) return this.fallback.version(file, env, cniVersion);
    // libcni sets the other variables to "dummy" for VERSION (as ProcessExec does).
    const venv = { ...env, CNI_COMMAND: 'VERSION', CNI_CONTAINERID: 'dummy', CNI_NETNS: 'dummy', CNI_IFNAME: 'dummy', CNI_PATH: 'dummy' };
    const { code, stdout } = await this.run(type, file, venv, Buffer.from(JSON.stringify({ cniVersion })));
    return parseVersionOutput(file, code, stdout);
  }

  private async run(type: string, file: string, env: NodeJS.ProcessEnv, stdin: Buffer): Promise<{ code: number; stdout: string }> {
    const [{ runPlugin }, { SharedKernel }, plugin] = await Promise.all([
      import('../pkg/cni/skel.ts'), import('../pkg/open-kernel.ts'), PLUGIN_LOADERS[type]!(),
    ]);
    this.kernel ??= new SharedKernel();
    let stdout = '';
    const io: Io = {
      env, self: resolve(file), readStdin: () => stdin,
      stdout: (s) => { stdout += s; },
      stderr: (s) => { process.stderr.write(s); },
      kernel: this.kernel.forCall(),
    };
    return { code: await runPlugin(plugin, io), stdout };
  }
}

/**
 * `cnikit install`: put the plugin executables into a CNI plugin directory (/opt/cni/bin by
 * default), where runtimes look for them. A runtime calls plugins with a minimal environment
 * (no PATH), so each installed file must run on its own: the plugins are native launchers
 * (native/launcher.c) with the absolute path of this checkout's bundle directory compiled in,
 * so a plain copy hands calls to this checkout's engine, or runs its bundle with its Node,
 * wherever it is installed. With --symlink, links point at the built files instead.
 *
 * It refuses to replace a file that is not a cnikit plugin (say the reference bridge) unless
 * --force is given, and it does not install cnikit itself (it is a runtime, not a plugin).
 */
import { chmodSync, copyFileSync, existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, realpathSync, renameSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CniCode, CniError } from '../pkg/cni/errors.ts';
import { PLUGINS } from '../executables.ts';


/** The line of every built loader (scripts/build.ts) that says where its bundle is. */
const LIB_LINE = 'const __cnikit_lib=require("node:path").join(__dirname,".lib");';
/** What our files carry: the loader's line, or the launcher's marker (native/launcher.c). */
const MARKERS = ['__cnikit_lib', '__cnikit_launcher__'];

export interface InstallOptions { from: string; to: string; force: boolean; symlink: boolean }
export interface Installed { type: string; to: string; action: 'installed' | 'replaced' | 'linked' }

function isOurs(file: string): boolean {
  try {
    if (lstatSync(file).isSymbolicLink()) return readlinkSync(file).includes('dist/bin') || MARKERS.some((m) => readFileSync(file).includes(m));
    const head = readFileSync(file).subarray(0, 65536);
    return MARKERS.some((m) => head.includes(m));
  } catch {
    return false;
  }
}

/** Installs every built plugin found in `from` into `to`; returns what it did. */
export function installPlugins(o: InstallOptions): Installed[] {
  const types = PLUGINS.map((p) => p.type).filter((t) => existsSync(join(o.from, t)));
  if (!types.length) {
    throw new CniError(CniCode.IoFailure, `no built plugins in ${o.from}`, 'run `npm run build` (or `npm ci`) in the cnikit checkout first');
  }
  const clash = types.filter((t) => existsSync(join(o.to, t)) && !isOurs(join(o.to, t)));
  if (clash.length && !o.force) {
    throw new CniError(CniCode.IoFailure, `${clash.map((t) => join(o.to, t)).join(', ')} ${clash.length > 1 ? 'exist and are' : 'exists and is'} not a cnikit plugin`,
      'pass --force to replace (e.g. the reference plugins), or --dir to install elsewhere');
  }
  mkdirSync(o.to, { recursive: true, mode: 0o755 });
  const out: Installed[] = [];
  for (const type of types) {
    const src = join(o.from, type);
    const dst = join(o.to, type);
    const existed = existsSync(dst) || (() => { try { lstatSync(dst); return true; } catch { return false; } })();
    const tmp = join(o.to, `.${type}.cnikit-tmp${process.pid}`);
    if (o.symlink) {
      symlinkSync(src, tmp);
    } else {
      const text = readFileSync(src, 'utf8');
      if (!text.includes(LIB_LINE)) {
        // Not the loader we know: copy as it is.
        copyFileSync(src, tmp);
      } else {
        writeFileSync(tmp, text.replace(LIB_LINE, `const __cnikit_lib=${JSON.stringify(join(realpathSync(o.from), '.lib'))};`), { mode: 0o755 });
      }
      chmodSync(tmp, 0o755);
    }
    try {
      renameSync(tmp, dst);
    } catch (err) {
      try { unlinkSync(tmp); } catch { /* gone */ }
      throw err;
    }
    out.push({ type, to: dst, action: o.symlink ? 'linked' : existed ? 'replaced' : 'installed' });
  }
  return out;
}

/**
 * Where the running cnikit executable is (after symlinks): the directory its plugins sit in, and
 * the file helpers re-run (`__exec-in-netns`, the demo's inner half). Read from process.argv,
 * which only the command itself may do; the runtime library gets paths passed in.
 */
import { realpathSync } from 'node:fs';
import { dirname } from 'node:path';

/** The directory the running cnikit executable is in (after symlinks): where its plugins are. */
export function selfDir(): string {
  const self = process.argv[1];
  try {
    return dirname(realpathSync(self ?? '.'));
  } catch {
    return process.cwd();
  }
}

/** The executable to re-run for helpers (`__exec-in-netns`, the demo's inner half). */
export function selfExe(): string {
  return realpathSync(process.argv[1] ?? '');
}

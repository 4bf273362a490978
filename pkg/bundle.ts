/**
 * Where the running bundle lives, and how to start one of our executables as a fresh Node
 * process the way its launcher does (`node dist/bin/.lib/launch.cjs <type> <self> ARGS...`,
 * see scripts/build.ts). For daemons started from a call (the DNS responder), which must not
 * exec the native launcher as if it were a script.
 *
 * From source (tests, bench) there is no bundle: bundleDir() is undefined.
 */
import { join } from 'node:path';

/** Set by the bundle's banner (scripts/build.ts): the directory of the bundle, dist/bin/.lib. */
declare const __CNIKIT_LIB__: string | undefined;

/** Returns the bundle directory (dist/bin/.lib), or undefined when running from source. */
export function bundleDir(): string | undefined {
  return typeof __CNIKIT_LIB__ === 'string' ? __CNIKIT_LIB__ : undefined;
}

/**
 * Returns the argv that runs executable `type` in a fresh Node process with `nodeFlags`, as if
 * called through `self`; undefined when running from source.
 */
export function freshArgv(type: string, self: string, nodeFlags: readonly string[] = []): string[] | undefined {
  const lib = bundleDir();
  return lib ? [process.execPath, ...nodeFlags, join(lib, 'launch.cjs'), type, self] : undefined;
}

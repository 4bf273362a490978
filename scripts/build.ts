// Bundles each executable of the manifest (executables.ts) into one minified CommonJS file,
// dist/bin/.lib/<name>.cjs, and writes what runs it:
// - each plugin's dist/bin/<type> is a copy of the native launcher (native/launcher.c, built by
//   node-gyp): it hands the call to the warm engine, or runs `.lib/node .lib/launch.cjs <type>
//   <self> ARGS...` in its own process when no engine answers;
// - the runtime command (cnikit) is a three-line loader with an absolute-path shebang;
// - the engine (a daemon) has only its bundle, started by launchers.
// `.lib/node` links to the project's pinned Node and `.lib/launch.cjs` turns on V8's compile
// cache (dist/bin/.cache, root-only) before requiring a bundle. The directory works as CNI_PATH
// as it is, even when a runtime calls us with an empty environment.
//
// Why the compile cache: compiling a ~100 KB bundle costs ~10 ms of a fresh call's start-up;
// the cache removes that, and it can only be enabled before the bundle is loaded.
import { build } from 'esbuild';
import { chmodSync, copyFileSync, existsSync, mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { EXECUTABLES, isPlugin } from '../executables.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const outDir = join(root, 'dist/bin');

const libDir = join(outDir, '.lib');
mkdirSync(libDir, { recursive: true });
// Code cached by an older bundle is keyed by content and would only take space.
rmSync(join(outDir, '.cache'), { recursive: true, force: true });
writeFileSync(join(outDir, 'package.json'), '{"type":"commonjs"}\n');
const launcherBin = join(root, 'native/build/Release/launcher');

/** Replaces `file` with `write(tmp)` by a rename: a running launcher cannot be overwritten. */
function replaceFile(file: string, write: (tmp: string) => void): void {
  const tmp = `${file}.tmp${process.pid}`;
  rmSync(tmp, { force: true });
  write(tmp);
  renameSync(tmp, file);
}

replaceFile(join(libDir, 'node'), (tmp) => symlinkSync(process.execPath, tmp));
replaceFile(join(libDir, 'launch.cjs'), (tmp) => writeFileSync(tmp, [
  '// cnikit: how a launcher (dist/bin/<type>) runs <type> in a fresh Node process, as',
  '// `node launch.cjs <type> <self> ARGS...` (scripts/build.ts): argv becomes [node, self, ARGS...],',
  '// as for a #! script called as self, V8\'s compile cache is turned on, and the bundle runs.',
  '"use strict";',
  'const path=require("node:path");',
  'const [type,self]=process.argv.splice(2,2);',
  'process.argv[1]=self;',
  'try{const d=path.join(__dirname,"..",".cache");require("node:fs").mkdirSync(d,{recursive:true,mode:0o700});require("node:module").enableCompileCache(d)}catch{}',
  'require(path.join(__dirname,type+".cjs"));',
  '',
].join('\n')));

/**
 * The executable. `LIB_LINE` is replaced by an absolute path when `cnikit install` copies it
 * elsewhere (cnikit/install.ts), so the copy still loads this checkout's bundle.
 */
export const LIB_LINE = 'const __cnikit_lib=require("node:path").join(__dirname,".lib");';
function loader(name: string): string {
  return [
    `#!${process.execPath}`,
    `// cnikit ${name}: turns on V8's compile cache, then runs the bundle (see scripts/build.ts).`,
    LIB_LINE,
    'try{const d=require("node:path").join(__cnikit_lib,"..",".cache");require("node:fs").mkdirSync(d,{recursive:true,mode:0o700});require("node:module").enableCompileCache(d)}catch{}',
    `require(__cnikit_lib+"/${name}.cjs");`,
    '',
  ].join('\n');
}
const built: string[] = [];
const failed: string[] = [];
// Each entry is built on its own, so one broken executable does not keep the others from
// being written; the build still fails at the end if any did.
await Promise.all(EXECUTABLES.map(async (e) => {
  const { type: name, entry } = e;
  if (!existsSync(join(root, entry))) return;
  const outfile = join(libDir, `${name}.cjs`);
  try {
    await build({
      entryPoints: [join(root, entry)],
      outfile,
      bundle: true,
      platform: 'node',
      target: 'node24',
      format: 'cjs',
      // CNIKIT_BUILD_NAMES=1 keeps identifiers, so that a --cpu-prof of the engine names its functions.
      minifyWhitespace: true,
      minifySyntax: true,
      minifyIdentifiers: process.env.CNIKIT_BUILD_NAMES !== '1',
      legalComments: 'none',
      // The bundle sits in dist/bin/.lib; it finds the addon through this one constant, which
      // pkg/native.ts reads (in source it resolves the path from its own URL instead).
      // pkg/bundle.ts reads the other: the bundle's own directory.
      banner: { js: `const __CNIKIT_ADDON__=require("node:path").join(__dirname,"../../../native/build/Release/netns.node"),__CNIKIT_LIB__=__dirname;` },
      logLevel: 'error',
    });
    if (isPlugin(e)) {
      if (!existsSync(launcherBin)) throw new Error(`${launcherBin} is not built: run \`npm run install\``);
      replaceFile(join(outDir, name), (tmp) => copyFileSync(launcherBin, tmp));
    } else if (e.role === 'runtime') {
      replaceFile(join(outDir, name), (tmp) => writeFileSync(tmp, loader(name), { mode: 0o755 }));
    }
    if (e.role !== 'daemon') chmodSync(join(outDir, name), 0o755);
    built.push(name);
  } catch (err) {
    console.error(`${name}: ${(err as Error).message}`);
    failed.push(name);
  }
}));
console.log(`built ${built.sort().join(', ')} into ${outDir}`);
if (failed.length) {
  console.error(`failed to build: ${failed.sort().join(', ')}`);
  process.exitCode = 1;
}

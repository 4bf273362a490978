// Bundles each executable (one per CNI type, plus the cnikit CLI) into one minified CommonJS
// file, dist/bin/.lib/<name>.cjs, and writes dist/bin/<name>: a three-line loader with an
// absolute-path shebang to the project's pinned Node that turns on V8's compile cache
// (dist/bin/.cache, root-only) and requires the bundle. The directory works as CNI_PATH as it
// is, even when a runtime calls us with an empty environment.
//
// Why a loader: a plugin call is a fresh process, and compiling the ~100 KB bundle costs ~10 ms
// of its start-up; the compile cache removes that, and it can only be enabled before the
// bundle is loaded, not from inside it.
import { build } from 'esbuild';
import { chmodSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { EXECUTABLES } from '../executables.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const outDir = join(root, 'dist/bin');

const libDir = join(outDir, '.lib');
mkdirSync(libDir, { recursive: true });
// Code cached by an older bundle is keyed by content and would only take space.
rmSync(join(outDir, '.cache'), { recursive: true, force: true });
writeFileSync(join(outDir, 'package.json'), '{"type":"commonjs"}\n');

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
await Promise.all(EXECUTABLES.map(async ({ type: name, entry }) => {
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
      minify: true,
      legalComments: 'none',
      // The bundle sits in dist/bin/.lib; it finds the addon through this one constant, which
      // pkg/native.ts reads (in source it resolves the path from its own URL instead).
      banner: { js: `const __CNIKIT_ADDON__=require("node:path").join(__dirname,"../../../native/build/Release/netns.node");` },
      logLevel: 'error',
    });
    writeFileSync(join(outDir, name), loader(name), { mode: 0o755 });
    chmodSync(join(outDir, name), 0o755);
    built.push(name);
  } catch {
    failed.push(name);
  }
}));
console.log(`built ${built.sort().join(', ')} into ${outDir}`);
if (failed.length) {
  console.error(`failed to build: ${failed.sort().join(', ')}`);
  process.exitCode = 1;
}

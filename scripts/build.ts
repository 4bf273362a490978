// Bundles each executable (one per CNI type, plus the cnikit CLI) into dist/bin/ as a single
// minified CommonJS file with an absolute-path shebang to the project's pinned Node, so the
// directory works as CNI_PATH as it is, even when a runtime calls us with an empty environment.
import { build } from 'esbuild';
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const root = fileURLToPath(new URL('..', import.meta.url));
const outDir = join(root, 'dist/bin');
/** CNI type (executable name) -> entry file. Entries that do not exist yet are skipped. */
const entries: Record<string, string> = {
  'bridge': 'plugins/bridge/main.ts',
  'host-local': 'plugins/host-local/main.ts',
  'portmap': 'plugins/portmap/main.ts',
  'dnsname': 'plugins/dnsname/main.ts',
  'cnikit': 'plugins/runtime/main.ts',
};

mkdirSync(outDir, { recursive: true });
writeFileSync(join(outDir, 'package.json'), '{"type":"commonjs"}\n');
const built: string[] = [];
const failed: string[] = [];
// Each entry is built on its own, so one broken executable does not keep the others from
// being written; the build still fails at the end if any did.
await Promise.all(Object.entries(entries).map(async ([name, entry]) => {
  if (!existsSync(join(root, entry))) return;
  const outfile = join(outDir, name);
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
      define: { 'import.meta.url': '__cnikit_url' },
      banner: {
        js: `#!${process.execPath}\nconst __cnikit_url=require("node:url").pathToFileURL(__filename).href;`,
      },
      logLevel: 'error',
    });
    chmodSync(outfile, 0o755);
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

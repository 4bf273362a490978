/**
 * `npm run bench`: every benchmark in bench/, one after the other (they share two cores, so
 * never at once). Each compares cnikit with the reference implementation in the same run.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const benches = ['bridge.ts', 'portmap.ts', 'engine.ts', 'chain.ts', 'dns.ts', 'dns-engine.ts'];
let failed = 0;
for (const b of benches) {
  const file = fileURLToPath(new URL(b, import.meta.url));
  if (!existsSync(file)) continue;
  const r = spawnSync(process.execPath, [file, ...process.argv.slice(2)], { stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
process.exitCode = failed ? 1 : 0;

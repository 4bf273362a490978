// `npm test`: the whole suite with the warm engine (the default), then the CNI-level netns tests
// again with it off (CNIKIT_TEST_ENGINE=off: netns-tests/lib/sandbox.ts gives every command
// CNIKIT_ENGINE=off, so every plugin call is a fresh Node process). Arguments go to both ava
// runs (`npm test -- --tap`); file arguments pick the files of both runs. The exit code is the
// first failure's. The engine's own tests (netns-tests/engine*.test.ts) set their modes
// themselves and run once.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ava = fileURLToPath(new URL('../node_modules/ava/entrypoints/cli.js', import.meta.url));
const args = process.argv.slice(2);
const files = args.filter((a) => !a.startsWith('-'));
const flags = args.filter((a) => a.startsWith('-'));
const fresh = files.length ? files.filter((f) => !/engine[^/]*\.test\.ts$/.test(f)) : ['netns-tests/**/*.test.ts', '!netns-tests/engine*.test.ts'];

function run(label: string, runArgs: string[], env: NodeJS.ProcessEnv): number {
  process.stderr.write(`\n== ${label}\n`);
  const r = spawnSync(process.execPath, [ava, ...runArgs], { stdio: 'inherit', env });
  if (r.signal === null) return r.status ?? 1;
  // ava itself died (once in four full runs on 2026-12-02: after 957 tests, no message, no
  // summary): a crash of the test process, not a test's failure. Said loudly, and the phase is
  // run once more, so that the run still says whether any test fails; a second death fails it.
  process.stderr.write(`\n== ava was killed by ${r.signal} (a crash of the test process, not a failing test): running "${label}" once more\n`);
  const again = spawnSync(process.execPath, [ava, ...runArgs], { stdio: 'inherit', env });
  if (again.signal !== null) process.stderr.write(`\n== ava was killed by ${again.signal} again\n`);
  return again.status ?? 1;
}

const on = run('engine on (default)', args, process.env);
const off = fresh.length ? run('engine off (every plugin call a fresh process)', [...flags, ...fresh], { ...process.env, CNIKIT_TEST_ENGINE: 'off' }) : 0;
process.exitCode = on || off;

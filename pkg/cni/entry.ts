/**
 * The entry point of a plugin executable, built for start-up time: VERSION (runtimes call it
 * several times per container) and the about text are answered from this tiny module alone; the
 * plugin, skel, schemas and netlink code are loaded only for the commands that need them.
 * esbuild turns the dynamic imports into lazily initialised parts of the one bundle file.
 */
import { readFileSync, writeSync } from 'node:fs';
import type { Plugin } from './skel.ts';
import { aboutText, versionReply } from './version.ts';

function stdinText(): string {
  try {
    return readFileSync(0, 'utf8');
  } catch {
    return '';
  }
}

/** Runs the executable: `load` imports and returns the plugin's handlers. */
export function executableMain(about: string, load: () => Promise<Plugin>): void {
  const command = process.env.CNI_COMMAND ?? '';
  if (command === 'VERSION') {
    writeSync(1, versionReply(stdinText()));
    return;
  }
  if (command === '') {
    writeSync(2, aboutText(about));
    return;
  }
  Promise.all([import('./skel.ts'), load()]).then(
    async ([skel, plugin]) => { process.exitCode = await skel.runPlugin(plugin); },
    (err: unknown) => {
      writeSync(1, JSON.stringify({ code: 999, msg: 'failed to load the plugin', details: String(err) }) + '\n');
      process.exitCode = 1;
    },
  );
}

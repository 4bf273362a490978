/**
 * The entry point of a plugin executable, built for start-up time: VERSION (runtimes call it
 * several times per container) and the about text are answered from this tiny module alone; the
 * plugin, skel, schemas and netlink code are loaded only for the commands that need them.
 * esbuild turns the dynamic imports into lazily initialised parts of the one bundle file.
 */
import { readFileSync, writeSync } from 'node:fs';
import type { CallKernel } from '../kernel.ts';
import type { Plugin } from './skel.ts';
import { aboutText, versionReply } from './version.ts';

function stdinText(): string {
  try {
    return readFileSync(0, 'utf8');
  } catch {
    return '';
  }
}

/**
 * Runs the executable: `load` imports and returns the plugin's handlers; `kernel`, given by the
 * executables that talk to the kernel, imports and opens the call's kernel handles
 * (`processKernel()` of pkg/open-kernel.ts). It is a loader of the executable's own so that the
 * others (host-local, dnsname) do not bundle the netlink layer at all.
 */
export function executableMain(about: string, load: () => Promise<Plugin>, kernel?: () => Promise<CallKernel>): void {
  const command = process.env.CNI_COMMAND ?? '';
  if (command === 'VERSION') {
    writeSync(1, versionReply(stdinText()));
    return;
  }
  if (command === '') {
    writeSync(2, aboutText(about));
    return;
  }
  Promise.all([import('./skel.ts'), load(), kernel?.()]).then(
    async ([skel, plugin, k]) => { process.exitCode = await skel.runPlugin(plugin, k ? { ...skel.processIo, kernel: k } : skel.processIo); },
    (err: unknown) => {
      writeSync(1, JSON.stringify({ code: 999, msg: 'failed to load the plugin', details: String(err) }) + '\n');
      process.exitCode = 1;
    },
  );
}

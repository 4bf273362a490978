/**
 * The demo's helper programs: what the tour runs inside its containers and the outside peer.
 * They are ordinary modules of this executable, started as `cnikit __demo-helper NAME ARGS...`
 * through `__exec-in-netns`, so the installed cnikit needs no extra files next to it.
 */
import { InvalidArgumentError } from 'commander';
import { httpGet } from './http-get.ts';
import { lookup } from './lookup.ts';
import { webServer } from './web-server.ts';

const HELPERS = {
  'web-server': () => webServer(),
  'http-get': (args: string[]) => httpGet(args),
  lookup: (args: string[]) => lookup(args),
} satisfies Record<string, (args: string[]) => Promise<number>>;

export type HelperName = keyof typeof HELPERS;

/** Runs helper `name` with `args`; returns its exit status. */
export function runHelper(name: string, args: string[]): Promise<number> {
  if (!Object.hasOwn(HELPERS, name)) throw new InvalidArgumentError(`no demo helper "${name}" (there are ${Object.keys(HELPERS).join(', ')})`);
  return HELPERS[name as HelperName](args);
}

/**
 * Small pieces shared by the cnikit subcommands, kept free of heavy imports so that the CLI
 * starts fast (the chain engine, schemas and netlink load only for the commands that use
 * them): defaults, where the running executable lives (its plugins sit beside it; helpers
 * re-run it), error text, CNI_ARGS splitting, and the progress line for long chains.
 */
import { realpathSync } from 'node:fs';
import { dirname } from 'node:path';
import { CniCode, CniError, describe } from '../pkg/cni/errors.ts';
import type { ChainEvent } from '../runtime/chain.ts';

/** Where cnitool and libcni look for network configs when NETCONFPATH is unset. */
export const DEFAULT_NETCONF_PATH = '/etc/cni/net.d';

/** Where `ip netns` keeps named namespaces. */
export const DEFAULT_NETNS_DIR = '/run/netns';

/** One line for an error: a CniError's message and details (its cause chain is already in them). */
export function errorText(err: unknown): string {
  if (err instanceof CniError) return err.details ? `${err.message}: ${err.details}` : err.message;
  return describe(err);
}

/** Splits a CNI_ARGS string as cnitool does: every `;` piece must be a non-empty `k=v`. */
export function parseArgsEnv(raw: string | undefined): [string, string][] {
  if (!raw) return [];
  return raw.split(';').map((pair) => {
    const i = pair.indexOf('=');
    if (i <= 0) throw new CniError(CniCode.InvalidEnv, `invalid CNI_ARGS pair "${pair}"`, 'CNI_ARGS is KEY=VALUE pairs separated by ";", e.g. IgnoreUnknown=1;K8S_POD_NAME=web');
    return [pair.slice(0, i), pair.slice(i + 1)] as [string, string];
  });
}

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

/** Shows chain progress on stderr: an updating line on a terminal, a line per step with --verbose. */
export function progressReporter(o: { quiet?: boolean; verbose?: boolean }): { onEvent: (e: ChainEvent) => void; done: () => void } {
  const tty = !!process.stderr.isTTY;
  let shown = false;
  if (o.quiet || (!tty && !o.verbose)) return { onEvent: () => {}, done: () => {} };
  return {
    onEvent: (e) => {
      const step = e.index !== undefined ? ` [${e.index + 1}/${e.total}] ${e.type}` : e.op === 'VERSION' ? ` asking ${e.total} plugin(s) for their versions` : '';
      const text = `${e.op === 'ROLLBACK' ? 'ADD failed, undoing' : e.op} ${e.network}:${step}`;
      if (o.verbose || !tty) process.stderr.write(`cnikit: +${Math.round(performance.now())}ms ${text}\n`);
      else {
        process.stderr.write(`\r\x1b[K${text}`);
        shown = true;
      }
    },
    done: () => {
      if (shown) process.stderr.write('\r\x1b[K');
      shown = false;
    },
  };
}

/**
 * How a netns test is declared: `netnsTest(title, impl)` (concurrent) or `netnsSerial(title,
 * impl)` (serial) run the test when the process is root, and otherwise declare it with
 * `test.skip` and the reason appended to its title, so a non-root `npx ava` lists every such test
 * as skipped, with why, instead of failing or reporting "ok" for a test that did nothing
 * (serialport's `makeTestFeature`, vishvananda/netlink's `skipUnlessRoot`).
 *
 * A test that needs more than root (a reference plugin on disk, Go, a built executable) adds
 * each requirement with `.needs({ met, reason })`; the reasons of every unmet one go in the title.
 * Conditions that can only be known while the test runs (the kernel refusing a feature) stay
 * inside the test.
 *
 * This is its own module, not part of sandbox.ts, because importing ava outside the ava CLI
 * exits the process, and bench/ uses the sandbox without ava.
 */
import test, { type ImplementationFn } from 'ava';
import { isRoot } from './sandbox.ts';

/** Something a test needs from the machine, and the reason shown when it is missing. */
export interface Need {
  met: boolean;
  reason: string;
}

/** Root, which every netns test needs: sandboxes are network namespaces. */
export const ROOT_NEED: Need = { met: isRoot, reason: 'needs root to create network namespaces' };

/** A test declaration gated on a set of needs. */
export interface GatedTest {
  (title: string, impl: ImplementationFn<[]>): void;
  /** Returns the same declaration with `more` needs added. */
  needs(...more: Need[]): GatedTest;
}

type Declare = (title: string, impl: ImplementationFn<[]>) => void;

function gated(declare: Declare, needs: readonly Need[]): GatedTest {
  const fn = (title: string, impl: ImplementationFn<[]>): void => {
    const missing = needs.filter((n) => !n.met).map((n) => n.reason);
    if (missing.length === 0) declare(title, impl);
    else test.skip(`${title} (skipped: ${missing.join('; ')})`, impl);
  };
  return Object.assign(fn, { needs: (...more: Need[]) => gated(declare, [...needs, ...more]) });
}

/** Declares a concurrent test that needs root; skipped with the reason in its title otherwise. */
export const netnsTest: GatedTest = gated((title, impl) => test(title, impl), [ROOT_NEED]);

/** Declares a serial test that needs root; skipped with the reason in its title otherwise. */
export const netnsSerial: GatedTest = gated((title, impl) => test.serial(title, impl), [ROOT_NEED]);

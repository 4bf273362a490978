/**
 * Where the cnikit command keeps what it makes when nothing else is configured (runtime/defaults.ts
 * has libcni's own directories). Constants only, so help texts can show them without loading
 * the modules that use them.
 */

/** `cnikit run`'s container records (CONTRACTS.md; `--state-dir`, CNIKIT_STATE_DIR). */
export const DEFAULT_STATE_DIR = '/run/cnikit/containers';

/** Where `ip netns` keeps named namespaces, and `run` pins its own (`--netns-dir`). */
export const DEFAULT_NETNS_DIR = '/run/netns';

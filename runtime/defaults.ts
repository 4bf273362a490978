/**
 * Where libcni and cnitool look when nothing else is configured: the network config directory
 * (NETCONFPATH) and the cache directory. Constants only, so that a command can show them in its
 * help without loading the config schemas.
 */

/** Where cnitool and libcni look for network configs when NETCONFPATH is unset. */
export const DEFAULT_NETCONF_PATH = '/etc/cni/net.d';

/** Where libcni keeps its cache (`results/` lives under it) when nothing else is configured. */
export const DEFAULT_CACHE_DIR = '/var/lib/cni';

/**
 * The plugins the engine serves, by CNI type: the same handlers the executables load
 * (plugins/<type>/main.ts), loaded once when the engine starts so that every call is warm.
 * bridge's IPAM delegate host-local runs in-process as in a fresh bridge process: when CNI_PATH
 * resolves it to our own executable beside the one the call came in through (CmdArgs.self).
 *
 * Every plugin of the manifest must be here (engine/plugins.test.ts checks it).
 */
import type { Plugin } from '../pkg/cni/skel.ts';

export const PLUGIN_LOADERS: Record<string, () => Promise<Plugin>> = {
  bridge: async () => {
    const [{ makeBridgePlugin }, { hostLocalPlugin }] = await Promise.all([import('../plugins/bridge/plugin.ts'), import('../plugins/host-local/plugin.ts')]);
    return makeBridgePlugin({ ipam: { 'host-local': hostLocalPlugin } });
  },
  'host-local': async () => (await import('../plugins/host-local/plugin.ts')).hostLocalPlugin,
  portmap: async () => (await import('../plugins/portmap/portmap.ts')).portmapPlugin,
  firewall: async () => (await import('../plugins/firewall/plugin.ts')).firewallPlugin,
  dnsname: async () => (await import('../plugins/dnsname/plugin.ts')).dnsnamePlugin,
  bandwidth: async () => (await import('../plugins/bandwidth/plugin.ts')).bandwidthPlugin,
  tuning: async () => (await import('../plugins/tuning/plugin.ts')).tuningPlugin,
  loopback: async () => (await import('../plugins/loopback/plugin.ts')).loopbackPlugin,
};

/** Loads every plugin; returns them by type. */
export async function loadPlugins(): Promise<Map<string, Plugin>> {
  const entries = await Promise.all(Object.entries(PLUGIN_LOADERS).map(async ([type, load]) => [type, await load()] as const));
  return new Map(entries);
}

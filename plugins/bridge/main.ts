// dist/bin/bridge. host-local runs in-process when CNI_PATH resolves it to our own executable.
import { executableMain } from '../core/cni/entry.ts';

executableMain('cnikit bridge: a veth pair per container on a host bridge', async () => {
  const [{ bridgePlugin }, { hostLocalPlugin }, { registerInProcess }] = await Promise.all([
    import('./plugin.ts'), import('../host-local/plugin.ts'), import('../core/cni/invoke.ts'),
  ]);
  registerInProcess('host-local', hostLocalPlugin);
  return bridgePlugin;
});

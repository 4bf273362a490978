// Role: main (executables.ts): creates the container's interface.
// dist/bin/bridge. host-local runs in-process when CNI_PATH resolves it to our own executable.
import { executableMain } from '../../pkg/cni/entry.ts';
import { aboutOf } from '../../executables.ts';

executableMain(aboutOf('bridge'), async () => {
  const [{ bridgePlugin }, { hostLocalPlugin }, { registerInProcess }] = await Promise.all([
    import('./plugin.ts'), import('../host-local/plugin.ts'), import('../../pkg/cni/invoke.ts'),
  ]);
  registerInProcess('host-local', hostLocalPlugin);
  return bridgePlugin;
});

// Role: main (executables.ts): creates the container's interface.
// dist/bin/bridge. host-local runs in-process when CNI_PATH resolves it to our own executable.
import { executableMain } from '../../pkg/cni/entry.ts';
import { aboutOf } from '../../executables.ts';

executableMain(aboutOf('bridge'), async () => {
  const [{ makeBridgePlugin }, { hostLocalPlugin }] = await Promise.all([import('./plugin.ts'), import('../host-local/plugin.ts')]);
  return makeBridgePlugin({ ipam: { 'host-local': hostLocalPlugin } });
});

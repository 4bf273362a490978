// Role: main (executables.ts): creates the container's interface.
// dist/bin/bridge. host-local runs in-process when CNI_PATH resolves it to our own executable;
// the call's netlink sockets are a fresh process's blocking ones (processKernel).
import { executableMain } from '../../pkg/cni/entry.ts';
import { aboutOf } from '../../executables.ts';

executableMain(aboutOf('bridge'), async () => {
  const [{ makeBridgePlugin }, { hostLocalPlugin }] = await Promise.all([import('./plugin.ts'), import('../host-local/plugin.ts')]);
  return makeBridgePlugin({ ipam: { 'host-local': hostLocalPlugin } });
}, async () => (await import('../../pkg/open-kernel.ts')).processKernel());

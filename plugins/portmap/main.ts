// Role: meta (executables.ts): chained after a main plugin, adjusts what it made; needs prevResult.
// dist/bin/portmap. The handlers (and nftables layer) load only for commands that need them.
import { executableMain } from '../../pkg/cni/entry.ts';
import { aboutOf } from '../../executables.ts';

executableMain(aboutOf('portmap'), async () => {
  const { portmapPlugin } = await import('./portmap.ts');
  return portmapPlugin;
}, async () => (await import('../../pkg/open-kernel.ts')).processKernel());

// Role: meta (executables.ts): chained after a main plugin, adjusts what it made; needs prevResult.
// dist/bin/firewall. The handlers (and the nftables layer) load only for commands that need them.
import { executableMain } from '../../pkg/cni/entry.ts';
import { aboutOf } from '../../executables.ts';

executableMain(aboutOf('firewall'), async () => {
  const { firewallPlugin } = await import('./plugin.ts');
  return firewallPlugin;
}, async () => (await import('../../pkg/open-kernel.ts')).processKernel());

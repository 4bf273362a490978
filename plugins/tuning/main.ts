// Role: meta (executables.ts): chained after a main plugin, adjusts what it made; needs prevResult.
// dist/bin/tuning. The handlers load only for the commands that need them; the call's netlink
// sockets and sysctls are a fresh process's (processKernel).
import { executableMain } from '../../pkg/cni/entry.ts';
import { aboutOf } from '../../executables.ts';

executableMain(aboutOf('tuning'), async () => (await import('./plugin.ts')).tuningPlugin,
  async () => (await import('../../pkg/open-kernel.ts')).processKernel());

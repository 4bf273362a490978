// Role: meta (executables.ts): chained after a main plugin, adjusts what it made; needs prevResult.
// dist/bin/bandwidth. The handlers (and the tc layer) load only for the commands that need them;
// the call's netlink sockets are a fresh process's blocking ones (processKernel).
import { executableMain } from '../../pkg/cni/entry.ts';
import { aboutOf } from '../../executables.ts';

executableMain(aboutOf('bandwidth'), async () => (await import('./plugin.ts')).bandwidthPlugin,
  async () => (await import('../../pkg/open-kernel.ts')).processKernel());

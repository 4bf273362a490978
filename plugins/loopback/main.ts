// Role: main (executables.ts): works on the container's own interface (lo), as the reference's plugins/main/loopback.
// dist/bin/loopback. The handlers load only for the commands that need them; the call's netlink
// sockets are a fresh process's blocking ones (processKernel).
import { executableMain } from '../../pkg/cni/entry.ts';
import { aboutOf } from '../../executables.ts';

executableMain(aboutOf('loopback'), async () => (await import('./plugin.ts')).loopbackPlugin,
  async () => (await import('../../pkg/open-kernel.ts')).processKernel());

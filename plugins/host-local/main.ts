// dist/bin/host-local: the whole executable. Handlers live in plugin.ts (bridge runs them in-process).
import { executableMain } from '../core/cni/entry.ts';

executableMain('cnikit host-local: IP address leases from configured ranges', async () => (await import('./plugin.ts')).hostLocalPlugin);

// Role: ipam (executables.ts): hands out addresses to a main plugin, which delegates to it.
// dist/bin/host-local: the whole executable. Handlers live in plugin.ts (bridge runs them in-process).
import { executableMain } from '../../pkg/cni/entry.ts';
import { aboutOf } from '../../executables.ts';

executableMain(aboutOf('host-local'), async () => (await import('./plugin.ts')).hostLocalPlugin);

// dist/bin/host-local: the whole executable. Handlers live in plugin.ts (bridge runs them in-process).
import { pluginMain } from '../core/cni/skel.ts';
import { hostLocalPlugin } from './plugin.ts';

pluginMain(hostLocalPlugin);

// dist/bin/portmap.
import { pluginMain } from '../core/cni/skel.ts';
import { portmapPlugin } from './portmap.ts';

pluginMain(portmapPlugin);

// dist/bin/bridge. host-local runs in-process when CNI_PATH resolves it to our own executable.
import { registerInProcess } from '../core/cni/invoke.ts';
import { pluginMain } from '../core/cni/skel.ts';
import { hostLocalPlugin } from '../host-local/plugin.ts';
import { bridgePlugin } from './plugin.ts';

registerInProcess('host-local', hostLocalPlugin);
pluginMain(bridgePlugin);

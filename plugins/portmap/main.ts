// dist/bin/portmap. The handlers (and nftables layer) load only for commands that need them.
import { executableMain } from '../core/cni/entry.ts';

executableMain('cnikit portmap: publish container ports with nftables (DNAT, hairpin and localhost SNAT)', async () => {
  const { portmapPlugin } = await import('./portmap.ts');
  return portmapPlugin;
});

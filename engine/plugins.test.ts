// The engine serves every plugin of the manifest, with the handlers its executable runs.
import test from 'ava';
import { PLUGINS } from '../executables.ts';
import { PLUGIN_LOADERS, loadPlugins } from './plugins.ts';

test('every plugin of the manifest has a loader in the engine', (t) => {
  t.deepEqual(Object.keys(PLUGIN_LOADERS).sort(), PLUGINS.map((p) => p.type).sort());
});

test('the loaders give plugins with the CNI handlers', async (t) => {
  for (const [type, p] of await loadPlugins()) {
    t.is(typeof p.add, 'function', type);
    t.is(typeof p.del, 'function', type);
    t.is(typeof p.check, 'function', type);
    t.regex(p.about, new RegExp(`^cnikit ${type}: `));
  }
});

import test from 'ava';
import { sameView } from './server.ts';

test('a caller in our mount namespace sees our files; a relative CNI_NETNS is never ours', (t) => {
  t.true(sameView(process.pid, '/run/netns/x'));
  t.true(sameView(process.pid, undefined));
  t.false(sameView(process.pid, 'netns/x'));
});

test('a caller in another mount namespace is ours only where CNI_NETNS is the same file', (t) => {
  t.true(sameView(process.pid, '/proc/self/ns/net', 'mnt:[1]'));
  t.true(sameView(process.pid, '/nonexistent/netns', 'mnt:[1]'), 'missing in both views');
  t.true(sameView(process.pid, undefined, 'mnt:[1]'));
});

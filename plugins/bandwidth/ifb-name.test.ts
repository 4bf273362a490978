import test from 'ava';
import { fnv1a64, ifbName } from './ifb-name.ts';

test('fnv1a64 gives the published test vectors', (t) => {
  t.is(fnv1a64(''), 0xcbf29ce484222325n);
  t.is(fnv1a64('a'), 0xaf63dc4c8601ec8cn);
  t.is(fnv1a64('foobar'), 0x85944171f73967e8n);
});

test('ifbName: bwp and 12 hex digits (15 characters), stable, and different per network, container and interface', (t) => {
  const n = ifbName('bwnet', 'ctr1', 'eth0');
  t.regex(n, /^bwp[0-9a-f]{12}$/);
  t.is(n, ifbName('bwnet', 'ctr1', 'eth0'));
  const others = [ifbName('bwnet', 'ctr1', 'eth1'), ifbName('bwnet2', 'ctr1', 'eth0'), ifbName('bwnet', 'ctr2', 'eth0'), ifbName('bwnetc', 'tr1', 'eth0')];
  t.is(new Set([n, ...others]).size, 5);
});

/** The errno helpers (the addon itself is exercised by netns-tests). */
import test from 'ava';
import { CniCode, CniError, wrap } from './cni/errors.ts';
import { hasCode } from './native.ts';

test('hasCode finds an errno code anywhere in the cause chain, not in message text', (t) => {
  const busy = Object.assign(new Error('spawnSync /opt/cni/bin/bridge ETXTBSY'), { code: 'ETXTBSY' });
  t.true(hasCode(busy, 'ETXTBSY'));
  t.true(hasCode(wrap(new CniError(CniCode.Internal, 'failed to run plugin', undefined, { cause: busy }), 'ADD'), 'ETXTBSY'));
  t.true(hasCode(busy, 'EPERM', 'ETXTBSY'));
  t.false(hasCode(busy, 'EPERM'));
  t.false(hasCode(new CniError(CniCode.Internal, 'ETXTBSY'), 'ETXTBSY'));
  t.false(hasCode(undefined, 'ETXTBSY'));
  t.false(hasCode({ code: 'ETXTBSY' }, 'ETXTBSY'), 'only errors');
});

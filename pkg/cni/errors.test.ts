/** errorText, and the typed reason CniError carries beside its code. */
import test from 'ava';
import { CniCode, CniError, errorText, wrap } from './errors.ts';

test('errorText: a CniError as "msg: details", anything else with its cause chain', (t) => {
  t.is(errorText(new CniError(CniCode.InvalidConfig, 'invalid network config', 'subnet: missing')), 'invalid network config: subnet: missing');
  t.is(errorText(new CniError(CniCode.Internal, 'only a message')), 'only a message');
  t.is(errorText(new Error('outer', { cause: new Error('inner') })), 'outer: inner');
  t.is(errorText('a string'), 'a string');
});

test('a reason is set where the error is thrown and kept by wrap', (t) => {
  const e = new CniError(CniCode.UnknownContainer, 'no cached result', undefined, { reason: 'not-cached' });
  t.is(e.reason, 'not-cached');
  t.is(wrap(e, 'failed to check').reason, 'not-cached');
  t.is(new CniError(CniCode.Internal, 'x').reason, undefined);
  t.deepEqual(e.toJSON('1.0.0'), { cniVersion: '1.0.0', code: 3, msg: 'no cached result' }, 'the reason is not part of the spec error object');
});

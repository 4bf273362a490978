/**
 * Spec version strings (docs/cni-notes.md §1.6) and the error helpers every boundary uses: versions
 * compare numerically per part, "" is 0.1.0; wrap/describe keep codes and cause chains.
 */
import test from 'ava';
import { CniCode, CniError, describe, invalidConfig, wrap } from './errors.ts';
import { LATEST_VERSION, SUPPORTED_VERSIONS, atLeast, compareVersions, isSupported, parseVersion } from './version.ts';

test('supported versions are the seven of the spec, latest 1.1.0', (t) => {
  t.deepEqual([...SUPPORTED_VERSIONS], ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0']);
  t.is(LATEST_VERSION, '1.1.0');
  t.true(isSupported('0.3.1'));
  for (const v of ['', '1.2.0', '0.3', 'v1.0.0', '1.0.0 ']) t.false(isSupported(v), v);
});

for (const [a, b, sign] of [
  ['0.4.0', '1.0.0', -1], ['1.0.0', '1.0.0', 0], ['1.1.0', '1.0.0', 1],
  ['0.10.0', '0.9.0', 1], ['1.0.10', '1.0.9', 1], ['', '0.1.0', 0], ['', '0.2.0', -1], ['2.0.0', '1.99.99', 1],
] as const) {
  test(`compareVersions("${a}", "${b}") is ${sign < 0 ? 'below' : sign > 0 ? 'above' : 'equal'}`, (t) => {
    t.is(Math.sign(compareVersions(a, b)), sign);
    t.is(Math.sign(compareVersions(b, a)), -sign || 0);
    t.is(atLeast(a, b), sign >= 0);
  });
}

for (const v of ['1.0', '1.0.0.0', 'a.b.c', '1.0.0-rc1', ' 1.0.0', '1..0']) {
  test(`version "${v}" does not parse (code 6)`, (t) => {
    const err = t.throws(() => parseVersion(v), { instanceOf: CniError });
    t.is(err?.code as number | undefined, CniCode.DecodingFailure);
  });
}

test('CniError prints the spec error object, without empty details', (t) => {
  t.deepEqual(new CniError(CniCode.InvalidConfig, 'invalid network config', 'bad subnet').toJSON('1.0.0'),
    { cniVersion: '1.0.0', code: 7, msg: 'invalid network config', details: 'bad subnet' });
  t.deepEqual(new CniError(CniCode.TryAgainLater, 'busy', '').toJSON('0.4.0'), { cniVersion: '0.4.0', code: 11, msg: 'busy' });
  t.like(invalidConfig('x'), { code: 7, message: 'invalid network config', details: 'x' });
});

test('wrap keeps a CniError code and puts the context in front', (t) => {
  const inner = new CniError(CniCode.TryAgainLater, 'pool busy', 'lock held');
  const e = wrap(inner, 'failed to allocate for "ctr1"');
  t.is(e.code, CniCode.TryAgainLater);
  t.is(e.message, 'failed to allocate for "ctr1"');
  t.is(e.details, 'pool busy: lock held');
  t.is(e.cause, inner);
});

test('wrap turns anything else into 999 with the cause chain (and extack) in details', (t) => {
  const sys = Object.assign(new Error('RTM_NEWLINK veth veth0: EEXIST'), { code: 'EEXIST', extack: 'Device exists' });
  const e = wrap(new Error('create veth', { cause: sys }), 'failed to set up "eth0"');
  t.is(e.code, CniCode.Internal);
  t.is(e.details, 'create veth: RTM_NEWLINK veth veth0: EEXIST (Device exists)');
  t.is(wrap('a string', 'ctx').details, 'a string');
});

test('describe renders a bounded cause chain', (t) => {
  let err: Error = new Error('e0');
  for (let i = 1; i < 20; i++) err = new Error(`e${i}`, { cause: err });
  t.is(describe(err).split(': ').length, 8);
  t.is(describe(new CniError(CniCode.InvalidEnv, 'bad env', 'CNI_IFNAME')), 'bad env: CNI_IFNAME');
  t.is(describe(undefined), '');
});

/** loopback's config and address rule (no root): what ADD accepts, what it refuses, and Go's IsLoopback. */
import test from 'ava';
import { CniError } from '../../pkg/cni/errors.ts';
import { parseCidr } from '../../pkg/ip/cidr.ts';
import type { RawConf } from '../../pkg/cni/skel.ts';
import { parseLoopbackConf } from './config.ts';
import { isLoopbackAddress } from './plugin.ts';

const conf = (o: Record<string, unknown> = {}) => ({ cniVersion: '1.0.0', name: 'cni-loopback', type: 'loopback', ...o }) as RawConf;

test('no plugin keys: anything else is ignored; prevResult is read as Go reads it', (t) => {
  t.deepEqual(parseLoopbackConf(conf({ anything: 1 })), { cniVersion: '1.0.0', prevResult: undefined });
  t.deepEqual(parseLoopbackConf(conf({ prevResult: { CNIVersion: '1.0.0', IPs: [{ Address: '10.0.0.2/24' }] } })).prevResult,
    { cniVersion: '1.0.0', ips: [{ address: '10.0.0.2/24' }] });
});

const bad: [string, Record<string, unknown>, string][] = [
  ['prevResult not an object', { prevResult: 42 }, 'prevResult: expected record, got number'],
  ['prevResult with a bad ips', { prevResult: { ips: 'x' } }, 'prevResult.ips: expected array, got string'],
  ['dns not an object', { dns: 5 }, 'dns: expected object, got number'],
];
for (const [what, o, details] of bad) {
  test(`rejected with code 7: ${what}`, (t) => {
    const err = t.throws(() => parseLoopbackConf(conf(o)), { instanceOf: CniError }) as CniError;
    t.is(err.code as number, 7);
    t.is(err.details, details);
  });
}

test('loopback addresses are Go\'s IsLoopback: 127/8, ::1 and IPv4-mapped 127/8', (t) => {
  for (const a of ['127.0.0.1/8', '127.255.0.9/32', '::1/128', '::ffff:127.0.0.1/128']) t.true(isLoopbackAddress(parseCidr(a)), a);
  for (const a of ['10.9.9.9/8', '128.0.0.1/8', '::2/128', 'fe80::1/64', '::ffff:10.0.0.1/128']) t.false(isLoopbackAddress(parseCidr(a)), a);
});

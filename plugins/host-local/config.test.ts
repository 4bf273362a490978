// host-local config checks in table form: defaults, set ordering (runtimeConfig.ipRanges, legacy
// top-level range, ranges), every §4.1 rejection with its message, requested IPs, resolv.conf.
import test, { type ExecutionContext } from 'ava';
import { CniError } from '../../pkg/cni/errors.ts';
import { formatIP } from '../../pkg/ip/cidr.ts';
import { formatRangeSet, loadIpamConf, parseResolvConf, requestedIPs } from './config.ts';

const conf = (ipam: unknown, extra: Record<string, unknown> = {}) => ({ cniVersion: '1.0.0', name: 'net', ipam, ...extra });

const rejects = test.macro({
  exec(t: ExecutionContext, input: Record<string, unknown>, details: RegExp, code: number = 7) {
    const err = t.throws(() => loadIpamConf(input as never), { instanceOf: CniError });
    t.is(err.code as number, code);
    t.regex(`${err.message}: ${err.details ?? ''}`, details);
  },
  title: (name = '') => `rejects ${name}`,
});

test('defaults: gateway .1, range .1 to broadcast-1 (v4) or last address (v6), dataDir', (t) => {
  const c = loadIpamConf(conf({ type: 'host-local', ranges: [[{ subnet: '10.77.0.0/24' }], [{ subnet: 'fd77::/64' }]] }));
  t.deepEqual(c.ranges.map(formatRangeSet), ['10.77.0.1-10.77.0.254', 'fd77::1-fd77::ffff:ffff:ffff:ffff']);
  t.is(formatIP(c.ranges[0]![0]!.gateway), '10.77.0.1');
  t.is(c.dataDir, '/var/lib/cni/networks');
  t.is(c.resolvConf, undefined);
  t.deepEqual(c.routes, []);
});

test('runtimeConfig.ipRanges come first, then the top-level range, then ranges', (t) => {
  const c = loadIpamConf(conf(
    { subnet: '10.1.0.0/24', rangeStart: '10.1.0.10', rangeEnd: '10.1.0.20', gateway: '10.1.0.254', ranges: [[{ subnet: '10.2.0.0/24' }]] },
    { runtimeConfig: { ipRanges: [[{ subnet: '10.3.0.0/24' }]] } },
  ));
  t.deepEqual(c.ranges.map(formatRangeSet), ['10.3.0.1-10.3.0.254', '10.1.0.10-10.1.0.20', '10.2.0.1-10.2.0.254']);
  t.is(formatIP(c.ranges[1]![0]!.gateway), '10.1.0.254');
});

test('routes are copied verbatim, dataDir and resolvConf taken', (t) => {
  const routes = [{ dst: '0.0.0.0/0' }, { dst: '192.168.50.0/24', gw: '10.77.0.254', priority: 5 }];
  const c = loadIpamConf(conf({ ranges: [[{ subnet: '10.77.0.0/24' }]], routes, dataDir: '/tmp/x', resolvConf: '/tmp/r' }));
  t.deepEqual(c.routes, routes);
  t.is(c.dataDir, '/tmp/x');
  t.is(c.resolvConf, '/tmp/r');
});

test('two ranges of one subnet that do not overlap are fine', (t) => {
  const c = loadIpamConf(conf({ ranges: [[
    { subnet: '10.0.0.0/24', rangeStart: '10.0.0.10', rangeEnd: '10.0.0.19' },
    { subnet: '10.0.0.0/24', rangeStart: '10.0.0.20', rangeEnd: '10.0.0.29' },
  ]] }));
  t.is(formatRangeSet(c.ranges[0]!), '10.0.0.10-10.0.0.19,10.0.0.20-10.0.0.29');
});

test('missing ipam', rejects, { cniVersion: '1.0.0', name: 'n' }, /IPAM config missing 'ipam' key/);
test('no ranges', rejects, conf({ type: 'host-local' }), /no IP ranges specified/);
test('an empty range set', rejects, conf({ ranges: [[]] }), /invalid range set 0: empty range set/);
test('a subnet that is not a CIDR', rejects, conf({ ranges: [[{ subnet: '10.0.0.0' }]] }), /range set 0: subnet "10\.0\.0\.0" is not a CIDR/);
test('a subnet of the wrong type', rejects, conf({ ranges: [[{ subnet: 24 }]] }), /ipam\.ranges\[0\]\[0\]\.subnet: expected string/);
test('a /31', rejects, conf({ ranges: [[{ subnet: '10.0.0.0/31' }]] }), /invalid range set 0: Network 10\.0\.0\.0\/31 too small to allocate from/);
test('a /32', rejects, conf({ ranges: [[{ subnet: '10.0.0.0/32' }]] }), /Network 10\.0\.0\.0\/32 too small/);
test('a /127', rejects, conf({ ranges: [[{ subnet: 'fd00::/127' }]] }), /Network fd00::\/127 too small/);
test('host bits set', rejects, conf({ ranges: [[{ subnet: '10.0.0.5/24' }]] }), /Network 10\.0\.0\.5\/24 has host bits set\. For a subnet mask of length 24 the network address is 10\.0\.0\.0/);
test('rangeStart outside the subnet', rejects, conf({ ranges: [[{ subnet: '10.0.0.0/24', rangeStart: '10.0.1.5' }]] }), /RangeStart 10\.0\.1\.5 not in network 10\.0\.0\.0\/24/);
test('rangeEnd outside the subnet', rejects, conf({ ranges: [[{ subnet: '10.0.0.0/24', rangeEnd: '10.0.1.5' }]] }), /RangeEnd 10\.0\.1\.5 not in network 10\.0\.0\.0\/24/);
test('rangeStart after rangeEnd', rejects, conf({ ranges: [[{ subnet: '10.0.0.0/24', rangeStart: '10.0.0.50', rangeEnd: '10.0.0.40' }]] }), /RangeStart 10\.0\.0\.50 is after RangeEnd 10\.0\.0\.40/);
test('a bad gateway', rejects, conf({ ranges: [[{ subnet: '10.0.0.0/24', gateway: 'x' }]] }), /gateway "x" is not an IP address/);
test('a gateway of the other family', rejects, conf({ ranges: [[{ subnet: '10.0.0.0/24', gateway: 'fd00::1' }]] }), /gateway fd00::1 is not in the address family of 10\.0\.0\.0\/24/);
test('mixed families in a set', rejects, conf({ ranges: [[{ subnet: '10.0.0.0/24' }, { subnet: 'fd00::/64' }]] }), /invalid range set 0: mixed address families \(10\.0\.0\.0\/24 and fd00::\/64\)/);
for (const dataDir of ['rel', './x', '../y']) {
  test(`a relative dataDir "${dataDir}"`, rejects, conf({ ranges: [[{ subnet: '10.0.0.0/24' }]], dataDir }), new RegExp(`ipam\\.dataDir: "${dataDir.replace(/\./g, '\\.')}" must be an absolute path`));
}
test('overlapping ranges in a set', rejects, conf({ ranges: [[{ subnet: '10.0.0.0/24' }, { subnet: '10.0.0.0/25' }]] }), /invalid range set 0: subnets 10\.0\.0\.1-10\.0\.0\.254 \(10\.0\.0\.0\/24\) and 10\.0\.0\.1-10\.0\.0\.126 \(10\.0\.0\.0\/25\) overlap/);
test('overlapping range sets', rejects, conf({ ranges: [[{ subnet: '10.0.0.0/24' }], [{ subnet: '10.0.0.128/25' }]] }), /range set 0 overlaps with 1: 10\.0\.0\.1-10\.0\.0\.254 \(10\.0\.0\.0\/24\) and 10\.0\.0\.129-10\.0\.0\.254/);
test('a runtime range overlapping the config', rejects, conf({ ranges: [[{ subnet: '10.0.0.0/24' }]] }, { runtimeConfig: { ipRanges: [[{ subnet: '10.0.0.0/16' }]] } }), /range set 0 overlaps with 1/);
test('two sets of one family before 0.3.0', rejects, { ...conf({ ranges: [[{ subnet: '10.0.0.0/24' }], [{ subnet: '10.1.0.0/24' }]] }), cniVersion: '0.2.0' }, /CNI version 0\.2\.0 does not support more than 1 address per family/);
test('a top-level rangeStart without subnet', rejects, conf({ rangeStart: '10.0.0.5', ranges: [[{ subnet: '10.0.0.0/24' }]] }), /need a top-level subnet/);
test('a route without a CIDR dst', rejects, conf({ ranges: [[{ subnet: '10.0.0.0/24' }]], routes: [{ dst: 'default' }] }), /ipam\.routes\[0\]\.dst: "default" is not a CIDR/);
test('a bad network name', rejects, { cniVersion: '1.0.0', name: '../etc', ipam: { ranges: [[{ subnet: '10.0.0.0/24' }]] } }, /invalid network name/);

test('requested IPs: CNI_ARGS IP= (comma list), args.cni.ips, runtimeConfig.ips, prefixes ignored, duplicates dropped', (t) => {
  const c = conf({}, { args: { cni: { ips: ['10.0.0.7', 'fd00::7/64'] } }, runtimeConfig: { ips: ['10.0.0.8/24', '10.0.0.5'] } });
  t.deepEqual(requestedIPs(c as never, 'IP=10.0.0.5, 10.0.0.6').map(formatIP), ['10.0.0.5', '10.0.0.6', '10.0.0.7', 'fd00::7', '10.0.0.8']);
  t.deepEqual(requestedIPs(c as never, 'IgnoreUnknown=1;FOO=bar').map(formatIP), ['10.0.0.7', 'fd00::7', '10.0.0.8', '10.0.0.5']);
});

test('a bad requested IP is an error with the code of its source', (t) => {
  t.is(t.throws(() => requestedIPs(conf({}) as never, 'IP=10.0.0.300'), { instanceOf: CniError }).code, 4);
  t.is(t.throws(() => requestedIPs(conf({}, { runtimeConfig: { ips: ['nope'] } }) as never, ''), { instanceOf: CniError }).code, 7);
  t.is(t.throws(() => requestedIPs(conf({}) as never, 'FOO=1'), { instanceOf: CniError }).code, 4);
});

test('resolv.conf lines become dns, comments and junk skipped', (t) => {
  const dns = parseResolvConf('# c\n; c\nnameserver 192.0.2.53\nnameserver fd00::53\ndomain example.org\nsearch a.example b.example\noptions ndots:2 edns0\nbogus\n');
  t.deepEqual(dns, { nameservers: ['192.0.2.53', 'fd00::53'], domain: 'example.org', search: ['a.example', 'b.example'], options: ['ndots:2', 'edns0'] });
  t.deepEqual(parseResolvConf(''), {});
});

/**
 * Result parsing and formatting across spec versions (docs/cni-notes.md §1.6, §1.7): every version is
 * read into the internal 1.1.0 shape and written back in the shape of the version asked for.
 * The fixtures are what the reference plugins print for the same attachment.
 */
import test, { type ExecutionContext } from 'ava';
import { CniError } from './errors.ts';
import { type Result, formatResult, parsePrevResult, parseResult } from './result.ts';

const full: Result = {
  cniVersion: '1.1.0',
  interfaces: [
    { name: 'cni0', mac: '6e:1f:0a:22:33:44', mtu: 1500 },
    { name: 'veth5c2e91aa', mac: '9a:01:02:03:04:05' },
    { name: 'eth0', mac: '0a:58:0a:4d:00:05', sandbox: '/run/netns/ctr1', mtu: 1400, socketPath: '/run/vhost.sock', pciID: '0000:00:1f.6' },
  ],
  ips: [
    { address: '10.77.0.5/24', gateway: '10.77.0.1', interface: 2 },
    { address: 'fd77::5/64', gateway: 'fd77::1', interface: 2 },
  ],
  routes: [
    { dst: '0.0.0.0/0', gw: '10.77.0.1', mtu: 1400, advmss: 1360, priority: 100, table: 1000, scope: 0 },
    { dst: '::/0', gw: 'fd77::1' },
    { dst: '192.0.2.0/24' },
  ],
  dns: { nameservers: ['10.77.0.1'], domain: 'app.internal', search: ['app.internal'], options: ['ndots:2'] },
};

// The same result as each version prints it.
const v110 = { ...full };
const v100 = {
  cniVersion: '1.0.0',
  interfaces: [
    { name: 'cni0', mac: '6e:1f:0a:22:33:44' },
    { name: 'veth5c2e91aa', mac: '9a:01:02:03:04:05' },
    { name: 'eth0', mac: '0a:58:0a:4d:00:05', sandbox: '/run/netns/ctr1' },
  ],
  ips: [
    { address: '10.77.0.5/24', gateway: '10.77.0.1', interface: 2 },
    { address: 'fd77::5/64', gateway: 'fd77::1', interface: 2 },
  ],
  routes: [{ dst: '0.0.0.0/0', gw: '10.77.0.1' }, { dst: '::/0', gw: 'fd77::1' }, { dst: '192.0.2.0/24' }],
  dns: full.dns,
};
const v04 = (v: string) => ({
  ...v100,
  cniVersion: v,
  ips: [
    { version: '4', address: '10.77.0.5/24', gateway: '10.77.0.1', interface: 2 },
    { version: '6', address: 'fd77::5/64', gateway: 'fd77::1', interface: 2 },
  ],
});
const v02 = (v: string) => ({
  cniVersion: v,
  ip4: { ip: '10.77.0.5/24', gateway: '10.77.0.1', routes: [{ dst: '0.0.0.0/0', gw: '10.77.0.1' }, { dst: '192.0.2.0/24' }] },
  ip6: { ip: 'fd77::5/64', gateway: 'fd77::1', routes: [{ dst: '::/0', gw: 'fd77::1' }] },
  dns: full.dns,
});

const expected: Record<string, object> = {
  '0.1.0': v02('0.1.0'), '0.2.0': v02('0.2.0'),
  '0.3.0': v04('0.3.0'), '0.3.1': v04('0.3.1'), '0.4.0': v04('0.4.0'),
  '1.0.0': v100, '1.1.0': v110,
};

for (const [version, shape] of Object.entries(expected)) {
  test(`[${version}] formats the internal result in this version's shape`, (t) => {
    t.deepEqual(formatResult(full, version), shape);
  });

  test(`[${version}] parse then format is the identity`, (t) => {
    const parsed = parseResult(structuredClone(shape), '1.0.0');
    t.is(parsed.cniVersion, version);
    t.deepEqual(formatResult(parsed, version), shape);
    // Through JSON as well: what a plugin prints is what the next one reads.
    t.deepEqual(formatResult(parseResult(JSON.parse(JSON.stringify(shape)), '1.0.0'), version), shape);
  });
}

test('[1.1.0] interface mtu/socketPath/pciID and route mtu/advmss/priority/table/scope survive only in 1.1.0', (t) => {
  const parsed = parseResult(v110, '1.1.0');
  t.deepEqual(parsed.interfaces?.[2], full.interfaces![2]);
  t.deepEqual(parsed.routes?.[0], full.routes![0]);
  for (const v of ['0.3.0', '0.3.1', '0.4.0', '1.0.0']) {
    const out = formatResult(parsed, v) as { interfaces: object[]; routes: object[] };
    for (const i of out.interfaces) t.deepEqual(Object.keys(i).filter((k) => !['name', 'mac', 'sandbox'].includes(k)), [], v);
    for (const r of out.routes) t.deepEqual(Object.keys(r).filter((k) => !['dst', 'gw'].includes(k)), [], v);
  }
});

test('route scope 0 and ip interface 0 are kept (zero is a value, not absence)', (t) => {
  const r = parseResult({ cniVersion: '1.1.0', ips: [{ address: '10.0.0.2/24', interface: 0 }], routes: [{ dst: '10.1.0.0/16', scope: 0, table: 0 }] }, '1.1.0');
  t.deepEqual(formatResult(r, '1.1.0'), { cniVersion: '1.1.0', ips: [{ address: '10.0.0.2/24', interface: 0 }], routes: [{ dst: '10.1.0.0/16', scope: 0, table: 0 }] });
});

test('0.4.0 -> 1.0.0 drops ips[].version; 1.0.0 -> 0.4.0 adds it from the address family', (t) => {
  const from04 = parseResult(v04('0.4.0'), '0.4.0');
  t.deepEqual(formatResult(from04, '1.0.0'), v100);
  t.deepEqual(formatResult(parseResult(v100, '1.0.0'), '0.4.0'), v04('0.4.0'));
});

test('a 0.2.0 result converts up to 1.0.0 with routes from both families', (t) => {
  t.deepEqual(formatResult(parseResult(v02('0.2.0'), '0.2.0'), '1.0.0'), {
    cniVersion: '1.0.0',
    ips: [{ address: '10.77.0.5/24', gateway: '10.77.0.1' }, { address: 'fd77::5/64', gateway: 'fd77::1' }],
    routes: [{ dst: '0.0.0.0/0', gw: '10.77.0.1' }, { dst: '192.0.2.0/24' }, { dst: '::/0', gw: 'fd77::1' }],
    dns: full.dns,
  });
});

test('conversion to 0.2.0 keeps the first IP of each family and drops routes of a family without one', (t) => {
  const r: Result = {
    cniVersion: '1.0.0',
    ips: [{ address: '10.0.0.2/24' }, { address: '10.0.1.2/24', gateway: '10.0.1.1' }],
    routes: [{ dst: '0.0.0.0/0' }, { dst: '::/0', gw: 'fd00::1' }],
  };
  t.deepEqual(formatResult(r, '0.2.0'), { cniVersion: '0.2.0', ip4: { ip: '10.0.0.2/24', routes: [{ dst: '0.0.0.0/0' }] } });
});

const convertFails = (t: ExecutionContext, r: Result, version: string) => {
  const err = t.throws(() => formatResult(r, version), { instanceOf: CniError });
  t.is(err?.code as number | undefined, 1);
  t.regex(err!.message, new RegExp(`version ${version.replace(/\./g, '\\.')}`));
};
test('conversion to 0.2.0 with no IP fails with code 1', convertFails, { cniVersion: '1.0.0', interfaces: [{ name: 'eth0' }], routes: [{ dst: '0.0.0.0/0' }] }, '0.2.0');
test('conversion to 0.1.0 with an empty ips list fails with code 1', convertFails, { cniVersion: '1.0.0', ips: [] }, '0.1.0');

test('a result without cniVersion is in the config\'s version', (t) => {
  const r04 = parseResult({ ips: [{ version: '4', address: '10.0.0.2/24' }] }, '0.4.0');
  t.is(r04.cniVersion, '0.4.0');
  t.deepEqual(r04.ips, [{ address: '10.0.0.2/24' }]);
  // In a 0.2.0 config the same fields mean nothing: it is read as ip4/ip6.
  const r02 = parseResult({ ip4: { ip: '10.0.0.2/24', gateway: '10.0.0.1' } }, '0.2.0');
  t.is(r02.cniVersion, '0.2.0');
  t.deepEqual(r02.ips, [{ address: '10.0.0.2/24', gateway: '10.0.0.1' }]);
});

test('empty dns, interfaces, ips and routes are omitted', (t) => {
  const r: Result = { cniVersion: '1.0.0', interfaces: [], ips: [], routes: [], dns: {} };
  for (const v of ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0']) t.deepEqual(formatResult(r, v), { cniVersion: v }, v);
  t.deepEqual(formatResult({ cniVersion: '1.0.0', dns: { nameservers: [], search: [], options: [] } }, '1.0.0'), { cniVersion: '1.0.0' });
  t.deepEqual(formatResult({ cniVersion: '1.0.0', ips: [{ address: '10.0.0.2/24' }], dns: {} }, '0.2.0'), { cniVersion: '0.2.0', ip4: { ip: '10.0.0.2/24' } });
});

test('empty lists inside a non-empty dns are omitted (Go omitempty)', (t) => {
  const r: Result = { cniVersion: '1.0.0', dns: { nameservers: ['10.0.0.1'], search: [], options: [] } };
  t.deepEqual(formatResult(r, '1.0.0'), { cniVersion: '1.0.0', dns: { nameservers: ['10.0.0.1'] } });
  t.deepEqual(formatResult(parseResult({ cniVersion: '1.0.0', dns: { domain: '', search: ['x'] } }, '1.0.0'), '1.0.0'), { cniVersion: '1.0.0', dns: { search: ['x'] } });
});

test('formatResult does not share objects with its input', (t) => {
  const r = parseResult(structuredClone(v110), '1.1.0');
  const out = formatResult(r, '1.1.0') as { dns: { nameservers: string[] } };
  out.dns.nameservers.push('192.0.2.1');
  t.deepEqual(r.dns?.nameservers, ['10.77.0.1']);
});

const parseFails = (t: ExecutionContext, raw: unknown, code: number, version = '1.0.0') => {
  const err = t.throws(() => parseResult(raw, version, 'prevResult'), { instanceOf: CniError });
  t.is(err?.code as number | undefined, code);
  t.regex(err!.message, /prevResult/);
};
test('a result of an unknown version fails with code 1', parseFails, { cniVersion: '2.0.0', ips: [] }, 1);
test('ips that is not a list fails with code 6', parseFails, { cniVersion: '1.0.0', ips: {} }, 6);
test('an ip without address fails with code 6', parseFails, { cniVersion: '0.4.0', ips: [{ version: '4' }] }, 6);
test('a 0.2.0 ip4 without ip fails with code 6', parseFails, { cniVersion: '0.2.0', ip4: { gateway: '10.0.0.1' } }, 6);
test('a result that is not an object fails with code 6', parseFails, 'oops', 6);

test('a result is read as Go reads it: keys in any case (the version too), unknown keys ignored', (t) => {
  const r = parseResult({
    CNIVersion: '1.0.0', Interfaces: [{ Name: 'eth0', MAC: '0a:58:0a:4d:00:05', Sandbox: '/run/netns/c' }],
    IPs: [{ Address: '10.77.0.5/24', Gateway: '10.77.0.1', Interface: 0 }], Routes: [{ DST: '0.0.0.0/0', GW: '10.77.0.1' }],
    DNS: { Nameservers: ['10.77.0.1'] }, extra: true,
  }, '0.4.0', 'prevResult');
  t.deepEqual(r, {
    cniVersion: '1.0.0', interfaces: [{ name: 'eth0', mac: '0a:58:0a:4d:00:05', sandbox: '/run/netns/c' }],
    ips: [{ address: '10.77.0.5/24', gateway: '10.77.0.1', interface: 0 }], routes: [{ dst: '0.0.0.0/0', gw: '10.77.0.1' }],
    dns: { nameservers: ['10.77.0.1'] },
  });
  const legacy = parseResult({ CniVersion: '0.2.0', IP4: { IP: '10.1.0.5/16', Gateway: '10.1.0.1', Routes: [{ Dst: '0.0.0.0/0' }] } }, '1.0.0');
  t.deepEqual(legacy, { cniVersion: '0.2.0', ips: [{ address: '10.1.0.5/16', gateway: '10.1.0.1' }], routes: [{ dst: '0.0.0.0/0' }] });
});

test('parsePrevResult: absent or null is none; a bad one is code 7 naming prevResult', (t) => {
  t.is(parsePrevResult(undefined, '1.0.0'), undefined);
  t.is(parsePrevResult(null, '1.0.0'), undefined);
  t.deepEqual(parsePrevResult({ IPs: [{ Address: '10.0.0.2/24' }] }, '1.0.0'), { cniVersion: '1.0.0', ips: [{ address: '10.0.0.2/24' }] });
  for (const [raw, details] of [[42, 'prevResult: expected object, got number'], [{ ips: 'x' }, 'prevResult.ips: expected array, got string'], [{ ips: [{}] }, 'prevResult.ips[0].address: missing (expected string)']] as const) {
    const err = t.throws(() => parsePrevResult(raw, '1.0.0'), { instanceOf: CniError });
    t.is(err?.code as number | undefined, 7);
    t.is((err as CniError).details, details);
  }
  t.is((t.throws(() => parsePrevResult({ cniVersion: '9.0.0' }, '1.0.0')) as CniError).code as number, 1);
});

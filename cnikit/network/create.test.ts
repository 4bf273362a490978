/**
 * createNetwork over a temp NETCONFPATH and a fake host: what it picks and what it refuses, and
 * that the file it writes is the whole conflist or nothing.
 */
import test from 'ava';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseCidr, parseIP } from '../../pkg/ip/cidr.ts';
import type { Link } from '../../pkg/netlink/route.ts';
import { type CreateDeps, type CreateOptions, createNetwork } from './create.ts';

const link = (name: string): Link => ({ index: 1, name, kind: '', slaveKind: '', mac: '', mtu: 1500, flags: 0, master: 0, operState: 0 });

function setup(t: { teardown(fn: () => void): void }) {
  const dir = mkdtempSync(join(tmpdir(), 'cnikit-create-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const deps: CreateDeps = {
    host: async () => ({ links: [link('lo'), link('cnikit0')], used: [{ cidr: parseCidr('10.89.0.0/24'), what: 'address 10.89.0.1/24 on d0 of this host' }, { cidr: parseCidr('10.89.1.0/24'), what: 'route 10.89.1.0/24 dev d0 of this host' }] }),
    random: (n) => Buffer.alloc(n, 0x11), now: () => new Date('2026-12-01T00:00:00Z'), types: new Set(['bridge', 'host-local', 'portmap', 'dnsname']),
  };
  const opts = (o: Partial<CreateOptions>): CreateOptions => ({
    netconfPath: dir, name: 'n', subnets: [], gateways: [], ipv6: false, internal: false, isolate: 'same-bridge', icc: true, dns: true, resolver: 'gateway', labels: {}, ...o,
  });
  return { dir, deps, opts };
}

test('no --subnet: the first /24 that no network, address or route uses; the bridge name avoids host links', async (t) => {
  const { dir, deps, opts } = setup(t);
  writeFileSync(join(dir, '10-other.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'other', plugins: [{ type: 'bridge', bridge: 'cnikit1', ipam: { type: 'host-local', ranges: [[{ subnet: '10.89.2.0/24' }]] } }] }));
  const c = await createNetwork(opts({ name: 'web', ipv6: true }), deps);
  t.is(c.file, join(dir, 'web.conflist'));
  t.is(c.spec.bridge, 'cnikit2');
  const onDisk = JSON.parse(readFileSync(c.file, 'utf8'));
  t.deepEqual(onDisk, c.conflist);
  t.deepEqual(onDisk.plugins[0].ipam.ranges, [[{ subnet: '10.89.3.0/24' }], [{ subnet: 'fd11:1111:1111::/64' }]]);
  t.deepEqual(readdirSync(dir).sort(), ['10-other.conflist', 'web.conflist'], 'no temp file is left');
});

test('refused: an existing name, a bridge in use or present on the host, an overlapping subnet', async (t) => {
  const { dir, deps, opts } = setup(t);
  await createNetwork(opts({ name: 'a', subnets: [parseCidr('10.50.0.0/24')], gateways: [parseIP('10.50.0.254')] }), deps);
  await t.throwsAsync(createNetwork(opts({ name: 'a' }), deps), { message: 'network "a" exists' });
  await t.throwsAsync(createNetwork(opts({ name: 'b', bridge: 'cnikit0' }), deps), { message: 'an interface named "cnikit0" exists on this host' });
  await t.throwsAsync(createNetwork(opts({ name: 'b', bridge: 'cnikit1' }), deps), { message: 'bridge "cnikit1" is used by network "a"' });
  const e = await t.throwsAsync(createNetwork(opts({ name: 'b', subnets: [parseCidr('10.50.0.0/16')] }), deps));
  t.is(e?.message, `subnet 10.50.0.0/16 overlaps network "a" (10.50.0.0/24 in ${join(dir, 'a.conflist')})`);
  t.like(e, { reason: 'conflict' });
  await t.throwsAsync(createNetwork(opts({ name: 'b', subnets: [parseCidr('10.89.1.128/25')] }), deps), { message: 'subnet 10.89.1.128/25 overlaps route 10.89.1.0/24 dev d0 of this host' });
  await t.throwsAsync(createNetwork(opts({ name: 'b', gateways: [parseIP('10.1.1.1')] }), deps), { message: '--gateway needs --subnet' });
  t.deepEqual(readdirSync(dir), ['a.conflist']);
  t.is(JSON.parse(readFileSync(join(dir, 'a.conflist'), 'utf8')).plugins[0].ipam.ranges[0][0].gateway, '10.50.0.254');
});

test('a file NAME.conflist that defines another name is not overwritten', async (t) => {
  const { dir, deps, opts } = setup(t);
  writeFileSync(join(dir, 'x.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'different', plugins: [{ type: 'bridge' }] }));
  await t.throwsAsync(createNetwork(opts({ name: 'x' }), deps), { message: `${join(dir, 'x.conflist')} exists` });
  t.is(JSON.parse(readFileSync(join(dir, 'x.conflist'), 'utf8')).name, 'different');
});

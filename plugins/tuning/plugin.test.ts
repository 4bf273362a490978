/**
 * The tuning handlers over a fake kernel (no root): a one-link rtnetlink model behind a
 * FakeNetlinkSocket and sysctls in a Map, so that a failure can be injected halfway through ADD.
 * What a real namespace does with the same calls is in netns-tests/tuning.test.ts.
 *
 * The namespace is this process's own (/proc/self/ns/net with CNI_NETNS_OVERRIDE=1): Netns.open
 * needs a real namespace file, and nothing reaches it, since every kernel call goes to the fakes.
 */
import test from 'ava';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CniError } from '../../pkg/cni/errors.ts';
import type { CmdArgs } from '../../pkg/cni/skel.ts';
import type { Kernel } from '../../pkg/kernel.ts';
import { silentLogger } from '../../pkg/log.ts';
import { FakeNetlinkSocket } from '../../pkg/netlink/fake-socket.ts';
import { attr, attrU32, encodeAttrs, parseAttrs } from '../../pkg/netlink/message.ts';
import { IFF_ALLMULTI, IFF_PROMISC, RouteHandle, macFromBytes, macToBytes } from '../../pkg/netlink/route.ts';
import { tuningPlugin } from './plugin.ts';

const EINVAL = 22, ENODEV = 19, ENOENT = 'ENOENT';

/** The one link of the fake namespace, and what the fake kernel refuses. */
interface World {
  link: { index: number; name: string; mac: string; mtu: number; flags: number; txQLen: number } | undefined;
  sysctl: Map<string, string>;
  /** Requests the fake answers with EINVAL: `mtu`, `address`… (the op's last word). */
  refuse: Set<string>;
  log: string[];
}

function world(): World {
  return {
    link: { index: 2, name: 'eth0', mac: '0a:58:0a:4d:00:02', mtu: 1500, flags: 0x1003, txQLen: 1000 },
    sysctl: new Map([['net/ipv4/conf/eth0/arp_ignore', '0'], ['net/ipv4/ip_forward', '0'], ['net/core/somaxconn', '4096']]),
    refuse: new Set(),
    log: [],
  };
}

function linkPayload(l: NonNullable<World['link']>): Buffer {
  const h = Buffer.alloc(16);
  h.writeInt32LE(l.index, 4);
  h.writeUInt32LE(l.flags, 8);
  return Buffer.concat([h, encodeAttrs([attr.str(3, l.name), attr.u32(4, l.mtu), attr.u32(13, l.txQLen), attr.bytes(1, macToBytes(l.mac))])]);
}

function fakeKernel(w: World): Kernel {
  const sock = new FakeNetlinkSocket((m) => {
    const l = w.link;
    if (m.type === 18) return l && parseAttrs(m.payload, 16).get(3)?.toString().startsWith(l.name) ? { data: [linkPayload(l)], errno: 0 } : ENODEV;
    if (m.type !== 16 || !l || m.payload.readInt32LE(4) !== l.index) return ENODEV;
    const a = parseAttrs(m.payload, 16);
    const change = m.payload.readUInt32LE(12);
    const what = a.has(4) ? 'mtu' : a.has(1) ? 'address' : a.has(13) ? 'txqueuelen' : change & IFF_PROMISC ? 'promisc' : 'allmulticast';
    if (w.refuse.has(what)) return EINVAL;
    if (a.has(4)) l.mtu = attrU32(a.get(4))!;
    if (a.has(1)) l.mac = macFromBytes(a.get(1));
    if (a.has(13)) l.txQLen = attrU32(a.get(13))!;
    l.flags = (l.flags & ~change) | (m.payload.readUInt32LE(8) & change);
    w.log.push(what);
    return 0;
  });
  const rt = new RouteHandle(sock);
  const enoent = (key: string) => Object.assign(new Error(`open /proc/sys/${key}: no such file`), { code: ENOENT, errno: 2 });
  return {
    route: async () => rt,
    nftables: () => Promise.reject(new Error('no nftables here')),
    netfilter: () => Promise.reject(new Error('no netfilter here')),
    sysctlRead: async (_ns, key) => {
      const v = w.sysctl.get(key);
      if (v === undefined) throw enoent(key);
      return v;
    },
    sysctlWrite: async (_ns, key, value) => {
      if (!w.sysctl.has(key)) throw enoent(key);
      if (w.refuse.has(key)) throw Object.assign(new Error(`write /proc/sys/${key}: invalid argument`), { code: 'EINVAL', errno: EINVAL });
      w.sysctl.set(key, value);
      w.log.push(key);
    },
  };
}

const PREV = { cniVersion: '1.0.0', interfaces: [{ name: 'cnk0' }, { name: 'eth0', mac: '0a:58:0a:4d:00:02', sandbox: '/proc/self/ns/net' }], ips: [{ address: '10.77.0.2/24', interface: 1 }] };

function call(w: World, dataDir: string, command: CmdArgs['command'], conf: Record<string, unknown>): CmdArgs {
  const full = { cniVersion: '1.0.0', name: 'tnet', type: 'tuning', dataDir, prevResult: PREV, ...conf };
  return {
    command, containerId: 'ctr1', netns: '/proc/self/ns/net', ifName: 'eth0', args: '', path: [],
    stdinData: Buffer.from(JSON.stringify(full)), conf: full, env: { CNI_NETNS_OVERRIDE: '1' }, self: '', log: silentLogger, kernel: fakeKernel(w),
  };
}

function setup(t: { teardown(fn: () => void): void }) {
  const dir = mkdtempSync(join(tmpdir(), 'cnikit-tuning-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return { w: world(), dir, file: join(dir, 'ctr1_eth0.json') };
}

const ALL = { mac: '02:11:22:33:44:55', mtu: 1400, promisc: true, allmulti: true, txQLen: 500, sysctl: { 'net.ipv4.conf.IFNAME.arp_ignore': '1', 'net.ipv4.ip_forward': '1' } };

test('ADD makes every change in the reference\'s order, saves the originals, and sets the MAC in the result; DEL restores all and removes the file', async (t) => {
  const { w, dir, file } = setup(t);
  const r = await tuningPlugin.add(call(w, dir, 'ADD', ALL));
  t.deepEqual(w.log, ['net/ipv4/conf/eth0/arp_ignore', 'net/ipv4/ip_forward', 'address', 'promisc', 'mtu', 'allmulticast', 'txqueuelen']);
  t.like(w.link, { mac: '02:11:22:33:44:55', mtu: 1400, txQLen: 500, flags: 0x1003 | IFF_PROMISC | IFF_ALLMULTI });
  t.is(w.sysctl.get('net/ipv4/ip_forward'), '1');
  t.deepEqual(r.interfaces?.map((i) => i.mac), [undefined, '02:11:22:33:44:55']);
  const saved = JSON.parse(readFileSync(file, 'utf8'));
  t.like(saved, { mac: '0a:58:0a:4d:00:02', promisc: false, mtu: 1500, allmulti: false, txQLen: 1000, network: 'tnet', ifindex: 2 });
  t.deepEqual(saved.sysctl, { 'net/ipv4/conf/eth0/arp_ignore': '0', 'net/ipv4/ip_forward': '0' });
  t.true(readFileSync(file, 'utf8').startsWith('{\n "mac": "0a:58:0a:4d:00:02",\n "promisc": false,'), 'the reference\'s layout');

  await t.notThrowsAsync(tuningPlugin.check(call(w, dir, 'CHECK', ALL)));
  w.log.length = 0;
  await tuningPlugin.del(call(w, dir, 'DEL', ALL));
  t.deepEqual(w.log, ['txqueuelen', 'allmulticast', 'mtu', 'promisc', 'address', 'net/ipv4/ip_forward', 'net/ipv4/conf/eth0/arp_ignore']);
  t.deepEqual(w.link, world().link);
  t.deepEqual(w.sysctl, world().sysctl);
  t.false(existsSync(file));
});

test('a failed ADD (the MTU refused after the sysctls and the MAC were set) undoes them in reverse and leaves no file', async (t) => {
  const { w, dir, file } = setup(t);
  w.refuse.add('mtu');
  const err = await t.throwsAsync(tuningPlugin.add(call(w, dir, 'ADD', ALL)), { instanceOf: CniError }) as CniError;
  t.is(err.code, 7);
  t.is(err.message, 'failed to set mtu 1400 on "eth0"');
  t.regex(err.details!, /^mtu: /);
  t.deepEqual(w.log, ['net/ipv4/conf/eth0/arp_ignore', 'net/ipv4/ip_forward', 'address', 'promisc', 'promisc', 'address', 'net/ipv4/ip_forward', 'net/ipv4/conf/eth0/arp_ignore']);
  t.deepEqual(w.link, world().link);
  t.deepEqual(w.sysctl, world().sysctl);
  t.false(existsSync(file));
  t.deepEqual(readdirSync(dir), [], 'no temp file either');
});

test('a failed repeated ADD puts the earlier restore file back as it was', async (t) => {
  const { w, dir, file } = setup(t);
  await tuningPlugin.add(call(w, dir, 'ADD', { mtu: 1400 }));
  const before = readFileSync(file, 'utf8');
  w.refuse.add('net/core/somaxconn');
  const err = await t.throwsAsync(tuningPlugin.add(call(w, dir, 'ADD', { mac: '02:11:22:33:44:55', sysctl: { 'net.ipv4.ip_forward': '1', 'net.core.somaxconn': '8' } })), { instanceOf: CniError }) as CniError;
  t.is(err.message, 'failed to set /proc/sys/net/core/somaxconn = "8"');
  t.is(err.code, 7);
  t.is(w.sysctl.get('net/ipv4/ip_forward'), '0', 'the first sysctl is put back');
  t.is(readFileSync(file, 'utf8'), before);
});

test('a sysctl the kernel does not have fails ADD before anything changes (code 7, naming the key)', async (t) => {
  const { w, dir, file } = setup(t);
  const err = await t.throwsAsync(tuningPlugin.add(call(w, dir, 'ADD', { mac: '02:11:22:33:44:55', sysctl: { 'net.ipv4.ip_forward': '1', 'net.ipv4.nonexist': '1' } })), { instanceOf: CniError }) as CniError;
  t.is(err.code, 7);
  t.is(err.message, 'failed to read /proc/sys/net/ipv4/nonexist');
  t.regex(err.details!, /^sysctl\["net\.ipv4\.nonexist"\]: /);
  t.deepEqual(w.log, []);
  t.false(existsSync(file));
});

test('a repeated ADD keeps the originals of the first; DEL restores those', async (t) => {
  const { w, dir, file } = setup(t);
  await tuningPlugin.add(call(w, dir, 'ADD', { mac: '02:00:00:00:00:01', mtu: 1400 }));
  await tuningPlugin.add(call(w, dir, 'ADD', { mac: '02:00:00:00:00:02', mtu: 1300, sysctl: { 'net.ipv4.ip_forward': '1' } }));
  await tuningPlugin.add(call(w, dir, 'ADD', { mac: '02:00:00:00:00:03' }));
  t.like(JSON.parse(readFileSync(file, 'utf8')), { mac: '0a:58:0a:4d:00:02', mtu: 1500, sysctl: { 'net/ipv4/ip_forward': '0' } });
  await tuningPlugin.del(call(w, dir, 'DEL', {}));
  t.deepEqual(w.link, world().link);
  t.deepEqual(w.sysctl, world().sysctl);
});

test('nothing to change: no file, no request that changes anything, prevResult passed through', async (t) => {
  const { w, dir, file } = setup(t);
  const r = await tuningPlugin.add(call(w, dir, 'ADD', { mtu: 1500, sysctl: { 'net.ipv4.ip_forward': '0' }, mac: '0A:58:0A:4D:00:02' }));
  t.deepEqual(w.log, []);
  t.false(existsSync(file));
  t.deepEqual(r, { ...PREV, cniVersion: '1.0.0' });
  t.deepEqual(await tuningPlugin.add(call(w, dir, 'ADD', {})), { ...PREV, cniVersion: '1.0.0' });
});

test('CHECK reports every difference in the reference\'s words, and promisc both ways', async (t) => {
  const { w, dir } = setup(t);
  await tuningPlugin.add(call(w, dir, 'ADD', ALL));
  w.link!.mtu = 1450;
  w.link!.flags &= ~IFF_ALLMULTI;
  w.sysctl.set('net/ipv4/ip_forward', '0');
  const err = await t.throwsAsync(tuningPlugin.check(call(w, dir, 'CHECK', ALL)), { instanceOf: CniError }) as CniError;
  t.is(err.message, 'Tuning configured value of /proc/sys/net/ipv4/ip_forward is 1, current value is 0');
  t.is(err.details, 'Tuning configured MTU of eth0 is 1400, current value is 1450; Tuning configured all-multicast mode of eth0 is true, current value is false');
  const e2 = await t.throwsAsync(tuningPlugin.check(call(w, dir, 'CHECK', {})), { instanceOf: CniError }) as CniError;
  t.is(e2.message, 'Tuning link eth0 configured promisc is false, current value is 1');
  w.link = undefined;
  const e3 = await t.throwsAsync(tuningPlugin.check(call(w, dir, 'CHECK', {})), { instanceOf: CniError }) as CniError;
  t.is(e3.message, 'Cannot find container link eth0');
});

test('DEL never fails: no file, a damaged file, a config it cannot parse', async (t) => {
  const { w, dir, file } = setup(t);
  await t.notThrowsAsync(tuningPlugin.del(call(w, dir, 'DEL', {})));
  writeFileSync(file, '{"mtu": "x"');
  await t.notThrowsAsync(tuningPlugin.del(call(w, dir, 'DEL', {})));
  t.false(existsSync(file), 'a damaged file is dropped');
  await tuningPlugin.add(call(w, dir, 'ADD', { mtu: 1400 }));
  await t.notThrowsAsync(tuningPlugin.del(call(w, dir, 'DEL', { mtu: 'garbage', sysctl: 7, mac: 'zz' })));
  t.is(w.link!.mtu, 1500);
  t.false(existsSync(file));
});

test('DEL with the link gone puts back the namespace\'s sysctls (a per-link one went with the link) and drops the file', async (t) => {
  const { w, dir, file } = setup(t);
  await tuningPlugin.add(call(w, dir, 'ADD', ALL));
  w.link = undefined;
  w.sysctl.delete('net/ipv4/conf/eth0/arp_ignore');
  w.log.length = 0;
  await t.notThrowsAsync(tuningPlugin.del(call(w, dir, 'DEL', {})));
  t.deepEqual(w.log, ['net/ipv4/ip_forward']);
  t.is(w.sysctl.get('net/ipv4/ip_forward'), '0');
  t.false(existsSync(file));
});

test('DEL leaves a link made again (same container id, another index) alone, but not the namespace\'s sysctls', async (t) => {
  const { w, dir, file } = setup(t);
  await tuningPlugin.add(call(w, dir, 'ADD', { mtu: 1400, sysctl: { 'net.ipv4.ip_forward': '1' } }));
  w.link!.index = 9;
  w.log.length = 0;
  await tuningPlugin.del(call(w, dir, 'DEL', {}));
  t.deepEqual(w.log, ['net/ipv4/ip_forward']);
  t.is(w.link!.mtu, 1400);
  t.false(existsSync(file));
});

test('DEL restores from the reference\'s own file (no sysctl, no identity) and keeps a file whose restore failed', async (t) => {
  const { w, dir, file } = setup(t);
  w.link!.mtu = 1400;
  w.link!.mac = '02:00:00:00:00:09';
  writeFileSync(file, '{\n "mac": "0a:58:0a:4d:00:02",\n "mtu": 1500\n}');
  w.refuse.add('address');
  await t.notThrowsAsync(tuningPlugin.del(call(w, dir, 'DEL', {})));
  t.is(w.link!.mtu, 1500);
  t.true(existsSync(file), 'kept for a retry');
  w.refuse.clear();
  await tuningPlugin.del(call(w, dir, 'DEL', {}));
  t.is(w.link!.mac, '0a:58:0a:4d:00:02');
  t.false(existsSync(file));
});

test('GC drops this network\'s files of attachments no longer valid, and nobody else\'s', async (t) => {
  const { dir } = setup(t);
  writeFileSync(join(dir, 'gone_eth0.json'), '{"mtu":1500,"network":"tnet"}');
  writeFileSync(join(dir, 'live_eth0.json'), '{"mtu":1500,"network":"tnet"}');
  writeFileSync(join(dir, 'other_eth0.json'), '{"mtu":1500,"network":"othernet"}');
  writeFileSync(join(dir, 'ref_eth0.json'), '{"mtu":1500}');
  const a = call(world(), dir, 'GC', {});
  await tuningPlugin.gc!(a, [{ containerID: 'live', ifname: 'eth0' }]);
  t.deepEqual(readdirSync(dir).sort(), ['live_eth0.json', 'other_eth0.json', 'ref_eth0.json']);
});

test('ADD over a file of an earlier namespace (same container id) replaces it instead of keeping its values', async (t) => {
  const { w, dir, file } = setup(t);
  writeFileSync(file, JSON.stringify({ mtu: 9000, mac: '02:99:99:99:99:99', netns: 1, ifindex: 2 }));
  await tuningPlugin.add(call(w, dir, 'ADD', { mtu: 1400 }));
  const saved = JSON.parse(readFileSync(file, 'utf8'));
  t.is(saved.mtu, 1500);
  t.is(saved.mac, undefined);
  t.not(saved.netns, 1);
});

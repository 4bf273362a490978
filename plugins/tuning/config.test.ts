/**
 * The tuning config in table form (docs/cni-notes.md §10.1): the reference's keys, the MAC's and
 * args.cni's precedence, sysctl merging, and every rejection with its code and the key it names.
 * No root: parseTuningConf reads nothing but allowlist files, pointed at a temp dir here.
 */
import test, { type ExecutionContext } from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CniError } from '../../pkg/cni/errors.ts';
import { noKernel } from '../../pkg/kernel.ts';
import { silentLogger } from '../../pkg/log.ts';
import type { CmdArgs } from '../../pkg/cni/skel.ts';
import { DEFAULT_DATA_DIR, type TuningConf, delDataDir, parseMac, parseTuningConf } from './config.ts';

const PREV = { cniVersion: '1.0.0', interfaces: [{ name: 'eth0', sandbox: '/run/netns/x' }], ips: [{ address: '10.77.0.2/24', interface: 0 }] };

function call(conf: Record<string, unknown> | string, cniArgs = ''): CmdArgs {
  const text = typeof conf === 'string' ? conf : JSON.stringify({ cniVersion: '1.0.0', name: 'tnet', type: 'tuning', prevResult: PREV, ...conf });
  return {
    command: 'ADD', containerId: 'c1', netns: '/run/netns/x', ifName: 'eth0', args: cniArgs, path: [],
    stdinData: Buffer.from(text), conf: JSON.parse(text), env: {}, self: '', log: silentLogger, kernel: noKernel,
  };
}

const parse = (conf: Record<string, unknown> | string, cniArgs = '') => parseTuningConf(call(conf, cniArgs), { allowlist: true });

/** The settings of a parsed config, as `key=value` strings. */
function settings(c: TuningConf): Record<string, string> {
  const o: Record<string, string> = {};
  for (const k of ['mac', 'promisc', 'mtu', 'allmulti', 'txQLen'] as const) {
    const s = c[k];
    if (s) o[k] = `${s.key}=${s.value}`;
  }
  for (const s of c.sysctls) o[s.path] = `${s.source}=${s.value}`;
  return o;
}

test('Podman\'s chain entry {"type":"tuning"}: nothing to set, default dataDir, prevResult kept', (t) => {
  const c = parse({});
  t.deepEqual(settings(c), {});
  t.is(c.dataDir, DEFAULT_DATA_DIR);
  t.is(c.prevResult.ips?.[0]?.address, '10.77.0.2/24');
});

const accepted: [string, Record<string, unknown>, string, Record<string, string>][] = [
  ['every key', { mac: 'C2:11:22:33:44:55', mtu: 1400, promisc: true, allmulti: false, txQLen: 0, sysctl: { 'net.ipv4.conf.IFNAME.arp_ignore': '1' } }, '', {
    mac: 'mac=c2:11:22:33:44:55', promisc: 'promisc=true', mtu: 'mtu=1400', allmulti: 'allmulti=false', txQLen: 'txQLen=0',
    'net/ipv4/conf/eth0/arp_ignore': 'sysctl["net.ipv4.conf.IFNAME.arp_ignore"]=1',
  }],
  ['mtu 0 and promisc false are "not set" (Go zero values)', { mtu: 0, promisc: false }, '', {}],
  ['null is "not set" (Go pointers)', { mtu: null, mac: null, allmulti: null, txQLen: null, sysctl: null, runtimeConfig: null, args: null }, '', {}],
  ['MAC: CNI_ARGS MAC over mac', { mac: '02:00:00:00:00:01' }, 'IgnoreUnknown=1;MAC=02:00:00:00:00:02', { mac: 'CNI_ARGS MAC=02:00:00:00:00:02' }],
  ['MAC: runtimeConfig.mac over CNI_ARGS', { mac: '02:00:00:00:00:01', runtimeConfig: { mac: '02:00:00:00:00:03' } }, 'MAC=02:00:00:00:00:02', { mac: 'runtimeConfig.mac=02:00:00:00:00:03' }],
  ['MAC: args.cni.mac over everything', { mac: '02:00:00:00:00:01', runtimeConfig: { mac: '02:00:00:00:00:03' }, args: { cni: { mac: '02:00:00:00:00:04' } } }, 'MAC=02:00:00:00:00:02', { mac: 'args.cni.mac=02:00:00:00:00:04' }],
  ['CNI_ARGS mac= (lower case) is not MAC', { mac: '02:00:00:00:00:01' }, 'IgnoreUnknown=1;mac=02:00:00:00:00:02', { mac: 'mac=02:00:00:00:00:01' }],
  ['Kubernetes\' CNI_ARGS are known', {}, 'K8S_POD_NAME=web;K8S_POD_NAMESPACE=default', {}],
  ['args.cni overrides mtu, promisc, allmulti, txQLen', { mtu: 1400, promisc: true, allmulti: true, txQLen: 100, args: { cni: { mtu: 1300, promisc: false, allmulti: false, txQLen: 200, ips: ['x'] } } }, '', {
    mtu: 'args.cni.mtu=1300', allmulti: 'args.cni.allmulti=false', txQLen: 'args.cni.txQLen=200',
  }],
  ['args.cni.sysctl merges: a key naming the same file replaces it, a new one is added', {
    sysctl: { 'net.ipv4.ip_forward': '0', 'net.core.somaxconn': '100' },
    args: { cni: { sysctl: { 'net/ipv4/ip_forward': '1', 'net.ipv4.conf.IFNAME.arp_filter': '1' } } },
  }, '', {
    'net/ipv4/ip_forward': 'args.cni.sysctl["net/ipv4/ip_forward"]=1',
    'net/core/somaxconn': 'sysctl["net.core.somaxconn"]=100',
    'net/ipv4/conf/eth0/arp_filter': 'args.cni.sysctl["net.ipv4.conf.IFNAME.arp_filter"]=1',
  }],
  ['args.cni.sysctl into an empty top-level sysctl', { sysctl: {}, args: { cni: { sysctl: { 'net.core.somaxconn': '9' } } } }, '', {
    'net/core/somaxconn': 'args.cni.sysctl["net.core.somaxconn"]=9',
  }],
  ['a map\'s keys differing in case are two keys', { sysctl: { 'net.ipv4.conf.IFNAME.arp_filter': '1', 'net.ipv4.conf.ifname.arp_filter': '1' } }, '', {
    'net/ipv4/conf/eth0/arp_filter': 'sysctl["net.ipv4.conf.IFNAME.arp_filter"]=1',
    'net/ipv4/conf/ifname/arp_filter': 'sysctl["net.ipv4.conf.ifname.arp_filter"]=1',
  }],
];
for (const [what, conf, cniArgs, want] of accepted) {
  test(`accepted: ${what}`, (t) => {
    t.deepEqual(settings(parse(conf, cniArgs)), want);
  });
}

const rejects = test.macro({
  exec(t: ExecutionContext, conf: Record<string, unknown> | string, details: RegExp, code: number = 7, cniArgs: string = '') {
    const err = t.throws(() => parse(conf, cniArgs), { instanceOf: CniError })!;
    t.is(err.code as number, code);
    t.regex(`${err.message}: ${err.details ?? ''}`, details);
  },
  title: (what = '') => `rejected: ${what}`,
});

test('a sysctl value that is a number', rejects, { sysctl: { 'net.core.somaxconn': 1 } }, /sysctl\.net\.core\.somaxconn: expected string, got number/);
test('a sysctl value that is a boolean, in args.cni', rejects, { sysctl: {}, args: { cni: { sysctl: { 'net.core.somaxconn': true } } } }, /args\.cni\.sysctl\.net\.core\.somaxconn: expected string/);
test('sysctl a list', rejects, { sysctl: ['net.core.somaxconn=1'] }, /sysctl: expected record/);
test('a key outside net/', rejects, { sysctl: { 'kernel.hostname': 'x' } }, /^invalid net sysctl key: "kernel\/hostname": sysctl\["kernel\.hostname"\]/);
test('a key outside net/ in args.cni.sysctl', rejects, { sysctl: {}, args: { cni: { sysctl: { 'vm.swappiness': '1' } } } }, /invalid net sysctl key: "vm\/swappiness": args\.cni\.sysctl\["vm\.swappiness"\]/);
test('a key written twice', rejects, '{"cniVersion":"1.0.0","name":"n","prevResult":{},"sysctl":{"net.core.somaxconn":"1","net.core.somaxconn":"2"}}', /sysctl: duplicated sysctl keys are not allowed \("net\.core\.somaxconn" is written twice\)/);
test('two keys naming one file', rejects, { sysctl: { 'net.ipv4.ip_forward': '1', 'net/ipv4/ip_forward': '0' } }, /sysctl\["net\.ipv4\.ip_forward"\] and sysctl\["net\/ipv4\/ip_forward"\] both name \/proc\/sys\/net\/ipv4\/ip_forward/);
test('args.cni.sysctl without a top-level sysctl (the reference panics)', rejects, { args: { cni: { sysctl: { 'net.core.somaxconn': '1' } } } }, /args\.cni\.sysctl: needs a top-level "sysctl"/);
test('a MAC that is none', rejects, { mac: 'zz' }, /mac: "zz" is not a MAC address/);
test('a MAC with mixed separators', rejects, { mac: '02:00-00:00:00:01' }, /mac: "02:00-00:00:00:01" is not a MAC address/);
test('a multicast MAC', rejects, { mac: '01:00:5e:00:00:01' }, /mac: 01:00:5e:00:00:01 is a multicast address/);
test('the zero MAC', rejects, { mac: '00:00:00:00:00:00' }, /mac: 00:00:00:00:00:00 is the zero address/);
test('a bad MAC in CNI_ARGS names it', rejects, {}, /CNI_ARGS MAC: "nope" is not a MAC address/, 7, 'MAC=nope');
test('a bad MAC in runtimeConfig names it', rejects, { runtimeConfig: { mac: 'x' } }, /runtimeConfig\.mac: "x"/);
test('mtu a string', rejects, { mtu: '1400' }, /mtu: expected number, got string/);
test('mtu a fraction', rejects, { mtu: 1400.5 }, /mtu: must be a non-negative integer, got 1400\.5/);
test('mtu negative', rejects, { mtu: -1 }, /mtu: must be a non-negative integer, got -1/);
test('txQLen negative in args.cni', rejects, { args: { cni: { txQLen: -5 } } }, /args\.cni\.txQLen: must be a non-negative integer, got -5/);
test('promisc a string', rejects, { promisc: 'true' }, /promisc: expected boolean, got string/);
test('allmulti a number', rejects, { allmulti: 1 }, /allmulti: expected boolean, got number/);
test('a relative dataDir', rejects, { dataDir: 'tuning' }, /dataDir: "tuning" must be an absolute path/);
test('a relative sysctlAllowlist', rejects, { sysctlAllowlist: 'allow.conf' }, /sysctlAllowlist: "allow\.conf" must be an absolute path/);
test('no prevResult', rejects, { prevResult: undefined }, /Required prevResult missing/);
test('a prevResult that is not a result', rejects, { prevResult: { ips: 'x' } }, /failed to parse prevResult/, 7);
test('an unknown CNI_ARGS key without IgnoreUnknown', rejects, {}, /ARGS: unknown args \[FOO\]/, 4, 'FOO=bar');

test('the sysctlAllowlist file: a key it does not allow is refused before anything else; a missing file allows everything', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cnikit-tuning-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'allowlist.conf');
  writeFileSync(file, '^net\\.ipv4\\.conf\\.IFNAME\\.[a-z_]*$\n');
  t.notThrows(() => parse({ sysctlAllowlist: file, sysctl: { 'net.ipv4.conf.IFNAME.arp_ignore': '1' } }));
  const err = t.throws(() => parse({ sysctlAllowlist: file, sysctl: { 'net.ipv4.conf.IFNAME.arp_ignore': '1' }, args: { cni: { sysctl: { 'net.core.somaxconn': '5' } } } }), { instanceOf: CniError })!;
  t.is(err.code, 7);
  t.is(err.message, 'Sysctl net.core.somaxconn is not allowed. Only the following sysctls are allowed: [^net\\.ipv4\\.conf\\.IFNAME\\.[a-z_]*$]');
  t.notThrows(() => parse({ sysctlAllowlist: join(dir, 'missing.conf'), sysctl: { 'net.core.somaxconn': '5' } }));
  // CHECK does not consult the allowlist (as the reference).
  t.notThrows(() => parseTuningConf(call({ sysctlAllowlist: file, sysctl: { 'net.core.somaxconn': '5' } }), { allowlist: false }));
});

test('parseMac takes Go\'s forms and lengths', (t) => {
  t.is(parseMac('0A:58:0A:4D:00:05'), '0a:58:0a:4d:00:05');
  t.is(parseMac('0a-58-0a-4d-00-05'), '0a:58:0a:4d:00:05');
  t.is(parseMac('0a58.0a4d.0005'), '0a:58:0a:4d:00:05');
  t.is(parseMac('02:00:5e:10:00:00:00:01'), '02:00:5e:10:00:00:00:01');
  t.is(parseMac('0a:58:0a:4d:00'), undefined);
  t.is(parseMac('0a:58:0a:4d:00:5'), undefined);
  t.is(parseMac(''), undefined);
});

test('delDataDir: dataDir when usable, the default when absent, none when ADD would have refused it; never throws', (t) => {
  t.is(delDataDir({ dataDir: '/tmp/x' }), '/tmp/x');
  t.is(delDataDir({}), DEFAULT_DATA_DIR);
  t.is(delDataDir({ dataDir: '' }), DEFAULT_DATA_DIR);
  t.is(delDataDir({ dataDir: 'rel' }), undefined);
  t.is(delDataDir({ dataDir: 7, mtu: 'garbage', sysctl: 5 }), undefined);
});

/**
 * Interoperability with libcni, the Go library that containerd, CRI-O and cnitool use: a small
 * driver (fixtures/libcni-driver, built here from Debian's golang-github-appc-cni-dev) runs
 * ADD, CHECK and DEL of conf/-style conflists against dist/bin, with libcni's own results cache.
 * Skipped, with the reason, only when Go or the libcni sources are absent (.ci/run installs them).
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, ROOT, Sandbox, ipJson, isRoot, ping } from './lib/sandbox.ts';
import { netnsTest } from './lib/netns-test.ts';

const LIBCNI_SRC = '/usr/share/gocode/src/github.com/containernetworking/cni/libcni';
const haveGo = spawnSync('go', ['version']).status === 0 && existsSync(LIBCNI_SRC);
const run = netnsTest.needs({ met: haveGo, reason: 'needs go and golang-github-appc-cni-dev (apt-get install golang-go golang-github-appc-cni-dev)' });

let driver = '';
// Made in the hook, not at load: when every test is skipped, ava runs no hooks to remove it.
let buildDir = '';
test.before(() => {
  if (!haveGo || !isRoot) return;
  buildDir = mkdtempSync(join(tmpdir(), 'cnikit-libcni-'));
  driver = join(buildDir, 'libcni-driver');
  const r = spawnSync('go', ['build', '-o', driver, join(ROOT, 'netns-tests/fixtures/libcni-driver/main.go')], {
    env: { ...process.env, GOPATH: '/usr/share/gocode', GO111MODULE: 'off', GOCACHE: join(buildDir, 'cache'), GOFLAGS: '' },
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`go build failed: ${r.stderr}`);
});
test.after.always(() => { if (buildDir) rmSync(buildDir, { recursive: true, force: true }); });

function writeConf(sb: Sandbox): string {
  const dir = join(sb.tmp, 'net.d');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, '10-libcni.conflist'), JSON.stringify({
    cniVersion: '1.0.0', name: 'libcninet',
    plugins: [{
      type: 'bridge', bridge: 'cnkl0', isGateway: true, isDefaultGateway: true,
      ipam: { type: 'host-local', dataDir: join(sb.tmp, 'ipam'), ranges: [[{ subnet: '10.55.0.0/24' }], [{ subnet: 'fd55::/64' }]] },
    }],
  }));
  return dir;
}

function drive(sb: Sandbox, confDir: string, cmd: string, netns: string) {
  return sb.exec(sb.host, driver, [cmd, 'libcninet', netns], {
    env: { PATH: process.env.PATH, NETCONFPATH: confDir, CNI_PATH: BIN, CNI_CACHE_DIR: join(sb.tmp, 'cache') },
  });
}

run('libcni ADD, CHECK and DEL through dist/bin with the results cache', (t) => {
  const sb = new Sandbox('lc');
  t.teardown(() => sb.cleanup());
  const confDir = writeConf(sb);
  const a = sb.container('a');
  const b = sb.container('b');
  const addA = drive(sb, confDir, 'add', Sandbox.path(a));
  t.is(addA.status, 0, addA.stderr);
  const result = JSON.parse(addA.stdout);
  t.is(result.cniVersion, '1.0.0');
  t.deepEqual(result.ips.map((i: { address: string }) => i.address), ['10.55.0.2/24', 'fd55::2/64']);
  t.deepEqual(result.routes, [{ dst: '0.0.0.0/0', gw: '10.55.0.1' }, { dst: '::/0', gw: 'fd55::1' }]);
  t.is(drive(sb, confDir, 'add', Sandbox.path(b)).status, 0);
  t.true(ping(sb, a, '10.55.0.3'));
  t.true(ping(sb, b, 'fd55::2'));
  const cached = readdirSync(join(sb.tmp, 'cache', 'results'));
  t.is(cached.length, 2);
  t.true(cached.every((f) => f.startsWith('libcninet-cnitool-')));

  const check = drive(sb, confDir, 'check', Sandbox.path(a));
  t.is(check.status, 0, check.stderr);
  // Someone removes the default route: libcni's CHECK (prevResult from its cache) must fail.
  sb.exec(a, 'ip', ['route', 'del', 'default']);
  const broken = drive(sb, confDir, 'check', Sandbox.path(a));
  t.not(broken.status, 0);
  t.regex(broken.stderr, /route 0\.0\.0\.0\/0 via 10\.55\.0\.1 is missing/);

  for (const ns of [a, b]) t.is(drive(sb, confDir, 'del', Sandbox.path(ns)).status, 0);
  t.deepEqual(readdirSync(join(sb.tmp, 'cache', 'results')), []);
  t.deepEqual(ipJson(sb.host, 'link', 'show', 'type', 'veth'), []);
  t.deepEqual(readdirSync(join(sb.tmp, 'ipam', 'libcninet')).filter((f) => f !== 'lock' && !f.startsWith('last_reserved_ip')), []);
});

run('cnikit and libcni each DEL what the other added (same container id, same cache)', (t) => {
  const sb = new Sandbox('lx');
  t.teardown(() => sb.cleanup());
  const confDir = writeConf(sb);
  const env = { PATH: process.env.PATH, NETCONFPATH: confDir, CNI_PATH: BIN, CNI_CACHE_DIR: join(sb.tmp, 'cache') };
  const cnikit = (cmd: string, netns: string) => sb.exec(sb.host, join(BIN, 'cnikit'), [cmd, 'libcninet', netns], { env });
  const a = sb.container('a');
  const b = sb.container('b');
  // libcni adds, cnikit checks and deletes.
  t.is(drive(sb, confDir, 'add', Sandbox.path(a)).status, 0);
  const check = cnikit('check', Sandbox.path(a));
  t.is(check.status, 0, check.stderr);
  const delA = cnikit('del', Sandbox.path(a));
  t.is(delA.status, 0, delA.stderr);
  // cnikit adds, libcni checks and deletes.
  const addB = cnikit('add', Sandbox.path(b));
  t.is(addB.status, 0, addB.stderr);
  const checkB = drive(sb, confDir, 'check', Sandbox.path(b));
  t.is(checkB.status, 0, checkB.stderr);
  const delB = drive(sb, confDir, 'del', Sandbox.path(b));
  t.is(delB.status, 0, delB.stderr);
  t.deepEqual(readdirSync(join(sb.tmp, 'cache', 'results')), []);
  t.deepEqual(ipJson(sb.host, 'link', 'show', 'type', 'veth'), []);
  t.deepEqual(readdirSync(join(sb.tmp, 'ipam', 'libcninet')).filter((f) => f !== 'lock' && !f.startsWith('last_reserved_ip')), []);
});

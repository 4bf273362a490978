/**
 * The runtime against real plugins: version negotiation with the reference Go plugins (spec
 * 1.0.0 at most) and with cnikit's (1.1.0), DEL after the namespace is gone, the example
 * configs in conf/ working as they are (only their state paths pointed at the sandbox), and
 * `cnikit install` producing plugins that run with an empty environment.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BIN, PONG_SERVER, ROOT, Sandbox, ip, ipJson, startUntilReady, tcpRequest } from './lib/sandbox.ts';
import { netnsSerial } from './lib/netns-test.ts';

const CNIKIT = join(BIN, 'cnikit');
const REF = '/usr/lib/cni';

function run(sb: Sandbox, args: string[], env: Record<string, string>, cmd = CNIKIT) {
  const r = sb.exec(sb.host, cmd, args, { env });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function leases(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).filter((f) => /^[0-9a-f.:]+$/i.test(f)) : [];
}

function simpleList(sb: Sandbox, extra: Record<string, unknown> = {}): string {
  const file = join(sb.tmp, 'neg.conflist');
  writeFileSync(file, JSON.stringify({
    cniVersion: '1.0.0', cniVersions: ['1.0.0', '1.1.0'], name: 'negnet', plugins: [{
      type: 'bridge', bridge: 'cnkneg0', isGateway: true,
      ipam: { type: 'host-local', dataDir: join(sb.tmp, 'ipam'), ranges: [[{ subnet: '10.125.0.0/24' }]] },
    }], ...extra,
  }));
  return file;
}

for (const [who, path, expected] of [['reference plugins (≤1.0.0)', REF, '1.0.0'], ['cnikit plugins', BIN, '1.1.0']] as const) {
  netnsSerial.needs({ met: existsSync(join(path, 'bridge')), reason: `no bridge plugin in ${path}` })(`version negotiation with ${who}: cniVersions [1.0.0 1.1.0] runs at ${expected}`, (t) => {
    const sb = new Sandbox();
    t.teardown(() => sb.cleanup());
    const netns = Sandbox.path(sb.container('c1'));
    const file = simpleList(sb);
    const env = { PATH: process.env.PATH!, CNI_PATH: path, CNI_CACHE_DIR: join(sb.tmp, 'cache') };
    const add = run(sb, ['add', file, netns, '-v'], env);
    t.is(add.code, 0, add.stderr);
    t.is(JSON.parse(add.stdout).cniVersion, expected);
    t.regex(add.stderr, /VERSION negnet: asking 1 plugin\(s\)/);
    const del = run(sb, ['del', file, netns, '-v'], env);
    t.is(del.code, 0, del.stderr);
    t.notRegex(del.stderr, /VERSION/, 'DEL reuses the version of the cached result');
    t.deepEqual(leases(join(sb.tmp, 'ipam', 'negnet')), []);
    const remembered = JSON.parse(readFileSync(join(sb.tmp, 'cache', 'cnikit', 'plugin-versions.json'), 'utf8'));
    t.true(Object.values(remembered).every((e: any) => e.versions.includes(expected)));
    // The answers are remembered: a second ADD negotiates the same version without asking again.
    const add2 = run(sb, ['add', file, netns, '-v'], env);
    t.is(add2.code, 0, add2.stderr);
    t.notRegex(add2.stderr, /VERSION/);
    t.is(JSON.parse(add2.stdout).cniVersion, expected);
    t.is(run(sb, ['del', file, netns], env).code, 0);
  });
}

netnsSerial('DEL after the namespace is gone releases the lease and the cache entry', (t) => {
  const sb = new Sandbox();
  t.teardown(() => sb.cleanup());
  const ctr = sb.container('c1');
  const netns = Sandbox.path(ctr);
  const file = simpleList(sb);
  const env = { PATH: process.env.PATH!, CNI_PATH: BIN, CNI_CACHE_DIR: join(sb.tmp, 'cache') };
  t.is(run(sb, ['add', file, netns], env).code, 0);
  t.is(leases(join(sb.tmp, 'ipam', 'negnet')).length, 1);
  ip('netns', 'del', ctr);
  const del = run(sb, ['del', file, netns], env);
  t.is(del.code, 0, del.stderr);
  t.deepEqual(leases(join(sb.tmp, 'ipam', 'negnet')), []);
  t.deepEqual(readdirSync(join(sb.tmp, 'cache', 'results')), []);
  t.deepEqual(ipJson(sb.host, 'link', 'show', 'type', 'veth'), []);
});

/** A conf/ file with only its state paths moved into the sandbox. */
function confFile(sb: Sandbox, name: string): { file: string; list: any } {
  const list = JSON.parse(readFileSync(join(ROOT, 'conf', name), 'utf8'));
  for (const p of list.plugins) {
    if (p.ipam) p.ipam.dataDir = join(sb.tmp, 'ipam');
    if (p.type === 'dnsname') Object.assign(p, { recordsDir: join(sb.tmp, 'dns', 'records'), runDir: join(sb.tmp, 'dns', 'run'), upstreams: [] });
  }
  const file = join(sb.tmp, name);
  writeFileSync(file, JSON.stringify(list));
  return { file, list };
}

netnsSerial('conf/20-cnikit-minimal.conflist works as it is: add, check, del', (t) => {
  const sb = new Sandbox();
  t.teardown(() => sb.cleanup());
  const netns = Sandbox.path(sb.container('c1'));
  const { file, list } = confFile(sb, '20-cnikit-minimal.conflist');
  const env = { PATH: process.env.PATH!, CNI_PATH: BIN, CNI_CACHE_DIR: join(sb.tmp, 'cache') };
  const add = run(sb, ['add', file, netns], env);
  t.is(add.code, 0, add.stderr);
  t.regex(JSON.parse(add.stdout).ips[0].address, /^10\.90\.0\.\d+\/24$/);
  t.truthy(ipJson(sb.host, 'link', 'show', list.plugins[0].bridge)[0]);
  t.is(run(sb, ['check', file, netns], env).code, 0);
  t.is(run(sb, ['del', file, netns], env).code, 0);
  t.deepEqual(leases(join(sb.tmp, 'ipam', list.name)), []);
});

netnsSerial('conf/10-cnikit.conflist works as it is: dual-stack, a published port from outside, DNS, all removed', async (t) => {
  const sb = new Sandbox();
  t.teardown(() => sb.cleanup());
  const outside = sb.outside();
  const { file, list } = confFile(sb, '10-cnikit.conflist');
  const env = { PATH: process.env.PATH!, CNI_PATH: BIN, CNI_CACHE_DIR: join(sb.tmp, 'cache'), CNIKIT_STATE_DIR: join(sb.tmp, 'state') };
  const run = await startUntilReady(sb.host, CNIKIT, ['run', '--network', file, '--netns-dir', join(sb.tmp, 'netns'), '--name', 'web', '-p', '8080:80', '--', process.execPath, '-e', PONG_SERVER], env);
  const { child, exited } = run;
  const stderr = run.stderr();
  t.regex(stderr, /eth0 10\.89\.0\.\d+\/24, fd00:89::\w+\/64/);
  t.regex(stderr, /DNS 10\.89\.0\.1.*search cnikit\.internal/);
  t.is(tcpRequest(sb, outside, '198.51.100.1', 8080, 'hi'), 'pong:hi');
  child.kill('SIGTERM');
  t.is(await exited, 143, stderr);
  t.deepEqual(leases(join(sb.tmp, 'ipam', list.name)), []);
  t.deepEqual(readdirSync(join(sb.tmp, 'cache', 'results')), []);
});

netnsSerial('install: copies run with an empty environment; other files are kept unless --force', (t) => {
  const sb = new Sandbox();
  t.teardown(() => sb.cleanup());
  const dir = join(sb.tmp, 'opt-cni-bin');
  const env = { PATH: process.env.PATH! };
  const inst = run(sb, ['install', '--dir', dir], env);
  t.is(inst.code, 0, inst.stderr);
  t.regex(inst.stdout, new RegExp(`installed ${dir}/bridge`));
  t.regex(inst.stdout, new RegExp(`installed ${dir}/host-local`));
  t.false(existsSync(join(dir, 'cnikit')));
  t.is(run(sb, ['install', '--dir', dir], env).stdout.match(/replaced/g)?.length, inst.stdout.match(/installed/g)?.length, 'reinstall replaces our own files');

  // A runtime may exec the plugins with nothing in the environment but CNI_*.
  const ver = sb.exec(sb.host, 'env', ['-i', 'CNI_COMMAND=VERSION', join(dir, 'bridge')], { input: '{"cniVersion":"1.0.0"}' });
  t.is(ver.status, 0, ver.stderr);
  t.true(JSON.parse(ver.stdout).supportedVersions.includes('1.1.0'));
  const netns = Sandbox.path(sb.container('c1'));
  const file = simpleList(sb);
  const bare = ['-i', `CNI_PATH=${dir}`, `CNI_CACHE_DIR=${join(sb.tmp, 'cache')}`, CNIKIT];
  const add = sb.exec(sb.host, 'env', [...bare, 'add', file, netns]);
  t.is(add.status, 0, add.stderr);
  t.regex(JSON.parse(add.stdout).ips[0].address, /^10\.125\.0\.\d+\/24$/);
  t.is(sb.exec(sb.host, 'env', [...bare, 'del', file, netns]).status, 0);
  t.deepEqual(leases(join(sb.tmp, 'ipam', 'negnet')), []);

  mkdirSync(join(sb.tmp, 'other'));
  writeFileSync(join(sb.tmp, 'other', 'bridge'), '#!/bin/sh\necho reference\n', { mode: 0o755 });
  const clash = run(sb, ['install', '--dir', join(sb.tmp, 'other')], env);
  t.is(clash.code, 1);
  t.regex(clash.stderr, /other\/bridge exists and is not a cnikit plugin: pass --force/);
  t.is(readFileSync(join(sb.tmp, 'other', 'bridge'), 'utf8'), '#!/bin/sh\necho reference\n');
  t.is(run(sb, ['install', '--dir', join(sb.tmp, 'other'), '--force'], env).code, 0);
  t.true(readFileSync(join(sb.tmp, 'other', 'bridge')).includes('__cnikit_launcher__'));
});

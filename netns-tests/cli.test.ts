/**
 * The cnikit command driven as a user drives it: add/check/del round trips, DEL of what cnitool
 * added (a cache file written by hand in libcni's format), rollback of a chain whose third
 * plugin fails, and clear errors for bad configs. Every call runs inside the sandbox host
 * namespace with the cache, leases and configs in the sandbox's temp dir.
 */
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BIN, NODE, Sandbox, ipJson } from './lib/sandbox.ts';
import { netnsSerial } from './lib/netns-test.ts';

const CNIKIT = join(BIN, 'cnikit');

/** cnitool's container id for a netns path. */
function cnitoolId(netns: string): string {
  return `cnitool-${createHash('sha512').update(netns).digest('hex').slice(0, 20)}`;
}

interface Ctx { sb: Sandbox; netconf: string; cache: string; ipam: string; bin: string }

function setup(t: { teardown(fn: () => void): void }): Ctx {
  const sb = new Sandbox();
  t.teardown(() => sb.cleanup());
  const c = { sb, netconf: join(sb.tmp, 'net.d'), cache: join(sb.tmp, 'cache'), ipam: join(sb.tmp, 'ipam'), bin: join(sb.tmp, 'bin') };
  mkdirSync(c.netconf);
  mkdirSync(c.bin);
  return c;
}

function bridgeConf(c: Ctx, br = 'cnkbr0', subnet = '10.123.0.0/24'): Record<string, unknown> {
  return {
    type: 'bridge', bridge: br, isGateway: true,
    ipam: { type: 'host-local', dataDir: c.ipam, ranges: [[{ subnet }]], routes: [{ dst: '0.0.0.0/0' }] },
  };
}

function writeList(c: Ctx, file: string, list: Record<string, unknown>): Buffer {
  const bytes = Buffer.from(JSON.stringify(list, null, 2));
  writeFileSync(join(c.netconf, file), bytes);
  return bytes;
}

/** Runs cnikit in the sandbox host with the test's dirs; CNI_PATH = test bin dir, then dist/bin. */
function cnikit(c: Ctx, args: string[], env: Record<string, string> = {}) {
  const r = c.sb.exec(c.sb.host, CNIKIT, args, {
    env: { PATH: process.env.PATH, NETCONFPATH: c.netconf, CNI_CACHE_DIR: c.cache, CNI_PATH: `${c.bin}:${BIN}`, ...env },
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/**
 * A chained test plugin: logs {command, env, conf} to log.jsonl in `dir` and, on ADD, prints
 * its prevResult; with `failOn` it fails that command with CNI error code 11.
 */
function writeRecorder(c: Ctx, type: string, failOn?: string): string {
  const log = join(c.sb.tmp, `${type}.jsonl`);
  const src = `#!${NODE}
const fs = require('node:fs');
const conf = JSON.parse(fs.readFileSync(0, 'utf8') || '{}');
const cmd = process.env.CNI_COMMAND;
if (cmd === 'VERSION') { console.log(JSON.stringify({ cniVersion: conf.cniVersion, supportedVersions: ['0.4.0', '1.0.0', '1.1.0'] })); process.exit(0); }
fs.appendFileSync(${JSON.stringify(log)}, JSON.stringify({ command: cmd, containerId: process.env.CNI_CONTAINERID, ifName: process.env.CNI_IFNAME, netns: process.env.CNI_NETNS, args: process.env.CNI_ARGS, conf }) + '\\n');
if (cmd === ${JSON.stringify(failOn ?? '')}) { console.log(JSON.stringify({ cniVersion: conf.cniVersion, code: 11, msg: 'boom: ${type} refuses', details: 'injected failure' })); process.exit(1); }
if (cmd === 'ADD') console.log(JSON.stringify(conf.prevResult ?? { cniVersion: conf.cniVersion }));
`;
  const file = join(c.bin, type);
  writeFileSync(file, src);
  chmodSync(file, 0o755);
  return log;
}

function readLog(log: string): { command: string; containerId: string; args: string; conf: Record<string, any> }[] {
  if (!existsSync(log)) return [];
  return readFileSync(log, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

function leases(c: Ctx, network: string): string[] {
  const dir = join(c.ipam, network);
  return existsSync(dir) ? readdirSync(dir).filter((f) => /^[0-9a-f.:]+$/i.test(f)) : [];
}

function cacheFiles(c: Ctx): string[] {
  const dir = join(c.cache, 'results');
  return existsSync(dir) ? readdirSync(dir) : [];
}

for (const version of ['0.4.0', '1.0.0', '1.1.0']) {
  netnsSerial(`[${version}] cnikit add/check/del round trip, cnitool container id and libcni cache file`, (t) => {
    const c = setup(t);
    const ctr = c.sb.container('c1');
    const netns = Sandbox.path(ctr);
    const bytes = writeList(c, '10-rt.conflist', { cniVersion: version, name: 'rtnet', plugins: [bridgeConf(c)] });

    const add = cnikit(c, ['add', 'rtnet', netns]);
    t.is(add.code, 0, add.stderr);
    const result = JSON.parse(add.stdout);
    t.is(result.cniVersion, version);
    const addr: string = result.ips[0].address;
    t.regex(addr, /^10\.123\.0\.\d+\/24$/);
    t.truthy(result.interfaces.find((i: { name: string; sandbox?: string }) => i.name === 'eth0' && i.sandbox === netns));
    const inCtr = ipJson(ctr, 'addr', 'show', 'dev', 'eth0');
    t.truthy(inCtr[0].addr_info.find((a: { local: string; prefixlen: number }) => `${a.local}/${a.prefixlen}` === addr));

    // The cache file is exactly what libcni writes: cnitool can DEL it.
    const id = cnitoolId(netns);
    const file = join(c.cache, 'results', `rtnet-${id}-eth0`);
    const cached = JSON.parse(readFileSync(file, 'utf8'));
    t.is(cached.kind, 'cniCacheV1');
    t.is(cached.containerId, id);
    t.is(cached.ifName, 'eth0');
    t.is(cached.networkName, 'rtnet');
    t.is(cached.netns, netns);
    t.deepEqual(Buffer.from(cached.config, 'base64'), bytes);
    t.deepEqual(cached.result, result);
    t.false('cniArgs' in cached);
    t.false('capabilityArgs' in cached);

    t.is(cnikit(c, ['check', 'rtnet', netns]).code, 0);
    const again = cnikit(c, ['add', 'rtnet', netns]);
    t.is(again.code, 1);
    t.regex(again.stderr, /already attached/);

    const del = cnikit(c, ['del', 'rtnet', netns]);
    t.is(del.code, 0, del.stderr);
    t.deepEqual(ipJson(ctr, 'link', 'show').map((l: { ifname: string }) => l.ifname), ['lo']);
    t.deepEqual(leases(c, 'rtnet'), []);
    t.deepEqual(cacheFiles(c), []);
    t.is(cnikit(c, ['del', 'rtnet', netns]).code, 0, 'DEL is idempotent');
    const check = cnikit(c, ['check', 'rtnet', netns]);
    t.is(check.code, 5, check.stderr);
  });
}

netnsSerial('--format table, --ifname, --container-id and CNI_ARGS; ls and inspect read the cache', (t) => {
  const c = setup(t);
  const ctr = c.sb.container('c1');
  const netns = Sandbox.path(ctr);
  writeList(c, 'rt.conflist', { cniVersion: '1.0.0', name: 'rtnet', plugins: [bridgeConf(c)] });
  const add = cnikit(c, ['add', 'rtnet', netns, '--format', 'table', '-i', 'net1', '--container-id', 'web-1', '--args', 'IgnoreUnknown=1;K8S_POD_NAME=web']);
  t.is(add.code, 0, add.stderr);
  t.regex(add.stdout, /^#\s+INTERFACE\s+MAC\s+SANDBOX/m);
  t.regex(add.stdout, /^10\.123\.0\.\d+\/24\s+10\.123\.0\.1\s+net1$/m);
  t.truthy(ipJson(ctr, 'link', 'show', 'net1')[0]);

  const ls = cnikit(c, ['ls']);
  t.is(ls.code, 0);
  t.regex(ls.stdout, /^rtnet\s+web-1\s+net1\s+\S+\s+10\.123\.0\.\d+\/24\s+-\s+web$/m);
  const inspect = cnikit(c, ['inspect', 'web', '--json']);
  t.is(inspect.code, 0, inspect.stderr);
  const [entry] = JSON.parse(inspect.stdout);
  t.is(entry.containerId, 'web-1');
  t.deepEqual(entry.cniArgs, [['IgnoreUnknown', '1'], ['K8S_POD_NAME', 'web']]);
  t.is(entry.config.name, 'rtnet');
  t.is(cnikit(c, ['inspect', 'nothing-like-this']).code, 5);

  t.is(cnikit(c, ['del', 'rtnet', netns, '-i', 'net1', '--container-id', 'web-1']).code, 0);
  t.deepEqual(leases(c, 'rtnet'), []);
  t.regex(cnikit(c, ['ls']).stdout, /no attachments/);
});

netnsSerial('cnikit DELs what cnitool added: a libcni cache fixture gives prevResult, args and capability args', (t) => {
  const c = setup(t);
  const ctr = c.sb.container('c1');
  const netns = Sandbox.path(ctr);
  const log = writeRecorder(c, 'recorder');
  const list = { cniVersion: '1.0.0', name: 'rtnet', plugins: [bridgeConf(c), { type: 'recorder', capabilities: { portMappings: true } }] };
  const bytes = writeList(c, 'rt.conflist', list);
  const id = cnitoolId(netns);

  // What cnitool would have done: ADD each plugin in order (here straight through the
  // executables), then write the cache file in libcni's format.
  const env = { CNI_PATH: `${c.bin}:${BIN}` };
  const one = (p: Record<string, unknown>, prev?: unknown) => ({ ...p, cniVersion: '1.0.0', name: 'rtnet', ...(prev ? { prevResult: prev } : {}) });
  const br = c.sb.plugin('bridge', { command: 'ADD', containerId: id, netns, cniArgs: 'IgnoreUnknown=1;K8S_POD_NAME=web', conf: one(list.plugins[0]!), env });
  t.is(br.code, 0, br.stdout + br.stderr);
  const caps = { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }] };
  const recCall = { command: 'ADD', containerId: id, netns, conf: { ...one(list.plugins[1]!, br.json), runtimeConfig: caps }, env };
  const recRun = c.sb.exec(c.sb.host, join(c.bin, 'recorder'), [], { input: JSON.stringify(recCall.conf), env: c.sb.cniEnv(recCall) });
  t.is(recRun.status, 0, recRun.stdout + recRun.stderr);
  const rec = { json: JSON.parse(recRun.stdout) };
  mkdirSync(join(c.cache, 'results'), { recursive: true, mode: 0o700 });
  writeFileSync(join(c.cache, 'results', `rtnet-${id}-eth0`), JSON.stringify({
    kind: 'cniCacheV1', containerId: id, config: bytes.toString('base64'), ifName: 'eth0', networkName: 'rtnet',
    netns, cniArgs: [['IgnoreUnknown', '1'], ['K8S_POD_NAME', 'web']], capabilityArgs: caps, result: rec.json,
  }), { mode: 0o600 });
  t.is(leases(c, 'rtnet').length, 1);

  const ls = cnikit(c, ['ls']);
  t.regex(ls.stdout, new RegExp(`^rtnet\\s+${id}\\s+eth0\\s+${netns}\\s+10\\.123\\.0\\.\\d+/24\\s+8080->80/tcp\\s+web$`, 'm'));

  const del = cnikit(c, ['del', 'rtnet', netns]);
  t.is(del.code, 0, del.stderr);
  const dels = readLog(log).filter((e) => e.command === 'DEL');
  t.is(dels.length, 1);
  t.is(dels[0]!.containerId, id);
  t.deepEqual(dels[0]!.conf.prevResult, rec.json, 'DEL got the cached result as prevResult');
  t.deepEqual(dels[0]!.conf.runtimeConfig, caps, 'DEL got the cached capability args');
  t.is(dels[0]!.args, 'IgnoreUnknown=1;K8S_POD_NAME=web');
  t.deepEqual(ipJson(ctr, 'link', 'show').map((l: { ifname: string }) => l.ifname), ['lo']);
  t.deepEqual(leases(c, 'rtnet'), []);
  t.deepEqual(cacheFiles(c), []);
});

netnsSerial('DEL still works when the config file was removed after ADD: the cached config is used', (t) => {
  const c = setup(t);
  const ctr = c.sb.container('c1');
  const netns = Sandbox.path(ctr);
  writeList(c, 'rt.conflist', { cniVersion: '1.0.0', name: 'rtnet', plugins: [bridgeConf(c)] });
  t.is(cnikit(c, ['add', 'rtnet', netns]).code, 0);
  rmSync(join(c.netconf, 'rt.conflist'));
  const del = cnikit(c, ['del', 'rtnet', netns]);
  t.is(del.code, 0, del.stderr);
  t.regex(del.stderr, /no net configurations found in .*; using the config cached at ADD/);
  t.deepEqual(ipJson(ctr, 'link', 'show').map((l: { ifname: string }) => l.ifname), ['lo']);
  t.deepEqual(leases(c, 'rtnet'), []);
  t.deepEqual(cacheFiles(c), []);
  const again = cnikit(c, ['del', 'rtnet', netns]);
  t.is(again.code, 3, 'with neither config nor cache, DEL says the config is missing');
});

netnsSerial('a chain whose third plugin fails is rolled back: nothing is left', (t) => {
  const c = setup(t);
  const ctr = c.sb.container('c1');
  const netns = Sandbox.path(ctr);
  const recLog = writeRecorder(c, 'recorder');
  const failLog = writeRecorder(c, 'failer', 'ADD');
  writeList(c, 'rt.conflist', { cniVersion: '1.0.0', name: 'rtnet', plugins: [bridgeConf(c), { type: 'recorder' }, { type: 'failer' }] });

  const add = cnikit(c, ['add', 'rtnet', netns]);
  t.is(add.code, 1);
  t.regex(add.stderr, /plugin type="failer" name="rtnet" failed \(add\): boom: failer refuses/);
  t.deepEqual(readLog(failLog).map((e) => e.command), ['ADD', 'DEL']);
  t.deepEqual(readLog(recLog).map((e) => e.command), ['ADD', 'DEL']);
  t.is(readLog(recLog)[1]!.conf.prevResult.ips[0].address, readLog(recLog)[0]!.conf.prevResult.ips[0].address, 'rollback DEL carries the last result');
  t.deepEqual(ipJson(ctr, 'link', 'show').map((l: { ifname: string }) => l.ifname), ['lo']);
  t.deepEqual(ipJson(c.sb.host, 'link', 'show', 'type', 'veth'), []);
  t.deepEqual(leases(c, 'rtnet'), []);
  t.deepEqual(cacheFiles(c), []);
});

netnsSerial('bad configs: errors name the file and the field, exit 3', (t) => {
  const c = setup(t);
  const netns = Sandbox.path(c.sb.container('c1'));
  const file = join(c.netconf, '10-bad.conflist');
  writeFileSync(file, JSON.stringify({ cniVersion: '1.0.0', name: 'badnet', plugins: [{ type: 'bridge' }, { ipam: {} }] }));
  const r1 = cnikit(c, ['add', 'badnet', netns]);
  t.is(r1.code, 3);
  t.true(r1.stderr.includes(`invalid network config in ${file}`), r1.stderr);
  t.regex(r1.stderr, /plugins\[1\]\.type: missing: every plugin needs a "type"/);

  writeFileSync(file, '{ "cniVersion": "1.0.0", "name": "badnet", ');
  const r2 = cnikit(c, ['add', 'badnet', netns]);
  t.is(r2.code, 3);
  t.true(r2.stderr.includes(`invalid network config in ${file}: not valid JSON`), r2.stderr);

  writeFileSync(file, JSON.stringify({ cniVersion: '9.9.9', name: 'badnet', plugins: [{ type: 'bridge' }] }));
  const r3 = cnikit(c, ['add', 'badnet', netns]);
  t.is(r3.code, 3);
  t.regex(r3.stderr, /incompatible CNI versions in .*10-bad\.conflist/);

  writeFileSync(file, JSON.stringify({ cniVersion: '1.0.0', name: 'bad net', plugins: [{ type: 'a/b' }], disableCheck: 'maybe' }));
  const r4 = cnikit(c, ['add', 'badnet', netns]);
  t.is(r4.code, 3);
  t.regex(r4.stderr, /name: must start with a letter or digit/);
  t.regex(r4.stderr, /disableCheck: expected true or false/);
  t.regex(r4.stderr, /plugins\[0\]\.type: must be a plugin name, not a path/);

  writeFileSync(file, JSON.stringify({ cniVersion: '1.0.0', name: 'good', plugins: [bridgeConf(c)] }));
  const r5 = cnikit(c, ['add', 'nosuch', netns]);
  t.is(r5.code, 3);
  t.regex(r5.stderr, /no net configuration with name "nosuch" in .*: networks there: good/);

  const r6 = cnikit(c, ['add', 'good', netns, '--bogus']);
  t.is(r6.code, 2);
  t.regex(r6.stderr, /unknown option '--bogus'/);
  const r7 = cnikit(c, ['add', 'good', netns], { CAP_ARGS: '{nope' });
  t.is(r7.code, 1);
  t.regex(r7.stderr, /CAP_ARGS is not valid JSON/);
  t.deepEqual(cacheFiles(c), []);
});

netnsSerial('status and gc: gc removes cached attachments that are not valid, keeps the valid ones', (t) => {
  const c = setup(t);
  const a = Sandbox.path(c.sb.container('a'));
  const b = Sandbox.path(c.sb.container('b'));
  const log = writeRecorder(c, 'recorder');
  writeList(c, 'rt.conflist', { cniVersion: '1.1.0', name: 'rtnet', plugins: [bridgeConf(c), { type: 'recorder' }] });
  const st = cnikit(c, ['status', 'rtnet']);
  t.is(st.code, 0, st.stderr);
  t.regex(st.stdout, /network "rtnet": available/);
  t.is(cnikit(c, ['add', 'rtnet', a]).code, 0);
  t.is(cnikit(c, ['add', 'rtnet', b]).code, 0);
  t.is(leases(c, 'rtnet').length, 2);

  const keep = cnikit(c, ['gc', 'rtnet', '--keep-cached']);
  t.is(keep.code, 0, keep.stderr);
  t.regex(keep.stdout, /0 attachment\(s\) removed, 2 kept/);
  const gcCall = readLog(log).filter((e) => e.command === 'GC').pop()!;
  t.is(gcCall.conf['cni.dev/valid-attachments'].length, 2);

  const gc = cnikit(c, ['gc', 'rtnet', '--valid', `${cnitoolId(a)}:eth0`]);
  t.is(gc.code, 0, gc.stderr);
  t.regex(gc.stdout, new RegExp(`removed ${cnitoolId(b)} eth0`));
  t.is(leases(c, 'rtnet').length, 1);
  t.deepEqual(cacheFiles(c), [`rtnet-${cnitoolId(a)}-eth0`]);
  t.is(cnikit(c, ['del', 'rtnet', a]).code, 0);
  t.deepEqual(leases(c, 'rtnet'), []);
});

/**
 * The launchers and the warm engine, black box: the built dist/bin/<type> launchers run as a
 * runtime runs them inside sandbox host namespaces (each has its own engine: abstract socket
 * names are per netns). A first call finds no engine, runs fresh with the same output and starts
 * one; later calls are served by it (its status counts them); it answers only root, survives
 * bad requests, can be killed mid-ADD without leaving anything a DEL does not remove, exits when
 * its namespace is deleted, and is replaced when its build changes. The results, errors and
 * on-disk state of a sequence of calls are the same with and without it.
 *
 * Serial: one test rewrites the engine bundle, which makes every engine of this checkout restart.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { EngineStatus, Reply } from '../engine/protocol.ts';
import { MAGIC, encodeCall } from '../engine/protocol.ts';
import { BIN, NODE, ROOT, Sandbox, alive, enginePids, ip, ipJson } from './lib/sandbox.ts';
import { netnsSerial as netnsTest } from './lib/netns-test.ts';
import { NFT, owners, nftView } from './lib/portmap-lib.ts';

const CLIENT = join(ROOT, 'netns-tests/fixtures/engine-client.ts');
const VERSION_IN = '{"cniVersion":"1.0.0"}';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function status(sb: Sandbox): EngineStatus | null {
  const r = sb.exec(sb.host, NODE, [CLIENT, 'status'], { env: { PATH: process.env.PATH } });
  return r.status === 0 ? JSON.parse(r.stdout) as EngineStatus | null : null;
}

function send(sb: Sandbox, request: Buffer, asUser?: number): Reply | null {
  const r = asUser === undefined
    ? sb.exec(sb.host, NODE, [CLIENT, 'send', request.toString('base64')], { env: { PATH: process.env.PATH } })
    : sb.exec(sb.host, 'setpriv', [`--reuid=${asUser}`, `--regid=${asUser}`, '--clear-groups', NODE, CLIENT, 'send', request.toString('base64')], { env: { PATH: process.env.PATH } });
  if (r.status !== 0) throw new Error(`engine-client: ${r.stderr}`);
  return JSON.parse(r.stdout) as Reply | null;
}

/** Waits (10 s at most) until the sandbox's engine answers; returns its status. */
async function engineUp(sb: Sandbox): Promise<EngineStatus> {
  for (let i = 0; i < 100; i++) {
    const s = status(sb);
    if (s) return s;
    await sleep(100);
  }
  throw new Error('no engine answered within 10 s');
}

async function gone(pid: number, ms: number): Promise<boolean> {
  for (let waited = 0; waited < ms; waited += 100) {
    if (!alive(pid)) return true;
    await sleep(100);
  }
  return !alive(pid);
}

function bridgeConf(sb: Sandbox, extra: Record<string, unknown> = {}) {
  return {
    cniVersion: '1.0.0', name: 'engnet', type: 'bridge', bridge: 'cnk0', isGateway: true, ipMasq: true,
    ipam: { type: 'host-local', dataDir: join(sb.tmp, 'ipam'), ranges: [[{ subnet: '10.79.0.0/24' }], [{ subnet: 'fd79::/64' }]], routes: [{ dst: '0.0.0.0/0' }] },
    ...extra,
  };
}

function portmapConf(prevResult: unknown, hostPort: number) {
  return {
    cniVersion: '1.0.0', name: 'engnet', type: 'portmap', capabilities: { portMappings: true },
    runtimeConfig: { portMappings: [{ hostPort, containerPort: 80, protocol: 'tcp' }] }, prevResult,
  };
}

function leases(sb: Sandbox): string[] {
  const dir = join(sb.tmp, 'ipam', 'engnet');
  return existsSync(dir) ? readdirSync(dir).filter((f) => f !== 'lock' && !f.startsWith('last_reserved_ip') && !f.startsWith('.')).sort() : [];
}

function hostVeths(sb: Sandbox): string[] {
  return ipJson(sb.host, 'link', 'show', 'type', 'veth').map((l: { ifname: string }) => l.ifname);
}

/** Runs a launcher in the sandbox host with stdout and stderr as pipes, as a runtime does. */
function launch(sb: Sandbox, type: string, env: NodeJS.ProcessEnv, input: string): { child: ChildProcess; exited: Promise<number | null>; eof: Promise<string> } {
  const child = spawn('ip', ['netns', 'exec', sb.host, join(BIN, type)], { env: { PATH: process.env.PATH, ...env } });
  let out = '';
  child.stdout!.on('data', (d) => { out += d; });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const eof = new Promise<string>((resolve) => child.stdout!.on('end', () => resolve(out)));
  child.stdin!.end(input);
  return { child, exited, eof };
}

netnsTest('no engine: the call runs fresh with the same output and starts one engine; the next call is served by it', async (t) => {
  const sb = new Sandbox('e');
  t.teardown(() => sb.cleanup());
  const env = { CNI_COMMAND: 'VERSION' };
  const fresh = sb.plugin('bridge', { command: 'VERSION', conf: VERSION_IN, env: { CNIKIT_ENGINE: 'off' } });
  const bad = sb.plugin('bridge', { command: 'ADD', netns: '/run/netns/none', conf: '{not json', env: { CNIKIT_ENGINE: 'off' } });
  t.deepEqual(enginePids(sb.host), [], 'CNIKIT_ENGINE=off starts no engine');
  t.is(status(sb), null);

  const first = sb.plugin('bridge', { command: 'VERSION', conf: VERSION_IN, env });
  t.is(first.code, fresh.code);
  t.is(first.stdout, fresh.stdout);
  const up = await engineUp(sb);
  t.deepEqual(enginePids(sb.host), [up.pid]);
  t.is(up.calls, 0);

  const second = sb.plugin('bridge', { command: 'VERSION', conf: VERSION_IN, env });
  t.is(second.code, 0);
  t.is(second.stdout, fresh.stdout);
  const bad2 = sb.plugin('bridge', { command: 'ADD', netns: '/run/netns/none', conf: '{not json' });
  t.is(bad2.code, bad.code);
  t.is(bad2.stdout, bad.stdout);
  const after = status(sb)!;
  t.is(after.pid, up.pid);
  t.is(after.calls, 2);
  t.deepEqual(Object.keys(after.perCall), ['bridge ADD', 'bridge VERSION']);
  t.true(after.rss > 0);
  t.regex(after.netns, /^net:\[\d+\]$/);
});

netnsTest('the runtime\'s stdout reaches EOF when the call returns, while the engine lives on', async (t) => {
  const sb = new Sandbox('o');
  t.teardown(() => sb.cleanup());
  for (const round of ['cold (starts the engine)', 'warm (served by it)']) {
    const run = launch(sb, 'host-local', { CNI_COMMAND: 'VERSION' }, VERSION_IN);
    const out = await Promise.race([run.eof, sleep(10_000).then(() => 'no EOF within 10 s')]);
    t.regex(out, /supportedVersions/, round);
    t.is(await run.exited, 0, round);
    const s = await engineUp(sb);
    t.true(alive(s.pid), round);
  }
});

netnsTest('20 launchers racing on a cold host start exactly one engine', async (t) => {
  const sb = new Sandbox('r');
  t.teardown(() => sb.cleanup());
  const runs = await Promise.all(Array.from({ length: 20 }, () => sb.pluginAsync('portmap', { command: 'VERSION', conf: VERSION_IN })));
  t.true(runs.every((r) => r.code === 0 && r.json?.supportedVersions), JSON.stringify(runs.filter((r) => r.code !== 0)));
  const up = await engineUp(sb);
  await sleep(1500); // a second engine, had one been started, would be up by now
  t.deepEqual(enginePids(sb.host), [up.pid]);
});

netnsTest('only root may call the engine; a non-root launcher runs fresh as before', async (t) => {
  const sb = new Sandbox('u');
  t.teardown(() => sb.cleanup());
  sb.plugin('bridge', { command: 'VERSION', conf: VERSION_IN });
  const up = await engineUp(sb);
  const call = encodeCall({ self: join(BIN, 'bridge'), type: 'bridge', env: { CNI_COMMAND: 'VERSION' }, stdin: Buffer.from(VERSION_IN) });
  const refused = send(sb, call, 65534)!;
  t.is(refused.code, 1);
  t.is(refused.ack, undefined);
  t.like(JSON.parse(refused.stdout), { code: 999, msg: 'permission denied', details: 'only root may call the cnikit engine' });
  const asRoot = send(sb, call)!;
  t.is(asRoot.code, 0);
  t.regex(asRoot.stdout, /supportedVersions/);

  const user = sb.exec(sb.host, 'setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'env', '-i', 'CNI_COMMAND=VERSION', join(BIN, 'bridge')], { input: VERSION_IN });
  t.is(user.status, 0, user.stderr);
  t.regex(user.stdout, /supportedVersions/);
  t.is(status(sb)!.calls, up.calls + 1, 'only the root request reached the engine');
});

netnsTest('malformed and oversized requests get CNI errors and the engine keeps serving', async (t) => {
  const sb = new Sandbox('m');
  t.teardown(() => sb.cleanup());
  sb.plugin('bridge', { command: 'VERSION', conf: VERSION_IN });
  const up = await engineUp(sb);
  const garbage = send(sb, Buffer.from('GET / HTTP/1.0\r\n\r\n'))!;
  t.is(garbage.code, 1);
  t.like(JSON.parse(garbage.stdout), { code: 6, msg: 'malformed cnikit engine request' });
  const truncated = send(sb, encodeCall({ self: '', type: 'bridge', env: {}, stdin: Buffer.from('{}') }).subarray(0, 20))!;
  t.like(JSON.parse(truncated.stdout), { code: 6, details: 'incomplete request' });
  const badType = send(sb, encodeCall({ self: '', type: '../x', env: { CNI_COMMAND: 'VERSION' }, stdin: Buffer.from('{}') }))!;
  t.like(JSON.parse(badType.stdout), { code: 6 });
  // A header that announces 9 MiB of stdin: refused before the bytes are read.
  const head = encodeCall({ self: '', type: 'bridge', env: {}, stdin: Buffer.alloc(0) });
  head.writeUInt32LE(9 << 20, head.length - 4);
  const big = send(sb, Buffer.concat([head, Buffer.alloc(1000)]))!;
  t.is(big.code, 1);
  t.like(JSON.parse(big.stdout), { code: 5, msg: 'request too large for the cnikit engine' });
  const unknown = send(sb, Buffer.concat([MAGIC, Buffer.from('Z')]))!;
  t.like(JSON.parse(unknown.stdout), { code: 6 });

  const ok = sb.plugin('bridge', { command: 'VERSION', conf: VERSION_IN });
  t.is(ok.code, 0);
  const after = status(sb)!;
  t.is(after.pid, up.pid, 'the same engine still serves');
  t.is(after.calls, up.calls + 1);
});

netnsTest('SIGKILL of the engine in the middle of ADDs: in-flight calls fail cleanly, DEL leaves nothing, the next ADD works', async (t) => {
  const sb = new Sandbox('k');
  t.teardown(() => sb.cleanup());
  const ctrs = ['k0', 'k1', 'k2', 'k3', 'k4'].map((c) => sb.container(c));
  const pm = (i: number, prev: unknown) => portmapConf(prev, 8080 + i);
  sb.plugin('bridge', { command: 'VERSION', conf: VERSION_IN });
  const up = await engineUp(sb);
  // k0 is attached before, with a published port: a lease, a veth and nftables elements.
  const k0 = sb.plugin('bridge', { command: 'ADD', containerId: 'k0', netns: Sandbox.path(ctrs[0]!), conf: bridgeConf(sb) });
  t.is(k0.code, 0, k0.stdout + k0.stderr);
  t.is(sb.plugin('portmap', { command: 'ADD', containerId: 'k0', netns: Sandbox.path(ctrs[0]!), conf: pm(0, k0.json) }).code, 0);
  t.true(owners(nftView(sb)).length > 0);
  // Hold host-local's lock so that the engine's ADDs are in flight, waiting for it. Its own
  // process group, so that flock and its sleep are killed together (by the group's PID).
  const holder = spawn('flock', [join(sb.tmp, 'ipam', 'engnet', 'lock'), 'sleep', '30'], { stdio: 'ignore', detached: true });
  const release = () => { try { process.kill(-holder.pid!, 'SIGKILL'); } catch { /* gone */ } };
  t.teardown(release);
  await sleep(300);
  const adds = ctrs.slice(1).map((ns, i) => sb.pluginAsync('bridge', { command: 'ADD', containerId: `k${i + 1}`, netns: Sandbox.path(ns), conf: bridgeConf(sb) }));
  await sleep(1000);
  process.kill(up.pid, 'SIGKILL');
  await sleep(200);
  release();
  const results = [k0, ...await Promise.all(adds)];
  for (const r of results) {
    t.true(r.code === 0 || (r.code === 1 && typeof r.json?.code === 'number' && typeof r.json?.msg === 'string'), r.stdout + r.stderr);
  }
  const failed = results.filter((r) => r.code !== 0);
  t.true(failed.length >= 1, 'the calls in flight failed');
  t.true(failed.every((r) => r.json.msg === 'the cnikit engine ended during the call'), JSON.stringify(failed.map((r) => r.json)));

  // What a runtime does after a failed ADD, and at the end for the others: DEL.
  results.forEach((r, i) => {
    const prev = r.code === 0 ? r.json : undefined;
    t.is(sb.plugin('portmap', { command: 'DEL', containerId: `k${i}`, netns: Sandbox.path(ctrs[i]!), conf: pm(i, prev) }).code, 0);
    const del = sb.plugin('bridge', { command: 'DEL', containerId: `k${i}`, netns: Sandbox.path(ctrs[i]!), conf: bridgeConf(sb) });
    t.is(del.code, 0, del.stdout + del.stderr);
  });
  t.deepEqual(hostVeths(sb), []);
  t.deepEqual(leases(sb), []);
  t.deepEqual(owners(nftView(sb)), []);

  const again = sb.plugin('bridge', { command: 'ADD', containerId: 'k1', netns: Sandbox.path(ctrs[1]!), conf: bridgeConf(sb) });
  t.is(again.code, 0, again.stdout + again.stderr);
  t.is(hostVeths(sb).length, 1);
});

netnsTest('a stopped engine (SIGSTOP) hangs no call: it runs fresh after a bounded wait, starts no second engine, and never runs twice', async (t) => {
  const sb = new Sandbox('st');
  t.teardown(() => sb.cleanup());
  const c1 = sb.container('c1');
  sb.plugin('bridge', { command: 'VERSION', conf: VERSION_IN });
  const up = await engineUp(sb);
  process.kill(up.pid, 'SIGSTOP');
  t.teardown(() => { try { process.kill(up.pid, 'SIGCONT'); } catch { /* gone */ } });
  // Bounded: a launcher that waited for the stopped engine without a limit would be killed here.
  const call = (command: string, conf: unknown) => {
    const c = { command, containerId: 'ctr1', netns: Sandbox.path(c1), conf };
    const r = sb.exec(sb.host, join(BIN, 'bridge'), [], { input: JSON.stringify(conf), env: sb.cniEnv(c), timeout: 10_000 });
    return { code: r.status, stdout: r.stdout, signal: r.signal };
  };
  const add = call('ADD', bridgeConf(sb));
  t.is(add.code, 0, `${add.signal ?? ''} ${add.stdout}`);
  t.is(leases(sb).length, 2, 'one lease per family');
  t.is(hostVeths(sb).length, 1);
  t.deepEqual(enginePids(sb.host), [up.pid], 'the stopped engine is still the only one');

  process.kill(up.pid, 'SIGCONT');
  // Once it gets to the connection the launcher gave up on, the engine turns the call away: a
  // drop (no confirmation came), or a decline when the launcher's process is already gone.
  const turnedAway = (s: EngineStatus) => s.dropped + s.declined - up.dropped - up.declined;
  let after = await engineUp(sb);
  for (let i = 0; i < 50 && turnedAway(after) < 1; i++) after = (await sleep(100), status(sb)) ?? after;
  t.is(turnedAway(after), 1, 'the call was turned away once the engine got to it');
  t.is(after.calls, up.calls, 'the call handed to the stopped engine never ran there');
  t.is(leases(sb).length, 2, 'still one lease per family');
  const del = call('DEL', { ...bridgeConf(sb), prevResult: JSON.parse(add.stdout) });
  t.is(del.code, 0, del.stdout);
  t.deepEqual(leases(sb), []);
  t.deepEqual(hostVeths(sb), []);
  t.is(status(sb)!.calls, up.calls + 1, 'the engine serves again');
});

netnsTest('a call starts only once its launcher confirms the ack; a request of an earlier launcher (version 1) runs as before', async (t) => {
  const sb = new Sandbox('cf');
  t.teardown(() => sb.cleanup());
  sb.plugin('bridge', { command: 'VERSION', conf: VERSION_IN });
  const up = await engineUp(sb);
  const call = (version: 1 | 2) => encodeCall({ self: join(BIN, 'bridge'), type: 'bridge', env: { CNI_COMMAND: 'VERSION' }, stdin: Buffer.from(VERSION_IN) }, version);
  const abandoned = sb.exec(sb.host, NODE, [CLIENT, 'abandon', call(2).toString('base64')], { env: { PATH: process.env.PATH } });
  t.is(abandoned.stdout, 'acked');
  let s = status(sb)!;
  for (let i = 0; i < 50 && s.dropped === up.dropped; i++) s = (await sleep(100), status(sb)) ?? s;
  t.is(s.dropped, up.dropped + 1, 'dropped once the launcher closed');
  t.is(s.calls, up.calls, 'not run');
  const old = send(sb, call(1))!;
  t.is(old.code, 0);
  t.regex(old.stdout, /supportedVersions/);
  t.is(status(sb)!.calls, up.calls + 1);
});

netnsTest('`ip netns del` of the host makes its engine exit within seconds, and the namespace is freed', async (t) => {
  const sb = new Sandbox('d');
  const outside = sb.outside();
  t.teardown(() => sb.cleanup());
  sb.plugin('bridge', { command: 'VERSION', conf: VERSION_IN });
  const { pid } = await engineUp(sb);
  t.teardown(() => { try { process.kill(pid, 'SIGKILL'); } catch { /* exited */ } });
  t.is(ipJson(outside, 'link', 'show', 'wan0').length, 1);
  ip('netns', 'del', sb.host);
  t.true(await gone(pid, 8000), 'the engine exited');
  // The uplink's peer lives in the host namespace: it goes when that namespace is freed.
  let freed = false;
  for (let i = 0; i < 100 && !freed; i++) {
    freed = ipJson(outside, 'link', 'show').every((l: { ifname: string }) => l.ifname !== 'wan0');
    if (!freed) await sleep(100);
  }
  t.true(freed, 'wan0 (peer of the host\'s uplink) is gone');
});

netnsTest('a rebuilt bundle is picked up: the engine finishes, exits, and the next call starts the new one', async (t) => {
  const sb = new Sandbox('b');
  t.teardown(() => sb.cleanup());
  sb.plugin('bridge', { command: 'VERSION', conf: VERSION_IN });
  const old = await engineUp(sb);
  // What a build does to the bundle: a new file renamed over it (here with the same content).
  const bundle = join(BIN, '.lib', 'engine.cjs');
  const tmp = `${bundle}.test${process.pid}`;
  writeFileSync(tmp, readFileSync(bundle));
  renameSync(tmp, bundle);
  t.true(await gone(old.pid, 8000), 'the old engine exited');
  const call = sb.plugin('bridge', { command: 'VERSION', conf: VERSION_IN });
  t.is(call.code, 0);
  const next = await engineUp(sb);
  t.not(next.pid, old.pid);
  t.deepEqual(enginePids(sb.host), [next.pid]);
});

netnsTest('CNIKIT_ENGINE_IDLE: an idle engine exits by itself', async (t) => {
  const sb = new Sandbox('i');
  t.teardown(() => sb.cleanup());
  sb.plugin('bridge', { command: 'VERSION', conf: VERSION_IN, env: { CNIKIT_ENGINE_IDLE: '1' } });
  const up = await engineUp(sb);
  t.is(up.idle, 1);
  t.true(await gone(up.pid, 8000));
  t.deepEqual(enginePids(sb.host), []);
});

/** One network's life as a runtime drives it: ADDs, an error, CHECK, DEL; then what is on disk. */
function scenario(sb: Sandbox, env: Record<string, string>): unknown {
  const norm = (s: string) => s.split(sb.tmp).join('TMP').split(sb.id).join('SB')
    .replace(/([0-9a-f]{2}:){5}[0-9a-f]{2}/g, 'MAC').replace(/veth[0-9a-f]{8}/g, 'VETH');
  const out: unknown[] = [];
  const call = (type: string, c: Parameters<Sandbox['plugin']>[1]) => {
    const r = sb.plugin(type, { ...c, env: { ...env, ...c.env } });
    out.push({ type, command: c.command, code: r.code, stdout: norm(r.stdout) });
    return r;
  };
  const ns = sb.container('c1');
  const ns2 = sb.container('c2');
  const a1 = call('bridge', { command: 'ADD', containerId: 'c1', netns: Sandbox.path(ns), conf: bridgeConf(sb) });
  call('portmap', { command: 'ADD', containerId: 'c1', netns: Sandbox.path(ns), conf: portmapConf(a1.json, 8080) });
  call('bridge', { command: 'ADD', containerId: 'c2', netns: Sandbox.path(ns2), conf: bridgeConf(sb) });
  call('bridge', { command: 'ADD', containerId: 'c3', netns: '/run/netns/none', conf: bridgeConf(sb) });
  call('bridge', { command: 'ADD', containerId: 'c4', netns: Sandbox.path(ns2), conf: bridgeConf(sb, { mtu: 'big' }) });
  call('host-local', { command: 'ADD', containerId: 'c5', conf: { cniVersion: '1.0.0', name: 'engnet', ipam: bridgeConf(sb).ipam } });
  call('bridge', { command: 'CHECK', containerId: 'c1', netns: Sandbox.path(ns), conf: { ...bridgeConf(sb), prevResult: a1.json } });
  call('bridge', { command: 'DEL', containerId: 'c2', netns: Sandbox.path(ns2), conf: bridgeConf(sb) });
  call('bridge', { command: 'DEL', containerId: 'c2', netns: Sandbox.path(ns2), conf: bridgeConf(sb) });
  const dir = join(sb.tmp, 'ipam', 'engnet');
  const files = Object.fromEntries(readdirSync(dir).filter((f) => f !== 'lock').sort().map((f) => [f, readFileSync(join(dir, f), 'utf8')]));
  const nft = sb.exec(sb.host, NFT, ['list', 'ruleset']).stdout.replace(/# handle \d+/g, '');
  const links = ipJson(sb.host, 'link', 'show').map((l: { ifname: string; operstate: string }) => `${norm(l.ifname)} ${l.operstate}`).sort();
  return { out, files, nft, links };
}

netnsTest('results, errors and on-disk state are the same with the engine and without it', async (t) => {
  const fresh = new Sandbox('f');
  t.teardown(() => fresh.cleanup());
  const warm = new Sandbox('w');
  t.teardown(() => warm.cleanup());
  const off = scenario(fresh, { CNIKIT_ENGINE: 'off' });
  t.deepEqual(enginePids(fresh.host), []);
  warm.plugin('bridge', { command: 'VERSION', conf: VERSION_IN });
  const up = await engineUp(warm);
  const on = scenario(warm, {});
  t.is(status(warm)!.calls, up.calls + 9, 'every call of the scenario was served by the engine');
  t.deepEqual(on, off);
});

netnsTest('a delegate exec\'d from inside the engine runs fresh instead of waiting for the engine', async (t) => {
  const sb = new Sandbox('n');
  t.teardown(() => sb.cleanup());
  // host-local found first in another directory: not "our own beside self", so bridge execs it.
  const other = join(sb.tmp, 'other-bin');
  mkdirSync(other);
  copyFileSync(join(BIN, 'host-local'), join(other, 'host-local'));
  sb.plugin('bridge', { command: 'VERSION', conf: VERSION_IN });
  const up = await engineUp(sb);
  const ns = sb.container('c1');
  const add = await sb.pluginAsync('bridge', { command: 'ADD', containerId: 'c1', netns: Sandbox.path(ns), conf: bridgeConf(sb), path: `${other}:${BIN}` });
  t.is(add.code, 0, add.stdout + add.stderr);
  t.deepEqual(leases(sb), ['10.79.0.2', 'fd79::2']);
  t.deepEqual(Object.keys(status(sb)!.perCall), ['bridge ADD'], 'host-local ran fresh, not in the engine');
  t.is(status(sb)!.pid, up.pid);
});

const REF_HOST_LOCAL = '/usr/lib/cni/host-local';
netnsTest.needs({ met: existsSync(REF_HOST_LOCAL), reason: `no reference plugin at ${REF_HOST_LOCAL}` })('an exec\'d delegate (the reference host-local) never blocks the engine: another call is served while it runs, and its stderr reaches the caller', async (t) => {
  const sb = new Sandbox('xd');
  t.teardown(() => sb.cleanup());
  // An IPAM type that says something on stderr, then waits (10 s at most) for the test's word
  // before it execs the reference host-local: while it waits, its bridge ADD is in the engine.
  const bin = join(sb.tmp, 'ipam-bin');
  const started = join(sb.tmp, 'started');
  const go = join(sb.tmp, 'go');
  mkdirSync(bin);
  writeFileSync(join(bin, 'ref-ipam'), `#!/bin/sh
echo "ref-ipam: $CNI_COMMAND $CNI_CONTAINERID" >&2
if [ "$CNI_COMMAND" = ADD ]; then
  touch ${started}; i=0
  while [ ! -e ${go} ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
fi
exec ${REF_HOST_LOCAL}
`, { mode: 0o755 });
  sb.plugin('bridge', { command: 'VERSION', conf: VERSION_IN });
  const up = await engineUp(sb);
  const [c1, c2] = [sb.container('c1'), sb.container('c2')];
  const slowConf = bridgeConf(sb, { ipam: { ...bridgeConf(sb).ipam, type: 'ref-ipam' } });
  const slow = sb.pluginAsync('bridge', { command: 'ADD', containerId: 'slow', netns: Sandbox.path(c1), conf: slowConf, path: `${bin}:${BIN}` });
  for (let i = 0; i < 100 && !existsSync(started); i++) await sleep(100);
  t.true(existsSync(started), 'the delegate runs');

  // Meanwhile: an ADD with our own host-local in-process, and the status, both from the engine.
  const fast = sb.plugin('bridge', { command: 'ADD', containerId: 'fast', netns: Sandbox.path(c2), conf: bridgeConf(sb, { name: 'engnet2', bridge: 'cnk2', ipam: { ...bridgeConf(sb).ipam, dataDir: join(sb.tmp, 'ipam2'), ranges: [[{ subnet: '10.78.0.0/24' }]] } }) });
  t.is(fast.code, 0, fast.stdout);
  const during = status(sb)!;
  t.is(during.pid, up.pid);
  t.is(during.inFlight, 1, 'the slow ADD is still in flight');
  t.is(during.perCall['bridge ADD']?.count, 1, 'the other ADD was served by the engine meanwhile');
  t.is(during.dropped + during.declined, 0, 'and not run fresh');

  writeFileSync(go, '');
  const done = await slow;
  t.is(done.code, 0, done.stdout + done.stderr);
  t.regex(done.stderr, /^ref-ipam: ADD slow$/m, 'the delegate\'s stderr reached its caller');
  t.deepEqual(done.json.ips.map((i: { address: string }) => i.address).sort(), ['10.79.0.2/24', 'fd79::2/64'], 'addresses from the reference host-local');
  t.deepEqual(leases(sb), ['10.79.0.2', 'fd79::2']);
  const del = sb.plugin('bridge', { command: 'DEL', containerId: 'slow', netns: Sandbox.path(c1), conf: { ...slowConf, prevResult: done.json }, path: `${bin}:${BIN}` });
  t.is(del.code, 0, del.stdout);
  t.regex(del.stderr, /^ref-ipam: DEL slow$/m);
  t.deepEqual(leases(sb), []);
  t.is(status(sb)!.perCall['bridge DEL']?.count, 1);
});

netnsTest('the config file: engine = off starts and uses none, nostart uses a running one only', async (t) => {
  const sb = new Sandbox('f');
  t.teardown(() => sb.cleanup());
  const conf = (text: string) => { const f = join(sb.tmp, `engine-${text.replace(/\W/g, '')}.conf`); writeFileSync(f, `# test\n${text}\n`); return f; };
  const off = conf('engine = off');
  const nostart = conf('engine = nostart');
  const call = (file: string) => sb.plugin('bridge', { command: 'VERSION', conf: VERSION_IN, env: { CNIKIT_ENGINE_CONF: file } });
  t.is(call(off).code, 0);
  t.is(call(nostart).code, 0);
  await sleep(1000);
  t.deepEqual(enginePids(sb.host), [], 'neither started an engine');
  sb.plugin('bridge', { command: 'VERSION', conf: VERSION_IN });
  const up = await engineUp(sb);
  t.is(call(nostart).code, 0);
  t.is(call(off).code, 0);
  t.is(status(sb)!.calls, up.calls + 1, 'nostart used the running engine, off did not');
});

netnsTest('the systemd unit\'s command runs the engine in the foreground; SIGTERM stops it', async (t) => {
  const sb = new Sandbox('s');
  t.teardown(() => sb.cleanup());
  const unit = sb.exec(sb.host, join(BIN, 'cnikit'), ['engine', 'unit'], { env: { PATH: process.env.PATH } }).stdout;
  const env = Object.fromEntries(/^Environment=(.*)$/m.exec(unit)![1]!.split(' ').map((kv) => kv.split('=') as [string, string]));
  const argv = /^ExecStart=(.*)$/m.exec(unit)![1]!.split(' ');
  const child = spawn('ip', ['netns', 'exec', sb.host, ...argv], { env: { PATH: process.env.PATH, ...env } });
  let err = '';
  child.stderr.on('data', (d) => { err += d; });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const up = await engineUp(sb);
  t.is(up.idle, 0);
  t.is(sb.plugin('bridge', { command: 'VERSION', conf: VERSION_IN }).code, 0);
  t.is(status(sb)!.calls, 1);
  process.kill(up.pid, 'SIGTERM');
  t.is(await exited, 0);
  t.regex(err, /"msg":"listening"/);
  t.regex(err, /"msg":"exit","reason":"SIGTERM"/);
});

netnsTest('cnikit engine start, status and stop', async (t) => {
  const sb = new Sandbox('c');
  t.teardown(() => sb.cleanup());
  const cnikit = (...args: string[]) => sb.exec(sb.host, join(BIN, 'cnikit'), args, { env: { PATH: process.env.PATH } });
  t.is(cnikit('engine', 'status').status, 5);
  const start = cnikit('engine', 'start');
  t.is(start.status, 0, start.stderr);
  const up = status(sb)!;
  t.regex(start.stdout, new RegExp(`engine ${up.pid} is running`));
  sb.plugin('host-local', { command: 'VERSION', conf: VERSION_IN });
  const json = cnikit('engine', 'status', '--json');
  t.is(json.status, 0);
  t.like(JSON.parse(json.stdout), { pid: up.pid, calls: 1, perCall: { 'host-local VERSION': { count: 1 } } });
  t.regex(cnikit('engine', 'status').stdout, /host-local VERSION\s+1 calls\s+p50/);
  const stop = cnikit('engine', 'stop');
  t.is(stop.stdout, `stopping engine ${up.pid}\n`);
  t.true(await gone(up.pid, 5000));
  t.is(cnikit('engine', 'stop').status, 5);
});

/**
 * CniRuntime's sequencing with FakeExec (no process, no root): ADD order and prevResult
 * threading, DEL in reverse with the cached result, rollback of a failed ADD, version
 * negotiation, CHECK/STATUS/GC and their disable flags, and the results cache written only after
 * success and removed after DEL. The real plugins are driven by netns-tests/cli.test.ts.
 */
import test, { type ExecutionContext } from 'ava';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CniCode, CniError } from '../pkg/cni/errors.ts';
import { parseConfList } from './conf.ts';
import { FAKE_BIN, type FakeCall, FakeExec, type FakePlugin } from './fake-exec.ts';
import { type ChainEvent, CniRuntime, type RuntimeConf } from './runtime.ts';

const ATT: RuntimeConf = { containerId: 'ctr1', netns: '/run/netns/ctr1', ifName: 'eth0', args: [], capabilityArgs: {} };

/** A main plugin's result: one interface in the container and one address. */
function mainResult(call: FakeCall): unknown {
  if (call.command !== 'ADD') return undefined;
  return {
    cniVersion: call.conf.cniVersion,
    interfaces: [{ name: 'eth0', sandbox: call.env.CNI_NETNS }],
    ips: [{ address: '10.1.0.2/24', gateway: '10.1.0.1', interface: 0 }],
  };
}

/** A chained plugin that adds a DNS server to what it got. */
function dnsAdder(call: FakeCall): unknown {
  if (call.command !== 'ADD') return undefined;
  return { ...(call.conf.prevResult as object), dns: { nameservers: ['10.1.0.1'] } };
}

function fail(code: number, msg: string, details?: string): never {
  throw new CniError(code as CniCode, msg, details);
}

interface Setup { rt: CniRuntime; fake: FakeExec; events: ChainEvent[]; cacheDir: string }

function setup(t: ExecutionContext, plugins: Record<string, FakePlugin>, env: NodeJS.ProcessEnv = { PATH: '/usr/bin' }): Setup {
  const cacheDir = mkdtempSync(join(tmpdir(), 'cnikit-runtime-'));
  t.teardown(() => rmSync(cacheDir, { recursive: true, force: true }));
  const fake = new FakeExec(plugins);
  const events: ChainEvent[] = [];
  const rt = new CniRuntime({ path: ['/opt/a', '/opt/b'], cacheDir, env, exec: fake, onEvent: (e) => events.push(e) });
  return { rt, fake, events, cacheDir };
}

function list(o: Record<string, unknown> = {}, plugins: Record<string, unknown>[] = [{ type: 'main' }, { type: 'dns' }]) {
  return parseConfList(Buffer.from(JSON.stringify({ cniVersion: '1.0.0', name: 'net', plugins, ...o })), 'net.conflist');
}

test('ADD runs the chain in order, threading each result into the next plugin\'s prevResult, and caches the final one', async (t) => {
  const { rt, fake, cacheDir } = setup(t, { main: { handle: mainResult }, dns: { handle: dnsAdder } }, { PATH: '/usr/bin', CNI_COMMAND: 'stale' });
  const l = list({}, [{ type: 'main', bridge: 'br0' }, { type: 'dns', capabilities: { aliases: true, portMappings: false } }]);
  const conf = { ...ATT, args: [['IgnoreUnknown', '1'], ['K8S_POD_NAME', 'web']] as [string, string][], capabilityArgs: { aliases: ['www'], portMappings: [{ hostPort: 1 }], mac: 'x' } };
  const r = await rt.add(l, conf);

  t.deepEqual(fake.order('ADD'), ['main', 'dns']);
  const [first, second] = fake.calls;
  t.deepEqual(first!.conf, { type: 'main', bridge: 'br0', cniVersion: '1.0.0', name: 'net' }, 'no prevResult and no runtimeConfig for the first plugin');
  t.deepEqual(second!.conf.prevResult, { cniVersion: '1.0.0', interfaces: [{ name: 'eth0', sandbox: '/run/netns/ctr1' }], ips: [{ address: '10.1.0.2/24', gateway: '10.1.0.1', interface: 0 }] });
  t.deepEqual(second!.conf.runtimeConfig, { aliases: ['www'] }, 'only capabilities the plugin declares true, and only when given');
  t.deepEqual(first!.env, {
    PATH: '/usr/bin', CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'ctr1', CNI_NETNS: '/run/netns/ctr1', CNI_IFNAME: 'eth0',
    CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAME=web', CNI_PATH: '/opt/a:/opt/b',
  }, 'the base environment given, with the six CNI_* on top');
  t.deepEqual(r.dns, { nameservers: ['10.1.0.1'] });

  const cached = rt.cache.read('net', 'ctr1', 'eth0')!;
  t.is(cached.file, join(cacheDir, 'results', 'net-ctr1-eth0'));
  t.deepEqual(cached.result, { cniVersion: '1.0.0', interfaces: [{ name: 'eth0', sandbox: '/run/netns/ctr1' }], ips: [{ address: '10.1.0.2/24', gateway: '10.1.0.1', interface: 0 }], dns: { nameservers: ['10.1.0.1'] } });
  t.deepEqual(cached.config, l.bytes);
  t.deepEqual(cached.cniArgs, conf.args);
  t.deepEqual(cached.capabilityArgs, conf.capabilityArgs);
  t.is(cached.netns, '/run/netns/ctr1');
});

test('ADD refuses an attachment that is already cached, before calling any plugin', async (t) => {
  const { rt, fake } = setup(t, { main: { handle: mainResult }, dns: {} });
  await rt.add(list(), ATT);
  fake.calls.length = 0;
  const err = await t.throwsAsync(rt.add(list(), ATT), { instanceOf: CniError, message: /container "ctr1" is already attached to network "net" as eth0/ });
  t.is(err?.code, CniCode.InvalidEnv);
  t.deepEqual(fake.calls, []);
});

test('ADD checks the attachment (container id, ifname, netns) before calling any plugin', async (t) => {
  const { rt, fake } = setup(t, { main: {}, dns: {} });
  await t.throwsAsync(rt.add(list(), { ...ATT, containerId: 'bad id' }), { instanceOf: CniError, message: /containerID/ });
  await t.throwsAsync(rt.add(list(), { ...ATT, ifName: 'a/b' }), { instanceOf: CniError });
  await t.throwsAsync(rt.add(list(), { ...ATT, netns: '' }), { message: /ADD needs a network namespace path/ });
  t.deepEqual(fake.calls, []);
});

test('a failed ADD DELs every plugin it reached, in reverse, with the last result; nothing is cached', async (t) => {
  const { rt, fake, events } = setup(t, {
    main: { handle: mainResult }, dns: { handle: dnsAdder },
    boom: { handle: (c) => (c.command === 'ADD' ? fail(CniCode.TryAgainLater, 'boom: refuses', 'injected') : undefined) },
    never: {},
  });
  const l = list({}, [{ type: 'main' }, { type: 'dns' }, { type: 'boom' }, { type: 'never' }]);
  const err = await t.throwsAsync(rt.add(l, ATT), { instanceOf: CniError });
  t.is(err!.message, 'plugin type="boom" name="net" failed (add): boom: refuses');
  t.is(err!.code, CniCode.TryAgainLater, 'the plugin\'s code is kept');
  t.is(err!.details, 'injected');
  t.deepEqual(fake.calls.map((c) => `${c.command} ${c.type}`), ['ADD main', 'ADD dns', 'ADD boom', 'DEL boom', 'DEL dns', 'DEL main']);
  const lastResult = fake.calls[2]!.conf.prevResult;
  for (const del of fake.calls.slice(3)) t.deepEqual(del.conf.prevResult, lastResult, `DEL ${del.type} carries the last result`);
  t.deepEqual(events.filter((e) => e.op === 'ROLLBACK').map((e) => e.type), ['boom', 'dns', 'main']);
  t.is(rt.cache.read('net', 'ctr1', 'eth0'), undefined);
  t.deepEqual(rt.cache.list(), []);
});

test('a failed ADD whose rollback also fails says so in its details, and keeps going', async (t) => {
  const { rt, fake } = setup(t, {
    main: { handle: (c) => (c.command === 'DEL' ? fail(CniCode.Internal, 'cannot undo') : mainResult(c)) },
    boom: { handle: (c) => (c.command === 'ADD' ? fail(CniCode.InvalidConfig, 'bad') : undefined) },
  });
  const err = await t.throwsAsync(rt.add(list({}, [{ type: 'main' }, { type: 'boom' }]), ATT), { instanceOf: CniError });
  t.is(err!.code, CniCode.InvalidConfig);
  t.is(err!.details, 'rollback: plugin type="main" name="net" failed (del): cannot undo');
  t.deepEqual(fake.calls.map((c) => `${c.command} ${c.type}`), ['ADD main', 'ADD boom', 'DEL boom', 'DEL main']);
});

test('a rollback at 0.3.1 sends DEL without prevResult (it came with 0.4.0)', async (t) => {
  const { rt, fake } = setup(t, { main: { handle: mainResult }, boom: { handle: (c) => (c.command === 'ADD' ? fail(CniCode.Internal, 'no') : undefined) } });
  await t.throwsAsync(rt.add(list({ cniVersion: '0.3.1' }, [{ type: 'main' }, { type: 'boom' }]), ATT));
  const dels = fake.calls.filter((c) => c.command === 'DEL');
  t.is(dels.length, 2);
  for (const d of dels) t.false('prevResult' in d.conf);
});

test('DEL runs the chain in reverse, each plugin given the cached result, then removes the cache entry', async (t) => {
  const { rt, fake } = setup(t, { main: { handle: mainResult }, dns: { handle: dnsAdder } });
  const l = list({}, [{ type: 'main' }, { type: 'dns', capabilities: { portMappings: true } }]);
  const caps = { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }] };
  const added = await rt.add(l, { ...ATT, args: [['K8S_POD_NAME', 'web']], capabilityArgs: caps });
  fake.calls.length = 0;

  // As `cnikit del` without CNI_ARGS/CAP_ARGS or netns: the cached ones are used.
  await rt.del(l, { ...ATT, netns: '', args: [], capabilityArgs: {} });
  t.deepEqual(fake.order('DEL'), ['dns', 'main']);
  for (const c of fake.calls) {
    t.deepEqual(c.conf.prevResult, { cniVersion: '1.0.0', interfaces: added.interfaces, ips: added.ips, dns: added.dns });
    t.is(c.env.CNI_ARGS, 'K8S_POD_NAME=web');
    t.is(c.env.CNI_NETNS, '/run/netns/ctr1');
  }
  t.deepEqual(fake.calls[0]!.conf.runtimeConfig, caps);
  t.is(rt.cache.read('net', 'ctr1', 'eth0'), undefined);

  fake.calls.length = 0;
  await rt.del(l, ATT);
  t.deepEqual(fake.order('DEL'), ['dns', 'main'], 'DEL without a cache entry still runs');
  for (const c of fake.calls) t.false('prevResult' in c.conf);
});

test('a failed DEL stops the chain and keeps the cache entry, so DEL can be retried', async (t) => {
  let failing = true;
  const { rt, fake } = setup(t, { main: { handle: mainResult }, dns: { handle: (c) => (c.command === 'DEL' && failing ? fail(CniCode.TryAgainLater, 'busy') : dnsAdder(c)) } });
  await rt.add(list(), ATT);
  fake.calls.length = 0;
  await t.throwsAsync(rt.del(list(), ATT), { message: 'plugin type="dns" name="net" failed (del): busy' });
  t.deepEqual(fake.order('DEL'), ['dns']);
  t.truthy(rt.cache.read('net', 'ctr1', 'eth0'));
  failing = false;
  await rt.del(list(), ATT);
  t.is(rt.cache.read('net', 'ctr1', 'eth0'), undefined);
});

test('DEL discards an unreadable cache entry and runs without prevResult (libcni ≥1.2)', async (t) => {
  const { rt, fake, cacheDir } = setup(t, { main: {}, dns: {} });
  mkdirSync(join(cacheDir, 'results'), { recursive: true });
  writeFileSync(join(cacheDir, 'results', 'net-ctr1-eth0'), '{');
  await rt.del(list(), ATT);
  t.deepEqual(fake.order('DEL'), ['dns', 'main']);
  for (const c of fake.calls) t.false('prevResult' in c.conf);
  t.false(existsSync(join(cacheDir, 'results', 'net-ctr1-eth0')));
});

test('DEL at 0.3.1 sends no prevResult even with a cached result', async (t) => {
  const { rt, fake } = setup(t, { main: { handle: mainResult }, dns: {} });
  const l = list({ cniVersion: '0.3.1' });
  await rt.add(l, ATT);
  fake.calls.length = 0;
  await rt.del(l, ATT);
  t.deepEqual(fake.order('DEL'), ['dns', 'main']);
  for (const c of fake.calls) t.false('prevResult' in c.conf);
});

test('CHECK runs in order with the cached result; disableCheck skips it; needs 0.4.0 and a cached ADD', async (t) => {
  const { rt, fake } = setup(t, { main: { handle: mainResult }, dns: { handle: dnsAdder } });
  const err = await t.throwsAsync(rt.check(list(), ATT), { instanceOf: CniError, message: /^no cached result for container "ctr1" on network "net" \(eth0\)$/ });
  t.is(err!.reason, 'not-cached');
  t.is(err!.code, CniCode.UnknownContainer);

  const added = await rt.add(list(), ATT);
  fake.calls.length = 0;
  await rt.check(list(), ATT);
  t.deepEqual(fake.order('CHECK'), ['main', 'dns']);
  for (const c of fake.calls) t.deepEqual((c.conf.prevResult as { dns?: unknown }).dns, added.dns);

  fake.calls.length = 0;
  await rt.check(list({ disableCheck: true }), ATT);
  t.deepEqual(fake.calls, []);

  const old = await t.throwsAsync(rt.check(list({ cniVersion: '0.3.1' }), ATT), { instanceOf: CniError });
  t.is(old!.code, CniCode.IncompatibleVersion);
  t.is(old!.message, 'configuration version "0.3.1" does not support the CHECK command');
  t.deepEqual(fake.calls, []);
});

test('STATUS asks every plugin in order without attachment variables, stops at the first "not available"; none before 1.1.0', async (t) => {
  const { rt, fake } = setup(t, { main: {}, dns: { handle: (c) => (c.command === 'STATUS' ? fail(CniCode.NotAvailable, 'pool exhausted') : undefined) }, last: {} });
  t.false(await rt.status(list()), '1.0.0 has no STATUS');
  t.deepEqual(fake.calls, []);

  const l = list({ cniVersion: '1.1.0' }, [{ type: 'main', capabilities: { mac: true } }, { type: 'dns' }, { type: 'last' }]);
  const err = await t.throwsAsync(rt.status(l), { instanceOf: CniError });
  t.is(err!.code, CniCode.NotAvailable);
  t.deepEqual(fake.order('STATUS'), ['main', 'dns']);
  const call = fake.calls[0]!;
  t.deepEqual([call.env.CNI_CONTAINERID, call.env.CNI_NETNS, call.env.CNI_IFNAME, call.env.CNI_ARGS], ['', '', '', '']);
  t.false('runtimeConfig' in call.conf);

  const ok = setup(t, { main: {}, dns: {} });
  t.true(await ok.rt.status(list({ cniVersion: '1.1.0' })));
  t.deepEqual(ok.fake.order('STATUS'), ['main', 'dns']);
});

test('GC DELs cached attachments that are not valid (with their cached args), then sends GC with the valid list', async (t) => {
  const { rt, fake } = setup(t, { main: { handle: mainResult }, dns: {} });
  const l = list({ cniVersion: '1.1.0' });
  await rt.add(l, ATT);
  await rt.add(l, { ...ATT, containerId: 'ctr2', netns: '/run/netns/ctr2', args: [['K8S_POD_NAME', 'b']] });
  fake.calls.length = 0;

  const removed = await rt.gc(l, [{ containerID: 'ctr1', ifname: 'eth0' }]);
  t.deepEqual(removed.map((c) => c.containerId), ['ctr2']);
  t.deepEqual(fake.calls.map((c) => `${c.command} ${c.type} ${c.env.CNI_CONTAINERID}`), ['DEL dns ctr2', 'DEL main ctr2', 'GC main ', 'GC dns ']);
  t.is(fake.calls[0]!.env.CNI_NETNS, '/run/netns/ctr2');
  t.is(fake.calls[0]!.env.CNI_ARGS, 'K8S_POD_NAME=b');
  const gc = fake.calls[2]!.conf;
  t.deepEqual(gc['cni.dev/valid-attachments'], [{ containerID: 'ctr1', ifname: 'eth0' }]);
  t.deepEqual(gc['cni.dev/attachments'], gc['cni.dev/valid-attachments'], 'spec 1.1.0\'s old key as well, as libcni sends');
  t.deepEqual(rt.cache.list('net').map((c) => c.containerId), ['ctr1']);
});

test('GC: disableGC does nothing; before 1.1.0 only the stale attachments are DELeted; errors are collected', async (t) => {
  const { rt, fake } = setup(t, { main: { handle: mainResult }, dns: { handle: (c) => (c.command === 'GC' ? fail(CniCode.Internal, 'gc failed') : c.conf.prevResult) } });
  await rt.add(list({ cniVersion: '1.1.0' }), ATT);
  fake.calls.length = 0;
  t.deepEqual(await rt.gc(list({ cniVersion: '1.1.0', disableGC: true }), []), []);
  t.deepEqual(fake.calls, []);

  t.deepEqual((await rt.gc(list(), [])).map((c) => c.containerId), ['ctr1'], '1.0.0: DEL only');
  t.deepEqual(fake.calls.map((c) => c.command), ['DEL', 'DEL']);

  fake.calls.length = 0;
  const err = await t.throwsAsync(rt.gc(list({ cniVersion: '1.1.0' }), []), { instanceOf: CniError });
  t.is(err!.message, 'GC of network "net" had 1 error(s)');
  t.is(err!.details, 'plugin type="dns" name="net" failed (gc): gc failed');
  t.deepEqual(fake.order('GC'), ['main', 'dns'], 'GC went on past the failing plugin');
});

test('versions: one declared version asks no plugin; cniVersions picks the highest all plugins support, asked once per type', async (t) => {
  const { rt, fake, events } = setup(t, { main: { versions: ['0.4.0', '1.0.0', '1.1.0'] }, dns: { versions: ['0.4.0', '1.0.0'] } });
  t.is(await rt.negotiate(list({ cniVersion: '1.1.0' })), '1.1.0');
  t.deepEqual(fake.versionCalls, []);

  const l = list({ cniVersion: '0.4.0', cniVersions: ['1.0.0', '1.1.0'] }, [{ type: 'main' }, { type: 'dns' }, { type: 'main' }]);
  t.is(await rt.negotiate(l), '1.0.0');
  t.deepEqual(fake.versionCalls.map((c) => [c.type, c.cniVersion]), [['main', '1.1.0'], ['dns', '1.1.0']], 'each type once, asked with the highest candidate');
  t.deepEqual(fake.versionCalls[0]!.env, { PATH: '/usr/bin' }, 'VERSION gets the base environment');
  t.deepEqual(events.filter((e) => e.op === 'VERSION').map((e) => e.total), [2]);

  t.is(await rt.negotiate(l), '1.0.0');
  t.is(fake.versionCalls.length, 2, 'answers are remembered');
  t.is(await rt.negotiate(l, '0.4.0'), '0.4.0', 'a preferred candidate (the cached result\'s) wins without asking');

  await rt.add(l, ATT);
  t.is(fake.calls[0]!.conf.cniVersion, '1.0.0', 'ADD runs at the negotiated version');
});

test('versions: no common version is code 1 naming what each plugin supports; a failing VERSION fails ADD before any ADD', async (t) => {
  const { rt } = setup(t, { main: { versions: ['1.1.0'] }, dns: { versions: ['0.4.0', '1.0.0'] } });
  const err = await t.throwsAsync(rt.negotiate(list({ cniVersions: ['1.0.0', '1.1.0'] })), { instanceOf: CniError });
  t.is(err!.code, CniCode.IncompatibleVersion);
  t.is(err!.message, 'no CNI version of network "net" is supported by all its plugins');
  t.is(err!.details, 'the list allows [1.1.0 1.0.0]; main: [1.1.0]; dns: [0.4.0 1.0.0]');

  const broken = setup(t, { main: { versions: new CniError(CniCode.DecodingFailure, 'cannot read the VERSION output') }, dns: {} });
  await t.throwsAsync(broken.rt.add(list({ cniVersions: ['1.0.0', '1.1.0'] }), ATT), { message: 'cannot read the VERSION output' });
  t.deepEqual(broken.fake.calls, []);
});

test('DEL and CHECK run at the cached result\'s version without asking VERSION again', async (t) => {
  const { rt, fake } = setup(t, { main: { versions: ['1.0.0'], handle: mainResult }, dns: { versions: ['1.0.0', '1.1.0'] } });
  const l = list({ cniVersion: '1.0.0', cniVersions: ['1.1.0'] });
  await rt.add(l, ATT);
  t.is(fake.versionCalls.length, 2);
  const fresh = new CniRuntime({ path: ['/opt/a'], cacheDir: rt.cache.dir.replace(/\/results$/, ''), env: {}, exec: fake });
  await fresh.check(l, ATT);
  await fresh.del(l, ATT);
  t.is(fake.versionCalls.length, 2);
  t.deepEqual(fake.calls.filter((c) => c.command !== 'ADD').map((c) => `${c.command} ${c.conf.cniVersion}`), ['CHECK 1.0.0', 'CHECK 1.0.0', 'DEL 1.0.0', 'DEL 1.0.0']);
});

test('plugins not found: an empty CNI_PATH and an unknown type both carry reason plugin-not-found', async (t) => {
  const none = new CniRuntime({ path: [], cacheDir: '/nonexistent', env: {}, exec: new FakeExec({}) });
  const empty = t.throws(() => none.find('bridge'), { instanceOf: CniError, message: 'cannot find plugin "bridge": CNI_PATH is empty' });
  t.is(empty!.reason, 'plugin-not-found');

  const { rt, fake } = setup(t, { main: { handle: mainResult } });
  const err = await t.throwsAsync(rt.add(list({}, [{ type: 'main' }, { type: 'missing' }]), ATT), { instanceOf: CniError });
  t.is(err!.message, 'plugin type="missing" name="net" failed (add): failed to find plugin "missing" in path [/opt/a /opt/b]');
  t.is(err!.reason, 'plugin-not-found');
  t.deepEqual(fake.calls.map((c) => `${c.command} ${c.type}`), ['ADD main', 'DEL main'], 'and what was made is rolled back');
  t.is(fake.calls[0]!.file, join(FAKE_BIN, 'main'));
});

test('a plugin that reports EPERM fails with reason permission; other failures have none', async (t) => {
  const { rt } = setup(t, {
    main: { handle: (c) => (c.command === 'ADD' ? fail(CniCode.Internal, 'failed to create bridge "br0"', 'RTM_NEWLINK: EPERM') : undefined) },
    other: { handle: (c) => (c.command === 'ADD' ? fail(CniCode.Internal, 'failed to create bridge "br0"', 'RTM_NEWLINK: EEXIST') : undefined) },
  });
  const denied = await t.throwsAsync(rt.add(list({}, [{ type: 'main' }]), ATT), { instanceOf: CniError });
  t.is(denied!.reason, 'permission');
  const other = await t.throwsAsync(rt.add(list({}, [{ type: 'other' }]), ATT), { instanceOf: CniError });
  t.is(other!.reason, undefined);
});

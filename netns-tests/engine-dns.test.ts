/**
 * The DNS responder inside the warm engine, black box: dnsname called through its launcher
 * (dist/bin/dnsname) with an engine up hosts the responder in the engine's process (no second
 * process in the sandbox host), names answer on the gateway and at 127.0.0.11, and the engine's
 * status lists what it serves. A fresh call (CNIKIT_ENGINE=off) uses the engine's responder; a
 * responder process already running gives its directory up to the engine at the engine's first
 * dnsname call there. SIGKILL of the engine loses no name (the next ADD serves all of them again
 * from disk); a stopping engine hands DNS over to a responder process, and the next engine takes
 * it back; results and records are the same with and without the engine.
 *
 * Serial, and in a file named engine*: it sets the engine mode of each call itself (runs once).
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { MAGIC } from '../engine/protocol.ts';
import { ENGINE_CLIENT, NODE, Sandbox, alive, enginePids, ip, until } from './lib/sandbox.ts';
import { netnsSerial as netnsTest } from './lib/netns-test.ts';
import { type Ctr, type Net, ask, dnsConf, makeCtr, makeNet, netnsHolders, netnsInode, resolve, responderPid, responderPidFile } from './lib/dns-lib.ts';

const A: Net = { name: 'neta', bridge: 'br-a', v4: '10.89.0' };
const B: Net = { name: 'netb', bridge: 'br-b', v4: '10.90.0' };
const E: Net = { name: 'nete', bridge: 'br-e', v4: '10.91.0' };
const EMBEDDED = { resolver: '127.0.0.11', upstreams: [] as string[] };
const ON = { CNIKIT_ENGINE: 'on' };
const OFF = { CNIKIT_ENGINE: 'off' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const status = (sb: Sandbox) => sb.engineStatus();
/** Starts the sandbox's engine whatever the suite's mode, and waits until it answers. */
const engineUp = (sb: Sandbox) => sb.engineReady('on')!;

/**
 * Asks `server` for `name` (type A) from netns `ns` every 10 ms (at most 3000 times) until
 * stop(), which says how many were sent and answered and the longest gap between answers.
 */
function startAsker(ns: string, name: string, server: string): { stop(): Promise<{ sent: number; got: number; maxGap: number }> } {
  const script = `
    const s = require('dgram').createSocket('udp4');
    const enc = (n) => Buffer.concat([...n.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])), Buffer.from([0])]);
    const q = Buffer.concat([Buffer.from([0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]), enc(${JSON.stringify(name)}), Buffer.from([0, 1, 0, 1])]);
    let id = 0, got = 0, last = Date.now(), maxGap = 0;
    s.on('message', (m) => { got++; const now = Date.now(); maxGap = Math.max(maxGap, now - last); last = now; });
    const tick = setInterval(() => { q.writeUInt16BE(++id & 0xffff, 0); s.send(q, 53, ${JSON.stringify(server)}); if (id >= 3000) done(); }, 10);
    process.stdin.on('data', () => done()); process.stdin.resume();
    function done() { clearInterval(tick); setTimeout(() => { process.stdout.write(JSON.stringify({ sent: id, got, maxGap })); process.exit(0); }, 300); }`;
  const client = spawn('ip', ['netns', 'exec', ns, NODE, '-e', script], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  client.stdout.on('data', (d) => { out += d; });
  const finished = new Promise((r) => client.on('close', r));
  return {
    async stop() {
      client.stdin.end('stop\n');
      await finished;
      return JSON.parse(out || '{"sent":0,"got":0,"maxGap":0}') as { sent: number; got: number; maxGap: number };
    },
  };
}

/** Every process in the sandbox host netns. */
const hostPids = (sb: Sandbox) => ip('netns', 'pids', sb.host).split(/\s+/).filter(Boolean).map(Number).sort();
const dnsDir = (sb: Sandbox) => join(sb.tmp, 'dns');
const cmdline = (pid: number) => { try { return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0'); } catch { return []; } };

/** dnsname `command` for `c` named `name`, through the launcher, in engine mode `env`. */
function dnsname(sb: Sandbox, command: string, c: Ctr, name: string, env: Record<string, string>, extra: Record<string, unknown> = {}) {
  return sb.plugin('dnsname', {
    command, containerId: c.id, netns: Sandbox.path(c.ns), ifName: c.ifName, cniArgs: `IgnoreUnknown=1;K8S_POD_NAME=${name}`, conf: dnsConf(sb, c, extra), env,
  });
}

function add(t: { is(a: unknown, b: unknown, m?: string): void }, sb: Sandbox, c: Ctr, name: string, env: Record<string, string>, extra: Record<string, unknown> = {}) {
  const r = dnsname(sb, 'ADD', c, name, env, extra);
  t.is(r.code, 0, `ADD ${name}: ${r.stdout} ${r.stderr}`);
  return r;
}

function setup(t: { teardown(fn: () => void): void }, tag: string) {
  const sb = new Sandbox(tag);
  t.teardown(() => sb.cleanup());
  makeNet(sb, A);
  makeNet(sb, B);
  makeNet(sb, E);
  return sb;
}

netnsTest('with the engine up, dnsname ADD hosts the responder in the engine: no second process, names at the gateway and at 127.0.0.11, listed by status', async (t) => {
  const sb = setup(t, 'h');
  const up = await engineUp(sb);
  const a1 = makeCtr(sb, A, 'a1', 5);
  const a2 = makeCtr(sb, A, 'a2', 6);
  const e1 = makeCtr(sb, E, 'e1', 5);
  const e2 = makeCtr(sb, E, 'e2', 6);
  // Every container first: a port added to a bridge later may change its MAC under a peer's ARP entry.
  const a3 = makeCtr(sb, A, 'a3', 7);
  add(t, sb, a1, 'web', ON);
  add(t, sb, a2, 'db', ON);
  const r = add(t, sb, e1, 'front', ON, EMBEDDED);
  t.deepEqual(r.json.dns.nameservers, ['127.0.0.11']);
  add(t, sb, e2, 'back', ON, EMBEDDED);

  t.deepEqual(hostPids(sb), [up.pid], 'the engine is the only process in the host netns');
  t.is(responderPid(sb), up.pid, 'the pid file names the engine');
  t.deepEqual(resolve(sb, a2.ns, { server: '10.89.0.1', name: 'web' }), ['10.89.0.5']);
  t.deepEqual(resolve(sb, a1.ns, { server: '10.89.0.1', name: 'db.dns.cnikit', tcp: true }), ['10.89.0.6']);
  t.deepEqual(resolve(sb, e1.ns, { server: '127.0.0.11', name: 'back' }), ['10.91.0.6']);
  t.is(resolve(sb, e1.ns, { server: '127.0.0.11', name: 'web.dns.cnikit' }), 'rcode 3', 'another network\'s name is unknown there');
  const s = status(sb)!;
  t.deepEqual(s.dns?.map((d) => ({ runDir: d.runDir, networks: d.networks, names: d.names })), [{ runDir: dnsDir(sb), networks: 2, names: 4 }]);
  t.is(s.perCall['dnsname ADD']?.count, 4, 'every ADD ran in the engine');
  t.is(dnsname(sb, 'CHECK', e1, 'front', ON, EMBEDDED).code, 0);

  // A fresh call finds the engine's responder answering its control socket and uses it.
  add(t, sb, a3, 'cache', OFF);
  t.deepEqual(hostPids(sb), [up.pid], 'no responder process was started by the fresh call');
  t.deepEqual(resolve(sb, a1.ns, { server: '10.89.0.1', name: 'cache' }), ['10.89.0.7']);

  // The last DEL stops the hosted responder; the engine lives on.
  for (const [c, n, x] of [[a1, 'web', {}], [a2, 'db', {}], [a3, 'cache', {}], [e1, 'front', EMBEDDED], [e2, 'back', EMBEDDED]] as const) {
    t.is(dnsname(sb, 'DEL', c, n, ON, x).code, 0);
  }
  t.false(existsSync(responderPidFile(sb)));
  t.deepEqual(status(sb)!.dns, []);
  t.true(alive(up.pid));
  t.regex(String(resolve(sb, a1.ns, { server: '10.89.0.1', name: 'web', timeoutMs: 500 })), /^error/, 'nothing listens on the gateway any more');
});

netnsTest('SIGKILL of the engine while it serves DNS: the records are intact and the next ADD serves every name again; nothing holds a container netns', async (t) => {
  const sb = setup(t, 'k');
  const first = await engineUp(sb);
  const a1 = makeCtr(sb, A, 'a1', 5);
  const b1 = makeCtr(sb, B, 'b1', 5);
  const e1 = makeCtr(sb, E, 'e1', 5);
  const e2 = makeCtr(sb, E, 'e2', 6);
  const a2 = makeCtr(sb, A, 'a2', 6);
  add(t, sb, a1, 'web', ON);
  add(t, sb, b1, 'cache', ON);
  add(t, sb, e1, 'front', ON, EMBEDDED);
  add(t, sb, e2, 'back', ON, EMBEDDED);
  t.is(responderPid(sb), first.pid);
  const records = () => Object.fromEntries(readdirSync(dnsDir(sb)).filter((f) => f.endsWith('.records')).sort().map((f) => [f, readFileSync(join(dnsDir(sb), f), 'utf8')]));
  const before = records();

  process.kill(first.pid, 'SIGKILL');
  t.true(await until(() => !alive(first.pid)));
  t.deepEqual(records(), before, 'the records on disk are as they were');
  t.regex(String(resolve(sb, a1.ns, { server: '10.89.0.1', name: 'web', timeoutMs: 500 })), /^error/, 'its sockets closed with it');
  // A container gone while nothing served: its netns must be freed, not kept by the next responder.
  const e2ino = netnsInode(e2.ns);
  t.is(sb.exec(sb.host, 'ip', ['netns', 'del', e2.ns]).status, 0);

  const second = await engineUp(sb);
  t.not(second.pid, first.pid);
  add(t, sb, a2, 'db', ON);
  t.deepEqual(hostPids(sb), [second.pid], 'served by the new engine, no other process');
  t.deepEqual(resolve(sb, a2.ns, { server: '10.89.0.1', name: 'web' }), ['10.89.0.5']);
  t.deepEqual(resolve(sb, a1.ns, { server: '10.89.0.1', name: 'db' }), ['10.89.0.6']);
  t.deepEqual(resolve(sb, b1.ns, { server: '10.90.0.1', name: 'cache' }), ['10.90.0.5'], 'the other network is back too');
  t.deepEqual(resolve(sb, e1.ns, { server: '127.0.0.11', name: 'front' }), ['10.91.0.5'], '127.0.0.11 is back in the container');
  // Processes and their fds (a bind mount left in this process's mount table is not the engine's doing).
  const holders = () => netnsHolders(e2ino).filter((h) => !h.startsWith('a bind mount'));
  t.true(await until(() => holders().length === 0), `nothing holds the deleted netns: ${holders().join(', ')}`);
  t.is(resolve(sb, e1.ns, { server: '127.0.0.11', name: 'back.dns.cnikit' }), 'rcode 3', 'the dead container\'s name is gone');
});

netnsTest('a stopping engine hands DNS over to a responder process: every name keeps answering, and the next engine takes it back', async (t) => {
  const sb = setup(t, 's');
  const up = await engineUp(sb);
  const a1 = makeCtr(sb, A, 'a1', 5);
  const a2 = makeCtr(sb, A, 'a2', 6);
  const e1 = makeCtr(sb, E, 'e1', 5);
  const a3 = makeCtr(sb, A, 'a3', 7);
  add(t, sb, a1, 'web', ON);
  add(t, sb, a2, 'db', ON);
  add(t, sb, e1, 'front', ON, EMBEDDED);

  // A client asks for "web" every 10 ms while the engine stops.
  const asker = startAsker(a1.ns, 'web.dns.cnikit', '10.89.0.1');
  await sleep(300);
  const stop = sb.exec(sb.host, NODE, [ENGINE_CLIENT, 'send', Buffer.concat([MAGIC, Buffer.from('Q')]).toString('base64')], { env: { PATH: process.env.PATH } });
  t.is(stop.status, 0, stop.stderr);
  t.true(await until(() => !alive(up.pid)), 'the engine exited');
  await sleep(500);
  const q = await asker.stop();
  t.log(`hand-over: ${q.sent - q.got} of ${q.sent} queries unanswered, longest gap between answers ${q.maxGap} ms`);

  const pids = hostPids(sb);
  t.is(pids.length, 1, 'one responder process');
  t.true(cmdline(pids[0] ?? 0).includes('--responder'), 'it is a responder process');
  t.is(responderPid(sb), pids[0]!);
  t.deepEqual(resolve(sb, a2.ns, { server: '10.89.0.1', name: 'web' }), ['10.89.0.5']);
  t.deepEqual(resolve(sb, e1.ns, { server: '127.0.0.11', name: 'front' }), ['10.91.0.5']);
  t.regex(readFileSync(join(dnsDir(sb), 'responder.log'), 'utf8'), /"msg":"responder started"/);

  // A new engine takes DNS back at its first dnsname call: that process gives the directory up and exits.
  const next = await engineUp(sb);
  add(t, sb, a3, 'cache', ON);
  t.true(await until(() => !alive(pids[0]!)), 'the responder process exited');
  t.deepEqual(hostPids(sb), [next.pid], 'the engine is the only process again');
  t.is(responderPid(sb), next.pid);
  t.deepEqual(status(sb)!.dns!.map((d) => d.runDir), [dnsDir(sb)]);
  t.deepEqual(resolve(sb, a1.ns, { server: '10.89.0.1', name: 'cache' }), ['10.89.0.7']);
  t.deepEqual(resolve(sb, a2.ns, { server: '10.89.0.1', name: 'web' }), ['10.89.0.5']);
  t.deepEqual(resolve(sb, e1.ns, { server: '127.0.0.11', name: 'front' }), ['10.91.0.5']);
  t.regex(readFileSync(join(dnsDir(sb), 'responder.log'), 'utf8'), /"msg":"giving the run directory up to a warm engine"/);
});

netnsTest('a responder process started by a fresh call is taken over at the engine\'s first dnsname call; fresh calls then use the engine\'s', async (t) => {
  const sb = setup(t, 'u');
  const a1 = makeCtr(sb, A, 'a1', 5);
  const a2 = makeCtr(sb, A, 'a2', 6);
  add(t, sb, a1, 'web', OFF);
  const standalone = responderPid(sb);
  t.deepEqual(enginePids(sb.host), []);
  const up = await engineUp(sb);
  const asker = startAsker(a1.ns, 'web.dns.cnikit', '10.89.0.1');
  await sleep(300);
  add(t, sb, a2, 'db', ON);
  const exited = await until(() => !alive(standalone));
  t.true(exited, `the responder process gave the directory up and exited${exited ? '' : `: engine ${JSON.stringify(status(sb)?.perCall)}, log ${readFileSync(join(dnsDir(sb), 'responder.log'), 'utf8').split('\n').slice(-5).join(' | ')}`}`);
  await sleep(300);
  const q = await asker.stop();
  t.log(`take-over: ${q.sent - q.got} of ${q.sent} queries unanswered, longest gap between answers ${q.maxGap} ms`);
  t.true(q.got > 0 && q.maxGap < 2000, 'names answer across the take-over');
  t.deepEqual(hostPids(sb), [up.pid]);
  t.is(responderPid(sb), up.pid);
  t.is(status(sb)!.perCall['dnsname ADD']?.count, 1, 'the ADD ran in the engine');
  t.deepEqual(status(sb)!.dns!.map((d) => [d.networks, d.names]), [[1, 2]]);
  t.deepEqual(resolve(sb, a1.ns, { server: '10.89.0.1', name: 'db' }), ['10.89.0.6']);
  t.deepEqual(resolve(sb, a2.ns, { server: '10.89.0.1', name: 'web' }), ['10.89.0.5']);
  // A fresh DEL reloads the engine's responder over the control socket.
  t.is(dnsname(sb, 'DEL', a1, 'web', OFF).code, 0);
  t.is(resolve(sb, a2.ns, { server: '10.89.0.1', name: 'web.dns.cnikit' }), 'rcode 3');
  t.deepEqual(hostPids(sb), [up.pid]);
});

netnsTest('a stopped engine serving DNS is replaced by the next fresh ADD; a healthy engine is never killed by a stale pid file', async (t) => {
  const sb = setup(t, 'z');
  const up = await engineUp(sb);
  const a1 = makeCtr(sb, A, 'a1', 5);
  const a2 = makeCtr(sb, A, 'a2', 6);
  const a3 = makeCtr(sb, A, 'a3', 7);
  add(t, sb, a1, 'web', ON);
  process.kill(up.pid, 'SIGSTOP');
  t.teardown(() => { try { process.kill(up.pid, 'SIGCONT'); } catch { /* gone */ } });
  add(t, sb, a2, 'db', ON); // the launcher gets no ack and runs it fresh: the silent engine holding the lock is killed
  t.true(await until(() => !alive(up.pid)), 'the hung engine was killed');
  const pid = responderPid(sb);
  t.true(cmdline(pid).includes('--responder'));
  t.deepEqual(resolve(sb, a1.ns, { server: '10.89.0.1', name: 'db' }), ['10.89.0.6']);
  t.deepEqual(resolve(sb, a2.ns, { server: '10.89.0.1', name: 'web' }), ['10.89.0.5']);

  // A new engine, and a pid file naming it while a silent socket is in place: not ours, so not killed.
  const next = await engineUp(sb);
  process.kill(pid, 'SIGKILL');
  t.true(await until(() => !alive(pid)));
  const { writeFileSync } = await import('node:fs');
  writeFileSync(responderPidFile(sb), `${next.pid}\n`);
  add(t, sb, a3, 'cache', OFF);
  t.true(alive(next.pid), 'the engine named by a stale pid file lives on');
  t.deepEqual(resolve(sb, a1.ns, { server: '10.89.0.1', name: 'cache' }), ['10.89.0.7']);
});

/** A DNS network's life through dnsname: ADDs, errors, CHECK, DEL, GC; then the records on disk. */
function scenario(sb: Sandbox, env: Record<string, string>): unknown {
  const norm = (s: string) => s.split(sb.tmp).join('TMP').split(sb.id).join('SB').replace(/netns \d+/g, 'netns N').replace(/host \d+/g, 'host N').replace(/#\d+/g, '#N').replace(/ \d+ \/run\/netns\//g, ' INO /run/netns/');
  const out: unknown[] = [];
  const c1 = makeCtr(sb, A, 'c1', 5);
  const c2 = makeCtr(sb, A, 'c2', 6);
  const c3 = makeCtr(sb, E, 'c3', 5);
  const call = (command: string, c: Ctr, name: string, extra: Record<string, unknown> = {}) => {
    const r = dnsname(sb, command, c, name, env, extra);
    out.push({ command, name, code: r.code, stdout: norm(r.stdout) });
  };
  call('ADD', c1, 'web', { runtimeConfig: { aliases: { neta: ['www'] } } });
  call('ADD', c2, 'db');
  call('ADD', c3, 'front', EMBEDDED);
  call('ADD', c2, 'bad..name');
  call('ADD', c1, 'web', { prevResult: { ...c1.prevResult, ips: [{ address: '10.89.0.5/24', gateway: '10.89.0.254', interface: 2 }] } });
  call('CHECK', c1, 'web');
  call('CHECK', c3, 'front', EMBEDDED);
  call('DEL', c2, 'db');
  call('DEL', c2, 'db');
  out.push(ask(sb, c1.ns, [{ server: '10.89.0.1', name: 'www' }, { server: '10.89.0.1', name: 'db' }]).map((a) => a.answers ?? a.rcode));
  const gc = sb.plugin('dnsname', { command: 'GC', conf: { cniVersion: '1.1.0', name: 'neta', type: 'dnsname', recordsDir: dnsDir(sb), 'cni.dev/valid-attachments': [] }, env });
  out.push({ command: 'GC', code: gc.code, stdout: gc.stdout });
  const files = Object.fromEntries(readdirSync(dnsDir(sb)).filter((f) => f.endsWith('.records')).sort().map((f) => [f, norm(readFileSync(join(dnsDir(sb), f), 'utf8'))]));
  return { out, files };
}

netnsTest('dnsname results, errors and records are the same with the engine and without it', async (t) => {
  const fresh = setup(t, 'f');
  const warm = setup(t, 'w');
  const off = scenario(fresh, OFF);
  t.deepEqual(enginePids(fresh.host), []);
  const up = await engineUp(warm);
  const on = scenario(warm, ON);
  t.is(status(warm)!.pid, up.pid);
  const dnsCalls = Object.entries(status(warm)!.perCall).filter(([k]) => k.startsWith('dnsname ')).reduce((n, [, v]) => n + v.count, 0);
  t.is(dnsCalls, 10, 'every dnsname call ran in the engine');
  t.deepEqual(on, off);
});

/**
 * dnsname + responder, black box: dist/bin/dnsname run as a runtime would (chained after a
 * bridge, here built with `ip`), the responder it starts listening in the sandbox host netns,
 * and a real DNS client (dns2) inside container namespaces.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { NODE, Sandbox, until } from './lib/sandbox.ts';
import { netnsSerial } from './lib/netns-test.ts';
import { type Ctr, ask, dnsConf, dnsname, fakeUpstream, makeCtr, makeNet, oneServer, pidsIn, resolve, responderPid, responderPidFile, stoppedServing } from './lib/dns-lib.ts';

const A = { name: 'neta', bridge: 'br-a', v4: '10.89.0', v6: 'fd89::' };
const B = { name: 'netb', bridge: 'br-b', v4: '10.90.0' };

function setup(t: { teardown(fn: () => void): void }) {
  const sb = new Sandbox('d');
  t.teardown(() => sb.cleanup());
  makeNet(sb, A);
  makeNet(sb, B);
  return sb;
}

function add(t: { is(a: unknown, b: unknown, m?: string): void }, sb: Sandbox, c: Ctr, name: string, extra: Record<string, unknown> = {}) {
  const r = dnsname(sb, 'ADD', c, name, extra);
  t.is(r.code, 0, `ADD ${name}: ${r.stdout} ${r.stderr}`);
  return r;
}

netnsSerial('names and aliases resolve on their network only; PTR, NXDOMAIN with SOA, TCP, result dns', (t) => {
  const sb = setup(t);
  const a1 = makeCtr(sb, A, 'a1', 5);
  const a2 = makeCtr(sb, A, 'a2', 6);
  const b1 = makeCtr(sb, B, 'b1', 5);
  const r = add(t, sb, a1, 'web', { runtimeConfig: { aliases: { neta: ['www', 'shared'], netb: ['wrong'] } } });
  t.deepEqual(r.json.dns, { nameservers: ['10.89.0.1', 'fd89::1'], search: ['dns.cnikit'] });
  t.deepEqual(r.json.ips, a1.prevResult.ips);
  add(t, sb, a2, 'db', { runtimeConfig: { aliases: { neta: ['shared'] } } });
  add(t, sb, b1, 'cache');

  const gw = '10.89.0.1';
  const res = ask(sb, a2.ns, [
    { server: gw, name: 'web' },
    { server: gw, name: 'WEB.dns.cnikit' },
    { server: gw, name: 'www.dns.cnikit', type: 'AAAA' },
    { server: gw, name: 'shared.dns.cnikit' },
    { server: gw, name: 'nosuch.dns.cnikit' },
    { server: gw, name: '5.0.89.10.in-addr.arpa', type: 'PTR' },
    { server: gw, name: 'cache.dns.cnikit' },
    { server: gw, name: 'wrong.dns.cnikit' },
    { server: gw, name: 'db.dns.cnikit', tcp: true },
    { server: 'fd89::1', name: 'db', type: 'A' },
  ]);
  t.deepEqual(res[0]!.answers, ['10.89.0.5']);
  t.true(res[0]!.aa);
  t.deepEqual(res[1]!.answers, ['10.89.0.5']);
  t.deepEqual(res[2]!.answers, ['fd89::5']);
  t.deepEqual([...res[3]!.answers!].sort(), ['10.89.0.5', '10.89.0.6']);
  t.is(res[4]!.rcode, 3, 'NXDOMAIN for an unknown name in the domain');
  t.deepEqual(res[4]!.authorities, [6], 'with the SOA in the authority section');
  t.deepEqual(res[5]!.answers, ['web.dns.cnikit']);
  t.is(res[6]!.rcode, 3, 'a name of network B is unknown on network A');
  t.is(res[7]!.rcode, 3, 'aliases given for another network are not used');
  t.deepEqual(res[8]!.answers, ['10.89.0.6'], 'TCP');
  t.deepEqual(res[9]!.answers, ['10.89.0.6'], 'over IPv6 to the v6 gateway');

  // Network B sees its own names only, on its own gateway.
  t.deepEqual(resolve(sb, b1.ns, { server: '10.90.0.1', name: 'cache' }), ['10.90.0.5']);
  t.is(resolve(sb, b1.ns, { server: '10.90.0.1', name: 'web.dns.cnikit' }), 'rcode 3');
  // A container of B asking A's gateway gets nothing of A (aardvark-dns answers here).
  t.is(resolve(sb, b1.ns, { server: '10.89.0.1', name: 'web.dns.cnikit' }), 'rcode 5');
  t.is(resolve(sb, b1.ns, { server: '10.89.0.1', name: 'web.dns.cnikit', tcp: true }), 'rcode 5');
  // Only one responder for both networks (a process, or the engine hosting it).
  t.true(oneServer(sb));
});

netnsSerial('an answer too big for UDP is truncated (TC) and comes whole over TCP, in rotating order', (t) => {
  const sb = setup(t);
  const a1 = makeCtr(sb, A, 'a1', 5);
  // One container with 40 addresses (only the records matter here): 40 A records > 512 bytes.
  const ips = Array.from({ length: 40 }, (_, i) => ({ address: `10.89.0.${100 + i}/24`, gateway: '10.89.0.1', interface: 2 }));
  add(t, sb, a1, 'pool', { prevResult: { ...a1.prevResult, ips } });
  const gw = '10.89.0.1';
  const res = ask(sb, a1.ns, [
    { server: gw, name: 'pool.dns.cnikit', retryOverTcp: false },
    { server: gw, name: 'pool.dns.cnikit', tcp: true },
    { server: gw, name: 'pool.dns.cnikit', tcp: true },
    { server: gw, name: 'pool.dns.cnikit' },
  ]);
  t.true(res[0]!.tc, '40 A records do not fit 512 bytes: TC set');
  t.deepEqual(res[0]!.answers, []);
  t.is(res[1]!.answers!.length, 40);
  t.deepEqual([...res[1]!.answers!].sort(), [...res[2]!.answers!].sort());
  t.not(res[1]!.answers![0], res[2]!.answers![0], 'order rotates');
  t.is(res[3]!.answers!.length, 40, "dns2's client follows TC to TCP");
});

netnsSerial('other names go to the upstream; a dead upstream gives SERVFAIL within the timeout', async (t) => {
  const sb = setup(t);
  const out = sb.outside();
  await fakeUpstream(sb, out);
  const a1 = makeCtr(sb, A, 'a1', 5);
  add(t, sb, a1, 'web');
  t.deepEqual(resolve(sb, a1.ns, { server: '10.89.0.1', name: 'example.org' }), ['203.0.113.7']);
  t.deepEqual(resolve(sb, a1.ns, { server: '10.89.0.1', name: 'example.org', tcp: true }), ['203.0.113.7']);
  // The same container, re-added with an upstream nobody answers on: SERVFAIL, not a hang.
  add(t, sb, a1, 'web', { upstreams: ['198.51.100.99'] });
  const [dead] = ask(sb, a1.ns, [{ server: '10.89.0.1', name: 'example.org', timeoutMs: 6000 }]);
  t.is(dead!.rcode, 2);
  t.true(dead!.ms < 4000, `SERVFAIL after ${dead!.ms} ms`);
  t.deepEqual(resolve(sb, a1.ns, { server: '10.89.0.1', name: 'web' }), ['10.89.0.5'], 'local names unaffected');
});

netnsSerial('a killed responder is restarted by the next CHECK or ADD with every record', async (t) => {
  const sb = setup(t);
  const a1 = makeCtr(sb, A, 'a1', 5);
  const a2 = makeCtr(sb, A, 'a2', 6);
  const b1 = makeCtr(sb, B, 'b1', 5);
  add(t, sb, a1, 'web');
  add(t, sb, b1, 'cache');
  const first = responderPid(sb);
  process.kill(first, 'SIGKILL');
  const check = dnsname(sb, 'CHECK', a1, 'web');
  t.is(check.code, 0, check.stdout);
  const second = responderPid(sb);
  t.not(second, first);
  t.deepEqual(resolve(sb, b1.ns, { server: '10.90.0.1', name: 'cache' }), ['10.90.0.5'], 'records of the other network back too');
  process.kill(second, 'SIGKILL');
  add(t, sb, a2, 'db');
  t.deepEqual(resolve(sb, a2.ns, { server: '10.89.0.1', name: 'web' }), ['10.89.0.5']);
  t.deepEqual(resolve(sb, a2.ns, { server: '10.89.0.1', name: 'db' }), ['10.89.0.6']);
  t.true(await until(() => oneServer(sb)));
});

netnsSerial('a hung responder (stopped) is replaced on ADD', (t) => {
  const sb = setup(t);
  const a1 = makeCtr(sb, A, 'a1', 5);
  const a2 = makeCtr(sb, A, 'a2', 6);
  add(t, sb, a1, 'web');
  const first = responderPid(sb);
  process.kill(first, 'SIGSTOP');
  add(t, sb, a2, 'db');
  t.not(responderPid(sb), first);
  t.deepEqual(resolve(sb, a2.ns, { server: '10.89.0.1', name: 'web' }), ['10.89.0.5']);
});

netnsSerial('a repeated ADD of an attachment replaces its record: the new name answers, the old one is gone', (t) => {
  const sb = setup(t);
  const a1 = makeCtr(sb, A, 'a1', 5);
  const a2 = makeCtr(sb, A, 'a2', 6);
  add(t, sb, a1, 'web');
  add(t, sb, a2, 'db');
  add(t, sb, a1, 'api');
  t.deepEqual(resolve(sb, a2.ns, { server: '10.89.0.1', name: 'api' }), ['10.89.0.5']);
  t.is(resolve(sb, a2.ns, { server: '10.89.0.1', name: 'web.dns.cnikit' }), 'rcode 3');
  const lines = readFileSync(join(sb.tmp, 'dns', 'neta.records'), 'utf8').split('\n').filter((l) => l.startsWith(`container ${a1.id} `));
  t.is(lines.length, 1, 'one line for the attachment');
});

netnsSerial('DEL removes the name, is idempotent, and the last DEL stops the responder', async (t) => {
  const sb = setup(t);
  const a1 = makeCtr(sb, A, 'a1', 5);
  const a2 = makeCtr(sb, A, 'a2', 6);
  add(t, sb, a1, 'web');
  add(t, sb, a2, 'db');
  t.is(dnsname(sb, 'DEL', a1, 'web').code, 0);
  t.is(resolve(sb, a2.ns, { server: '10.89.0.1', name: 'web.dns.cnikit' }), 'rcode 3');
  t.deepEqual(resolve(sb, a2.ns, { server: '10.89.0.1', name: 'db' }), ['10.89.0.6']);
  const again = dnsname(sb, 'DEL', a1, 'web');
  t.is(again.code, 0, again.stdout);
  const pid = responderPid(sb);
  // DEL without prevResult and without K8S_POD_NAME (a runtime cleaning up after a failed ADD).
  const bare = sb.plugin('dnsname', { command: 'DEL', containerId: a2.id, netns: '', conf: { ...dnsConf(sb, a2), prevResult: undefined } });
  t.is(bare.code, 0, bare.stdout);
  t.false(existsSync(join(sb.tmp, 'dns', 'neta.records')));
  t.false(existsSync(responderPidFile(sb)));
  t.true(await until(() => stoppedServing(sb, pid)), 'the responder stopped when no network was left');
  t.is(dnsname(sb, 'DEL', a2, 'db').code, 0, 'DEL with nothing left still succeeds');
});

netnsSerial('20 ADDs at once start one responder and every name resolves', async (t) => {
  const sb = setup(t);
  const ctrs = Array.from({ length: 20 }, (_, i) => makeCtr(sb, A, `p${i}`, 10 + i));
  const runs = await Promise.all(ctrs.map((c, i) => sb.pluginAsync('dnsname', {
    command: 'ADD', containerId: c.id, netns: Sandbox.path(c.ns), cniArgs: `K8S_POD_NAME=p${i}`, conf: dnsConf(sb, c),
  })));
  for (const r of runs) t.is(r.code, 0, r.stdout + r.stderr);
  t.true(await until(() => oneServer(sb)), 'exactly one responder');
  const res = ask(sb, ctrs[0]!.ns, ctrs.map((_, i) => ({ server: '10.89.0.1', name: `p${i}.dns.cnikit` })));
  t.deepEqual(res.map((r) => r.answers), ctrs.map((c) => [`10.89.0.${c.host}`]));
});

netnsSerial('CHECK passes after ADD and fails for a container without records', (t) => {
  const sb = setup(t);
  const a1 = makeCtr(sb, A, 'a1', 5);
  const a2 = makeCtr(sb, A, 'a2', 6);
  add(t, sb, a1, 'web');
  t.is(dnsname(sb, 'CHECK', a1, 'web').code, 0);
  const r = dnsname(sb, 'CHECK', a2, 'db');
  t.is(r.code, 1);
  t.regex(r.json.msg, /no DNS records/);
});

netnsSerial('GC drops the records of attachments that are no longer valid', (t) => {
  const sb = setup(t);
  const a1 = makeCtr(sb, A, 'a1', 5);
  const a2 = makeCtr(sb, A, 'a2', 6);
  add(t, sb, a1, 'web');
  add(t, sb, a2, 'db');
  const gc = sb.plugin('dnsname', {
    command: 'GC', conf: { cniVersion: '1.1.0', name: 'neta', type: 'dnsname', recordsDir: join(sb.tmp, 'dns'), 'cni.dev/valid-attachments': [{ containerID: a2.id, ifname: 'eth0' }] },
  });
  t.is(gc.code, 0, gc.stdout);
  t.is(resolve(sb, a2.ns, { server: '10.89.0.1', name: 'web.dns.cnikit' }), 'rcode 3');
  t.deepEqual(resolve(sb, a2.ns, { server: '10.89.0.1', name: 'db' }), ['10.89.0.6']);
});

netnsSerial('bad input: clear CNI errors and nothing written', (t) => {
  const sb = setup(t);
  const a1 = makeCtr(sb, A, 'a1', 5);
  const dir = join(sb.tmp, 'dns');
  const cases: [string, ReturnType<typeof dnsname>, number, RegExp][] = [
    ['no name', sb.plugin('dnsname', { command: 'ADD', containerId: a1.id, netns: Sandbox.path(a1.ns), cniArgs: '', conf: dnsConf(sb, a1) }), 4, /container name/],
    ['invalid name', dnsname(sb, 'ADD', a1, 'bad..name'), 4, /invalid container name/],
    ['no prevResult', dnsname(sb, 'ADD', a1, 'web', { prevResult: undefined }), 7, /chained/],
    ['no gateway', dnsname(sb, 'ADD', a1, 'web', { prevResult: { ...a1.prevResult, ips: [{ address: '10.89.0.5/24', interface: 2 }] } }), 7, /gateway/],
    ['bad upstream', dnsname(sb, 'ADD', a1, 'web', { upstreams: ['dns.example'] }), 7, /upstreams/],
    ['bad alias', dnsname(sb, 'ADD', a1, 'web', { runtimeConfig: { aliases: { neta: ['no spaces'] } } }), 7, /aliases/],
    ['bad domain', dnsname(sb, 'ADD', a1, 'web', { domainName: 'a b' }), 7, /domainName/],
    ['relative dir', dnsname(sb, 'ADD', a1, 'web', { recordsDir: 'dns' }), 7, /absolute/],
  ];
  for (const [what, r, code, re] of cases) {
    t.is(r.code, 1, what);
    t.is(r.json?.code, code, `${what}: ${r.stdout}`);
    t.regex(`${r.json?.msg} ${r.json?.details}`, re, what);
  }
  t.deepEqual(existsSync(dir) ? readdirSync(dir).filter((f) => f !== 'lock') : [], []);
  t.deepEqual(pidsIn(sb.host), []);
  // A gateway that is not on any host interface: the responder cannot listen, so ADD fails and rolls back.
  const r = dnsname(sb, 'ADD', a1, 'web', { prevResult: { ...a1.prevResult, ips: [{ address: '10.89.0.5/24', gateway: '10.89.0.254', interface: 2 }] } });
  t.is(r.code, 1, r.stdout);
  t.regex(r.json.msg, /cannot listen on 10\.89\.0\.254:53/);
  t.false(existsSync(join(dir, 'neta.records')));
});

netnsSerial('a malformed records file is reported and skipped; the other networks are served', (t) => {
  const sb = setup(t);
  const a1 = makeCtr(sb, A, 'a1', 5);
  const b1 = makeCtr(sb, B, 'b1', 5);
  add(t, sb, a1, 'web');
  writeFileSync(join(sb.tmp, 'dns', 'broken.records'), 'domain ???\ncontainer x\n\u0000\u0001garbage\n');
  add(t, sb, b1, 'cache');
  t.deepEqual(resolve(sb, a1.ns, { server: '10.89.0.1', name: 'web' }), ['10.89.0.5']);
  t.deepEqual(resolve(sb, b1.ns, { server: '10.90.0.1', name: 'cache' }), ['10.90.0.5']);
  const log = readFileSync(join(sb.tmp, 'dns', 'responder.log'), 'utf8');
  t.regex(log, /"msg":"skipping bad records".*broken\.records/);
});

netnsSerial('reloads (SIGHUP and ADDs) while queries flow lose no query', async (t) => {
  const sb = setup(t);
  // DNS in the engine from the first ADD (with the engine on), so that no take-over falls in the measured part.
  sb.engineReady();
  const a1 = makeCtr(sb, A, 'a1', 5);
  const extra = Array.from({ length: 5 }, (_, i) => makeCtr(sb, A, `r${i}`, 20 + i));
  add(t, sb, a1, 'web');
  const pid = responderPid(sb);
  // One client keeps 8 queries in flight until 4000 are answered (or 3 s pass without an answer).
  const script = `
    const s = require('dgram').createSocket('udp4');
    const enc = (n) => Buffer.concat([...n.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])), Buffer.from([0])]);
    const q = Buffer.concat([Buffer.from([0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]), enc('web.dns.cnikit'), Buffer.from([0, 1, 0, 1])]);
    const N = 4000; let sent = 0, got = 0, bad = 0, idle;
    const done = () => { process.stdout.write(JSON.stringify({ sent, got, bad })); process.exit(0); };
    const send = () => { if (sent >= N) return; q.writeUInt16BE(sent & 0xffff, 0); sent++; s.send(q, 53, '10.89.0.1'); };
    s.on('message', (m) => { got++; if (m.readUInt16BE(6) !== 1) bad++; clearTimeout(idle); idle = setTimeout(done, 3000); if (got === N) done(); else send(); });
    idle = setTimeout(done, 3000);
    for (let i = 0; i < 8; i++) send();`;
  const client = spawn('ip', ['netns', 'exec', a1.ns, NODE, '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  client.stdout.on('data', (d) => { out += d; });
  const finished = new Promise((r) => client.on('close', r));
  for (let i = 0; i < 10; i++) {
    process.kill(pid, 'SIGHUP');
    await new Promise((r) => setTimeout(r, 15));
  }
  const adds = await Promise.all(extra.map((c, i) => sb.pluginAsync('dnsname', {
    command: 'ADD', containerId: c.id, netns: Sandbox.path(c.ns), cniArgs: `K8S_POD_NAME=r${i}`, conf: dnsConf(sb, c),
  })));
  for (const r of adds) t.is(r.code, 0, r.stdout);
  await finished;
  const counts = JSON.parse(out || '{}');
  t.is(counts.got, 4000, `answers: ${out}`);
  t.is(counts.bad, 0);
  t.is(responderPid(sb), pid, 'same responder throughout');
  t.deepEqual(resolve(sb, a1.ns, { server: '10.89.0.1', name: 'r4' }), ['10.89.0.24']);
});

netnsSerial('[0.4.0] chained after a real bridge + host-local ADD, as Podman\'s CNI backend configures it', (t) => {
  const sb = new Sandbox('c');
  t.teardown(() => sb.cleanup());
  const dnsDir = join(sb.tmp, 'dns');
  const bridgeConf = {
    cniVersion: '0.4.0', name: 'podnet', type: 'bridge', bridge: 'cni-podman1', isGateway: true, ipMasq: true, hairpinMode: true,
    ipam: { type: 'host-local', dataDir: join(sb.tmp, 'ipam'), ranges: [[{ subnet: '10.88.7.0/24', gateway: '10.88.7.1' }], [{ subnet: 'fd88:7::/64' }]], routes: [{ dst: '0.0.0.0/0' }] },
  };
  const dnsConfOf = (prevResult: unknown, alias: string) => ({
    cniVersion: '0.4.0', name: 'podnet', type: 'dnsname', domainName: 'dns.podman', capabilities: { aliases: true },
    runtimeConfig: { aliases: { podnet: [alias] } }, recordsDir: dnsDir, upstreams: ['198.51.100.2'], prevResult,
  });
  const ctrs = ['web', 'db'].map((name) => {
    const ns = sb.container(name);
    const id = `${name}0123456789abcdef`;
    const cniArgs = `IgnoreUnknown=1;K8S_POD_NAMESPACE=${name};K8S_POD_NAME=${name};K8S_POD_INFRA_CONTAINER_ID=${id}`;
    const br = sb.plugin('bridge', { command: 'ADD', containerId: id, netns: Sandbox.path(ns), cniArgs, conf: bridgeConf });
    t.is(br.code, 0, br.stdout + br.stderr);
    const dn = sb.plugin('dnsname', { command: 'ADD', containerId: id, netns: Sandbox.path(ns), cniArgs, conf: dnsConfOf(br.json, id.slice(0, 12)) });
    t.is(dn.code, 0, dn.stdout + dn.stderr);
    t.is(dn.json.cniVersion, '0.4.0');
    t.deepEqual(dn.json.dns, { nameservers: ['10.88.7.1', 'fd88:7::1'], search: ['dns.podman'] });
    t.deepEqual(dn.json.ips, br.json.ips, 'prevResult passed through');
    return { ns, id, cniArgs, result: dn.json, address: br.json.ips[0].address.split('/')[0] };
  });
  const [web, db] = ctrs as [typeof ctrs[0], typeof ctrs[0]];
  const res = ask(sb, web.ns, [
    { server: '10.88.7.1', name: 'db.dns.podman' },
    { server: '10.88.7.1', name: db.id.slice(0, 12) },
    { server: 'fd88:7::1', name: 'web', type: 'AAAA' },
  ]);
  t.deepEqual(res[0]!.answers, [db.address]);
  t.deepEqual(res[1]!.answers, [db.address], 'the short container id alias');
  t.is(res[2]!.answers!.length, 1);
  const check = sb.plugin('dnsname', { command: 'CHECK', containerId: db.id, netns: Sandbox.path(db.ns), cniArgs: db.cniArgs, conf: dnsConfOf(db.result, db.id.slice(0, 12)) });
  t.is(check.code, 0, check.stdout);
  // DEL in reverse chain order, with the cached result as prevResult.
  for (const c of ctrs) {
    const d1 = sb.plugin('dnsname', { command: 'DEL', containerId: c.id, netns: Sandbox.path(c.ns), cniArgs: c.cniArgs, conf: dnsConfOf(c.result, c.id.slice(0, 12)) });
    t.is(d1.code, 0, d1.stdout);
    const d2 = sb.plugin('bridge', { command: 'DEL', containerId: c.id, netns: Sandbox.path(c.ns), cniArgs: c.cniArgs, conf: { ...bridgeConf, prevResult: c.result } });
    t.is(d2.code, 0, d2.stdout);
  }
  t.false(existsSync(join(dnsDir, 'podnet.records')));
  t.false(existsSync(responderPidFile(sb)));
});

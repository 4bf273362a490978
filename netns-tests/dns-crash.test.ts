/**
 * DNS records that survive crashes, black box: runtimes die, skip DEL, delete namespaces and
 * bridges under us, and leave half-written files; the records of a network affect only that
 * network while it exists, a container's only while its netns does, the responder lives only
 * while some live container does, and whatever is left on disk is reported once, pruned when
 * it is ours to prune, and never stops another network from answering. Relative state paths
 * are refused before anything is written.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, Sandbox, alive, ip, until } from './lib/sandbox.ts';
import { netnsSerial } from './lib/netns-test.ts';
import { type Ctr, ask, dnsname, makeCtr, makeNet, oneServer, pidsIn, resolve, responderPid, responderPidFile, stoppedServing } from './lib/dns-lib.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const NONE = { upstreams: [] as string[] };
const dnsDir = (sb: Sandbox) => join(sb.tmp, 'dns');

function sandbox(t: { teardown(fn: () => void): void }) {
  const sb = new Sandbox('k');
  t.teardown(() => sb.cleanup());
  return sb;
}

function add(t: { is(a: unknown, b: unknown, m?: string): void }, sb: Sandbox, c: Ctr, name: string, extra: Record<string, unknown> = {}) {
  const r = dnsname(sb, 'ADD', c, name, { ...NONE, ...extra });
  t.is(r.code, 0, `ADD ${name}: ${r.stdout} ${r.stderr}`);
  return r;
}

/** The container lines' ids in a network's records file ([] when there is no file). */
function recorded(sb: Sandbox, network: string): string[] {
  const f = join(dnsDir(sb), `${network}.records`);
  if (!existsSync(f)) return [];
  return readFileSync(f, 'utf8').split('\n').filter((l) => l.startsWith('container ')).map((l) => l.split(' ')[1]!);
}

netnsSerial('a stale network with the same subnet and gateway (its netns and bridge deleted without DEL) does not affect a new one; no responder outlives the last live container', async (t) => {
  const sb = sandbox(t);
  const old = makeNet(sb, { name: 'oldnet', bridge: 'br-old', v4: '10.89.0' });
  const o1 = makeCtr(sb, old, 'o1', 5);
  add(t, sb, o1, 'old1');
  t.deepEqual(resolve(sb, o1.ns, { server: '10.89.0.1', name: 'old1' }), ['10.89.0.5']);
  // The runtime dies: no DEL; the container's netns and the network's bridge go.
  ip('netns', 'del', o1.ns);
  ip('-n', sb.host, 'link', 'del', 'br-old');
  // A new network reuses the subnet and the gateway address.
  const neu = makeNet(sb, { name: 'newnet', bridge: 'br-new', v4: '10.89.0' });
  const n1 = makeCtr(sb, neu, 'n1', 6);
  add(t, sb, n1, 'new1');
  const res = ask(sb, n1.ns, [
    { server: '10.89.0.1', name: 'new1' }, { server: '10.89.0.1', name: 'new1.dns.cnikit', tcp: true },
    { server: '10.89.0.1', name: 'old1.dns.cnikit' }, { server: '10.89.0.1', name: '5.0.89.10.in-addr.arpa', type: 'PTR' },
  ]);
  t.deepEqual(res[0]!.answers, ['10.89.0.6'], 'the new network answers its own names on the shared gateway');
  t.deepEqual(res[1]!.answers, ['10.89.0.6']);
  t.is(res[2]!.rcode, 3, 'the dead network\'s container does not answer');
  t.is(res[3]!.rcode, 3, 'nor its address');
  t.true(await until(() => !existsSync(join(dnsDir(sb), 'oldnet.records'))), 'the stale records are pruned from disk');
  // (The old network's responder may have stopped before the new ADD, or serve both, or be
  // exiting while the new ADD starts its successor: either way one runs once that settles.)
  await until(() => oneServer(sb));
  const first = responderPid(sb);
  t.true(oneServer(sb), 'one responder');
  // The new network's last container leaves: nothing listens any more.
  t.is(dnsname(sb, 'DEL', n1, 'new1', NONE).code, 0);
  t.true(await until(() => stoppedServing(sb, first)), 'the responder stopped');
  t.deepEqual(pidsIn(sb.host), []);
  t.truthy(ask(sb, n1.ns, [{ server: '10.89.0.1', name: 'new1', timeoutMs: 500 }])[0]!.error, 'nothing answers on the gateway');
  t.deepEqual(readdirSync(dnsDir(sb)).filter((f) => f.endsWith('.records')), []);
});

netnsSerial('the last live container gone without DEL: the responder stops within seconds and its records are pruned', async (t) => {
  const sb = sandbox(t);
  const net = makeNet(sb, { name: 'neta', bridge: 'br-a', v4: '10.89.0' });
  const a1 = makeCtr(sb, net, 'a1', 5);
  const a2 = makeCtr(sb, net, 'a2', 6);
  add(t, sb, a1, 'web');
  add(t, sb, a2, 'db');
  const pid = responderPid(sb);
  ip('netns', 'del', a1.ns);
  t.true(await until(() => !recorded(sb, 'neta').includes(a1.id)), 'the dead container\'s line is pruned');
  t.is(resolve(sb, a2.ns, { server: '10.89.0.1', name: 'web.dns.cnikit' }), 'rcode 3');
  t.deepEqual(resolve(sb, a2.ns, { server: '10.89.0.1', name: 'db' }), ['10.89.0.6']);
  ip('netns', 'del', a2.ns);
  t.true(await until(() => stoppedServing(sb, pid)), 'the responder stopped with its last live container');
  t.false(existsSync(join(dnsDir(sb), 'neta.records')));
  t.false(existsSync(responderPidFile(sb)));
});

netnsSerial('a stale container record is not carried into a network re-created under the same name', (t) => {
  const sb = sandbox(t);
  const net = makeNet(sb, { name: 'neta', bridge: 'br-a', v4: '10.89.0' });
  const a1 = makeCtr(sb, net, 'a1', 5);
  const a2 = makeCtr(sb, net, 'a2', 6);
  add(t, sb, a1, 'web');
  add(t, sb, a2, 'db');
  // The runtime crashes: a1's netns is gone, and the network is removed and created again
  // (same name, same bridge name and gateway, a new bridge) while a2's netns lingers.
  ip('netns', 'del', a1.ns);
  ip('-n', sb.host, 'link', 'del', 'br-a');
  makeNet(sb, net);
  const a3 = makeCtr(sb, net, 'a3', 7);
  add(t, sb, a3, 'app');
  t.deepEqual(recorded(sb, 'neta'), [a3.id], 'only the new container is recorded');
  const res = ask(sb, a3.ns, [
    { server: '10.89.0.1', name: 'app' }, { server: '10.89.0.1', name: 'web.dns.cnikit' }, { server: '10.89.0.1', name: 'db.dns.cnikit' },
  ]);
  t.deepEqual(res[0]!.answers, ['10.89.0.7']);
  t.is(res[1]!.rcode, 3, 'the crashed container is not carried over');
  t.is(res[2]!.rcode, 3, 'nor a container of the earlier network');
});

netnsSerial('what a crash leaves on disk is reported once and stops no other network', async (t) => {
  const sb = sandbox(t);
  // One server from the first ADD (with the engine on: no take-over, which reads the files again).
  sb.engineReady();
  const netA = makeNet(sb, { name: 'neta', bridge: 'br-a', v4: '10.89.0' });
  const netB = makeNet(sb, { name: 'netb', bridge: 'br-b', v4: '10.90.0' });
  const a1 = makeCtr(sb, netA, 'a1', 5);
  const b1 = makeCtr(sb, netB, 'b1', 5);
  const dir = dnsDir(sb);
  mkdirSync(dir, { recursive: true });
  const good = readFileSync(join(ROOT, 'responder/testdata/records/appnet.records'), 'utf8');
  writeFileSync(join(dir, 'half.records'), 'version 2\nnetwork half\ndomain dns.cnikit\ncontainer c1 eth0 10.99.0.5/24 10.9'); // cut mid-line
  writeFileSync(join(dir, 'future.records'), 'version 9\nnetwork future\ndomain dns.cnikit\nwhatever comes\n');
  writeFileSync(join(dir, 'foreign.records'), `version 2\nnetwork foreign\ndomain dns.cnikit\nhost 1\nbridge br-a 1\ncontainer f1 eth0 10.89.0.77/24 10.89.0.1 intruder\n`);
  writeFileSync(join(dir, '.neta.records.tmp4242'), good.slice(0, 40));
  add(t, sb, a1, 'web');
  add(t, sb, b1, 'cache');
  add(t, sb, a1, 'web'); // one more reload of the same files
  const pid = responderPid(sb);
  process.kill(pid, 'SIGHUP');
  const res = ask(sb, a1.ns, [{ server: '10.89.0.1', name: 'web' }, { server: '10.89.0.1', name: 'intruder.dns.cnikit' }]);
  t.deepEqual(res[0]!.answers, ['10.89.0.5'], 'network A answers');
  t.is(res[1]!.rcode, 3, 'records of another host netns are not served');
  t.deepEqual(resolve(sb, b1.ns, { server: '10.90.0.1', name: 'cache' }), ['10.90.0.5'], 'network B answers');
  t.true(await until(() => !existsSync(join(dir, '.neta.records.tmp4242'))), 'a crashed write\'s temp file is removed');
  await sleep(300);
  const log = readFileSync(join(dir, 'responder.log'), 'utf8').split('\n').filter((l) => l.includes('"level":"warn"'));
  const about = (file: string) => log.filter((l) => l.includes(`${file}.records`));
  t.is(about('half').length, 1, `the half-written file, once: ${about('half').join('\n')}`);
  t.regex(about('half')[0]!, /container <id> <ifname>/);
  t.is(about('future').length, 1, 'the file of another version, once');
  t.regex(about('future')[0]!, /version 9/);
  t.is(about('foreign').length, 1, 'the records of another host netns, once');
  t.true(existsSync(join(dir, 'future.records')) && existsSync(join(dir, 'foreign.records')), 'what is not ours to judge stays on disk');
});

netnsSerial('relative state paths are refused with code 7 naming the key; nothing is written', (t) => {
  const sb = sandbox(t);
  const net = makeNet(sb, { name: 'neta', bridge: 'br-a', v4: '10.89.0' });
  const a1 = makeCtr(sb, net, 'a1', 5);
  const cwdBefore = readdirSync(ROOT);
  for (const [key, value] of [['recordsDir', 'rel'], ['recordsDir', './x'], ['runDir', '../y'], ['runDir', 'run']] as const) {
    const r = dnsname(sb, 'ADD', a1, 'web', { [key]: value });
    t.is(r.code, 1, `${key} ${value}`);
    t.is(r.json?.code, 7);
    t.regex(`${r.json?.msg} ${r.json?.details}`, new RegExp(`${key}: "${value.replace(/\./g, '\\.')}" must be an absolute path`));
    t.is(dnsname(sb, 'DEL', a1, 'web', { [key]: value }).code, 0, 'DEL of what ADD refused succeeds, touching nothing');
  }
  for (const dataDir of ['rel', './x', '../y']) {
    const conf = {
      cniVersion: '1.0.0', name: 'neta', type: 'bridge', bridge: 'br-hl', isGateway: true,
      ipam: { type: 'host-local', dataDir, ranges: [[{ subnet: '10.77.0.0/24' }]] },
    };
    const r = sb.plugin('bridge', { command: 'ADD', containerId: a1.id, netns: Sandbox.path(a1.ns), ifName: 'eth9', conf });
    t.is(r.code, 1, dataDir);
    t.is(r.json?.code, 7, r.stdout);
    t.regex(`${r.json?.msg} ${r.json?.details}`, /dataDir/);
    const hl = sb.plugin('host-local', { command: 'ADD', containerId: a1.id, netns: Sandbox.path(a1.ns), conf: { ...conf, type: 'host-local' } });
    t.is(hl.json?.code, 7, hl.stdout);
    t.regex(`${hl.json?.msg} ${hl.json?.details}`, /ipam\.dataDir: ".*" must be an absolute path/);
    t.is(sb.plugin('host-local', { command: 'DEL', containerId: a1.id, conf: { ...conf, type: 'host-local' } }).code, 0, 'DEL succeeds, touching nothing');
  }
  t.deepEqual(readdirSync(ROOT), cwdBefore, 'nothing appeared in the directory the plugins ran in');
  t.false(existsSync(dnsDir(sb)));
  t.deepEqual(pidsIn(sb.host), []);
  t.deepEqual(JSON.parse(ip('-n', sb.host, '-j', 'link', 'show', 'master', 'br-hl') || '[]'), [], 'no veth left by the refused bridge ADD');
});

netnsSerial('cnikit gc drops the records of attachments that are not valid, cached or not', (t) => {
  const sb = sandbox(t);
  const netconf = join(sb.tmp, 'net.d');
  mkdirSync(netconf);
  writeFileSync(join(netconf, 'gcnet.conflist'), JSON.stringify({
    cniVersion: '1.1.0', name: 'gcnet', plugins: [ // GC reaches plugins from 1.1.0 on
      { type: 'bridge', bridge: 'br-gc', isGateway: true, ipam: { type: 'host-local', dataDir: join(sb.tmp, 'ipam'), ranges: [[{ subnet: '10.88.9.0/24' }]] } },
      { type: 'dnsname', domainName: 'gc.internal', recordsDir: dnsDir(sb), upstreams: [] },
    ],
  }));
  const cnikit = (args: string[]) => {
    const r = sb.exec(sb.host, join(ROOT, 'dist/bin/cnikit'), args, { env: { PATH: process.env.PATH, NETCONFPATH: netconf, CNI_CACHE_DIR: join(sb.tmp, 'cache'), CNI_PATH: join(ROOT, 'dist/bin') } });
    t.is(r.status, 0, `cnikit ${args.join(' ')}: ${r.stdout} ${r.stderr}`);
    return r;
  };
  const ns = ['g1', 'g2', 'g3'].map((n) => sb.container(n));
  cnikit(['add', 'gcnet', Sandbox.path(ns[0]!), '--container-id', 'gc-1', '--args', 'IgnoreUnknown=1;K8S_POD_NAME=one']);
  cnikit(['add', 'gcnet', Sandbox.path(ns[1]!), '--container-id', 'gc-2', '--args', 'IgnoreUnknown=1;K8S_POD_NAME=two']);
  // A record whose ADD never reached the runtime's cache (the runtime died right after dnsname ran).
  const prev = JSON.parse(readFileSync(join(sb.tmp, 'cache', 'results', 'gcnet-gc-2-eth0'), 'utf8')).result;
  const orphan = sb.plugin('dnsname', {
    command: 'ADD', containerId: 'gc-3', netns: Sandbox.path(ns[2]!), cniArgs: 'K8S_POD_NAME=three',
    conf: { cniVersion: '1.0.0', name: 'gcnet', type: 'dnsname', domainName: 'gc.internal', recordsDir: dnsDir(sb), upstreams: [], prevResult: { ...prev, ips: [{ address: '10.88.9.77/24', gateway: '10.88.9.1' }] } },
  });
  t.is(orphan.code, 0, orphan.stdout);
  t.deepEqual(recorded(sb, 'gcnet').sort(), ['gc-1', 'gc-2', 'gc-3']);
  cnikit(['gc', 'gcnet', '--keep-cached']);
  t.deepEqual(recorded(sb, 'gcnet').sort(), ['gc-1', 'gc-2'], 'GC with the cached attachments as valid drops the orphan');
  cnikit(['gc', 'gcnet', '--valid', 'gc-1:eth0']);
  t.deepEqual(recorded(sb, 'gcnet'), ['gc-1'], 'an attachment not given as valid goes');
  const one = ask(sb, ns[0]!, [{ server: '10.88.9.1', name: 'one.gc.internal' }, { server: '10.88.9.1', name: 'two.gc.internal' }, { server: '10.88.9.1', name: 'three.gc.internal' }]);
  t.deepEqual(one.map((r) => r.rcode), [0, 3, 3]);
  cnikit(['del', 'gcnet', Sandbox.path(ns[0]!), '--container-id', 'gc-1']);
  t.deepEqual(recorded(sb, 'gcnet'), []);
});

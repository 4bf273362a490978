/**
 * `cnikit network` driven as a user drives it, inside a sandbox host namespace with every state
 * path in the sandbox: create with and without --subnet (the free subnet avoids the sandbox
 * host's own addresses and routes and the other networks), refusals that name what is in the
 * way, ls/inspect/rm/-f/prune around a live container, and the conflists it writes used
 * unchanged by libcni (the Go driver of libcni.test.ts) and by the reference plugins.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CliSandbox } from './lib/cli-lib.ts';
import { netnsSerial } from './lib/netns-test.ts';
import { BIN, NODE, ROOT, Sandbox, ip, ipJson, isRoot, ping } from './lib/sandbox.ts';
import { EXECUTABLES } from '../executables.ts';

const REF = '/usr/lib/cni';
const LIBCNI_SRC = '/usr/share/gocode/src/github.com/containernetworking/cni/libcni';
const haveGo = spawnSync('go', ['version']).status === 0 && existsSync(LIBCNI_SRC);
const WAIT = `console.log('ready');setInterval(()=>{},1000)`;
/** The chain a created network has (CONTRACTS.md): each plugin only once cnikit builds it. */
const BUILT = new Set<string>(EXECUTABLES.map((e) => e.type));
const CHAIN = ['bridge', 'portmap', 'firewall', 'tuning', 'dnsname'].filter((type) => BUILT.has(type));

netnsSerial('create without --subnet picks the first free /24 and bridge: not the host\'s addresses or routes, not other networks', (t) => {
  const c = new CliSandbox(t, 'nc');
  const h = c.sb.host;
  ip('-n', h, 'link', 'add', 'd0', 'type', 'veth', 'peer', 'name', 'd0p');
  ip('-n', h, 'link', 'set', 'd0', 'up');
  ip('-n', h, 'addr', 'add', '10.89.0.1/24', 'dev', 'd0');
  ip('-n', h, 'route', 'add', '10.89.1.0/24', 'dev', 'd0');
  ip('-n', h, 'link', 'add', 'cnikit0', 'type', 'veth', 'peer', 'name', 'cnikit0p');
  writeFileSync(join(c.netconf, '10-other.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'other', plugins: [{ type: 'bridge', bridge: 'cnikit1', ipam: { type: 'host-local', ranges: [[{ subnet: '10.89.2.0/24' }]] } }] }));
  const r = c.create('web', '--ipv6', '--label', 'team=a');
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /^created network "web": 10\.89\.3\.0\/24, fd[0-9a-f]{2}:[0-9a-f]{1,4}:[0-9a-f]{1,4}::\/64 on bridge cnikit2, DNS dns\.cnikit \(.*web\.conflist\)\n$/);
  const conf = JSON.parse(readFileSync(join(c.netconf, 'web.conflist'), 'utf8'));
  t.is(conf.cniVersion, '1.0.0');
  t.deepEqual(conf.plugins.map((p: { type: string }) => p.type), CHAIN);
  t.like(conf.plugins[0], { bridge: 'cnikit2', isGateway: true, ipMasq: true, hairpinMode: true, capabilities: { ips: true, mac: true } });
  t.like(conf.cnikit, { createdBy: 'cnikit network create', labels: { team: 'a' } });

  const ls = c.cnikit(['network', 'ls', '--json']);
  t.is(ls.code, 0, ls.stderr);
  const web = JSON.parse(ls.stdout).find((n: { name: string }) => n.name === 'web');
  t.like(web, { bridge: 'cnikit2', attachments: 0, dns: { domain: 'dns.cnikit', resolver: 'gateway' }, createdByCnikit: true });
  t.is(web.subnets[0], '10.89.3.0/24');
  t.regex(c.cnikit(['network', 'ls']).stdout, /^NAME +SUBNETS +BRIDGE +ATTACHMENTS +DNS\nother +10\.89\.2\.0\/24 +cnikit1 +0 +-\nweb +10\.89\.3\.0\/24,fd\S+ +cnikit2 +0 +dns\.cnikit\n$/);

  const again = c.create('two');
  t.is(again.code, 0, again.stderr);
  t.regex(again.stdout, /10\.89\.4\.0\/24 on bridge cnikit3/);
  t.deepEqual(c.bridges(), [], 'create changes nothing on the host: the bridge comes with the first container');
});

netnsSerial('create refuses, exit 7, naming what is in the way: a name, a bridge, a subnet of another network, a host address or route', (t) => {
  const c = new CliSandbox(t, 'nr');
  const h = c.sb.host;
  ip('-n', h, 'link', 'add', 'd0', 'type', 'veth', 'peer', 'name', 'd0p');
  ip('-n', h, 'addr', 'add', '10.70.0.1/24', 'dev', 'd0');
  ip('-n', h, 'link', 'set', 'd0', 'up');
  ip('-n', h, 'link', 'set', 'd0p', 'up');
  ip('-n', h, 'route', 'add', '10.71.0.0/16', 'via', '10.70.0.254');
  t.is(c.create('net1', '--subnet', '10.50.0.0/24', '--bridge', 'br-net1').code, 0);
  const cases: [string[], RegExp][] = [
    [['net1'], /network "net1" exists: it is defined in .*net1\.conflist/],
    [['x', '--subnet', '10.50.0.0/16'], /subnet 10\.50\.0\.0\/16 overlaps network "net1" \(10\.50\.0\.0\/24 in .*net1\.conflist\)/],
    [['x', '--subnet', '10.70.0.128/25'], /subnet 10\.70\.0\.128\/25 overlaps address 10\.70\.0\.1\/24 on d0 of this host/],
    [['x', '--subnet', '10.71.5.0/24'], /subnet 10\.71\.5\.0\/24 overlaps route 10\.71\.0\.0\/16 via 10\.70\.0\.254 dev d0 of this host/],
    [['x', '--bridge', 'br-net1'], /bridge "br-net1" is used by network "net1"/],
    [['x', '--bridge', 'd0'], /an interface named "d0" exists on this host/],
  ];
  for (const [args, msg] of cases) {
    const r = c.create(args[0]!, ...args.slice(1));
    t.is(r.code, 7, `${args.join(' ')}: ${r.stderr}`);
    t.regex(r.stderr, msg);
    t.regex(r.stderr, /hint|pick another|rm/, 'says what to do');
  }
  const usage = c.create('x', '--subnet', '10.80.0.1/24');
  t.is(usage.code, 2);
  t.regex(usage.stderr, /host bits set: did you mean 10\.80\.0\.0\/24\?/);
  t.is(c.create('-bad').code, 2);
  t.deepEqual(readdirSync(c.netconf), ['net1.conflist']);
});

netnsSerial('ls, inspect, rm (refused while attached, naming it), rm -f (detaches a running container), prune (ours, unattached)', async (t) => {
  const c = new CliSandbox(t, 'nl');
  t.is(c.create('web').code, 0);
  const run = await c.start(['--network', 'web', '--name', 'app'], [NODE, '-e', WAIT]);
  const ls = c.cnikit(['network', 'ls']);
  t.regex(ls.stdout, /\nweb +10\.89\.0\.0\/24 +cnikit0 +1 +dns\.cnikit\n/);
  const insp = c.cnikit(['network', 'inspect', 'web']);
  t.is(insp.code, 0, insp.stderr);
  t.regex(insp.stdout, new RegExp(`chain: +${CHAIN.join(' -> ')}\n`));
  t.regex(insp.stdout, /attachments: 1\n +app \(cnikit-[0-9a-f]{12}, eth0\): 10\.89\.0\.2\/24; names app; pid \d+/);
  const j = JSON.parse(c.cnikit(['network', 'inspect', 'web', '--json']).stdout)[0];
  t.like(j.attachments[0], { name: 'app', ifName: 'eth0', addresses: ['10.89.0.2/24'], names: ['app'] });
  t.is(j.config.plugins[0].bridge, 'cnikit0');
  t.is(c.cnikit(['network', 'inspect', 'nosuch']).code, 3);

  const rm = c.cnikit(['network', 'rm', 'web']);
  t.is(rm.code, 7);
  t.regex(rm.stderr, /network "web" has 1 attachment\(s\): app \(cnikit-[0-9a-f]{12}, eth0\)/);
  t.regex(rm.stderr, /pass -f/);
  t.deepEqual(c.bridges(), ['cnikit0']);

  const rmf = c.cnikit(['network', 'rm', '-f', 'web']);
  t.is(rmf.code, 0, rmf.stderr);
  t.regex(rmf.stdout, /removed network "web" .*bridge: removed cnikit0; detached app \(cnikit-[0-9a-f]{12}, eth0\)/);
  t.false(existsSync(join(c.netconf, 'web.conflist')));
  t.deepEqual(c.bridges(), []);
  const ps = JSON.parse(c.cnikit(['ps', '--json']).stdout);
  t.is(ps.length, 1, 'the container still runs');
  t.deepEqual(ps[0].attachments, [], 'without the network');
  t.false(existsSync(join(c.ipam, 'web')), 'the empty lease directory is gone');
  run.child.kill('SIGTERM');
  t.is(await run.exited, 143, run.stderr());
  t.deepEqual(c.leftovers(), []);

  // prune: only networks cnikit made, only without attachments.
  t.is(c.create('a').code, 0);
  t.is(c.create('b').code, 0);
  writeFileSync(join(c.netconf, 'hand.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'hand', plugins: [{ type: 'bridge', bridge: 'hand0', ipam: { type: 'host-local', dataDir: c.ipam, ranges: [[{ subnet: '10.99.0.0/24' }]] } }] }));
  const ctr = c.sb.container('x');
  const add = c.cnikit(['add', 'b', Sandbox.path(ctr), '--args', 'IgnoreUnknown=1;K8S_POD_NAME=x']);
  t.is(add.code, 0, add.stdout + add.stderr);
  const prune = c.cnikit(['network', 'prune']);
  t.is(prune.code, 0, prune.stderr);
  t.regex(prune.stdout, /^removed network "a" /);
  t.deepEqual(readdirSync(c.netconf).sort(), ['b.conflist', 'hand.conflist']);
  t.is(c.cnikit(['del', 'b', Sandbox.path(ctr)]).code, 0);
  t.is(c.cnikit(['network', 'rm', 'b', 'hand']).code, 0);
  t.deepEqual(readdirSync(c.netconf), []);
  t.deepEqual(c.leftovers(), []);
  t.deepEqual(c.bridges(), []);
});

netnsSerial.needs({ met: existsSync(join(REF, 'bridge')) && existsSync(join(REF, 'portmap')), reason: `needs the reference plugins in ${REF} (apt-get install containernetworking-plugins)` })(
  'a created --no-dns conflist works unchanged with the reference bridge, host-local and portmap', (t) => {
    const c = new CliSandbox(t, 'nf');
    t.is(c.create('refnet', '--no-dns', '--ipv6').code, 0);
    const a = c.sb.container('a');
    const env = { ...c.env, CNI_PATH: REF };
    const add = c.sb.exec(c.sb.host, join(BIN, 'cnikit'), ['add', 'refnet', Sandbox.path(a)], { env });
    t.is(add.status, 0, add.stdout + add.stderr);
    const r = JSON.parse(add.stdout);
    t.regex(r.ips[0].address, /^10\.89\.0\.2\/24$/);
    t.true(ping(c.sb, a, '10.89.0.1'));
    t.true(ipJson(a, 'route', 'show', 'default').length > 0, 'a default route via the gateway');
    const del = c.sb.exec(c.sb.host, join(BIN, 'cnikit'), ['del', 'refnet', Sandbox.path(a)], { env });
    t.is(del.status, 0, del.stdout + del.stderr);
    t.deepEqual(c.leftovers(), []);
  });

let driver = '';
let buildDir = '';
test.before(() => {
  if (!haveGo || !isRoot) return;
  buildDir = mkdtempSync(join(tmpdir(), 'cnikit-libcni-net-'));
  driver = join(buildDir, 'libcni-driver');
  const r = spawnSync('go', ['build', '-o', driver, join(ROOT, 'netns-tests/fixtures/libcni-driver/main.go')], {
    env: { ...process.env, GOPATH: '/usr/share/gocode', GO111MODULE: 'off', GOCACHE: join(buildDir, 'cache'), GOFLAGS: '' }, encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`go build failed: ${r.stderr}`);
});
test.after.always(() => { if (buildDir) rmSync(buildDir, { recursive: true, force: true }); });

netnsSerial.needs({ met: haveGo, reason: 'needs go and golang-github-appc-cni-dev (apt-get install golang-go golang-github-appc-cni-dev)' })(
  'a created network (bridge, portmap, dnsname) works unchanged with libcni: ADD, CHECK, DEL; cnikit sees libcni\'s attachment', (t) => {
    const c = new CliSandbox(t, 'ng');
    t.is(c.create('gonet', '--ipv6').code, 0);
    const a = c.sb.container('a');
    const drive = (cmd: string) => c.sb.exec(c.sb.host, driver, [cmd, 'gonet', Sandbox.path(a)], { env: { ...c.env, CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAME=gopod' } });
    const add = drive('add');
    t.is(add.status, 0, add.stderr);
    const r = JSON.parse(add.stdout);
    t.is(r.ips[0].address, '10.89.0.2/24');
    t.deepEqual(r.dns.nameservers, ['10.89.0.1', r.ips[1].gateway]);
    t.regex(c.cnikit(['network', 'inspect', 'gonet']).stdout, /cnitool-[0-9a-f]{20} \(eth0\): 10\.89\.0\.2\/24, fd.*; names gopod/);
    const check = drive('check');
    t.is(check.status, 0, check.stderr);
    const del = drive('del');
    t.is(del.status, 0, del.stderr);
    t.is(c.cnikit(['network', 'rm', 'gonet']).code, 0);
    t.deepEqual(c.leftovers(), []);
    t.deepEqual(c.bridges(), []);
  });

/**
 * loopback end to end (docs/cni-notes.md §9): dist/bin/loopback next to the reference
 * /usr/lib/cni/loopback (1.1.1), each on its own fresh container namespace whose lo is down, as a
 * new netns has it. After ADD and after DEL both namespaces must look the same to `ip`, and the
 * results must be the same but for the shapes we print differently on purpose (§9.5: `version`
 * in 0.3.x/0.4.0 ips, ip4/ip6 at 0.1.0/0.2.0, no empty `dns`).
 */
import { existsSync } from 'node:fs';
import { type PluginCall, type PluginRun, Sandbox, ip, ipJson } from './lib/sandbox.ts';
import { netnsTest } from './lib/netns-test.ts';

const REF = '/usr/lib/cni/loopback';
const refTest = netnsTest.needs({ met: existsSync(REF), reason: `no reference plugin at ${REF} (apt-get install containernetworking-plugins)` });

const conf = (cniVersion: string, extra: Record<string, unknown> = {}) => ({ cniVersion, name: 'cni-loopback', type: 'loopback', ...extra });

/** A sandbox with two fresh container namespaces (lo down), one per implementation. */
function setup(t: { teardown(fn: () => void): void }, tag: string) {
  const sb = new Sandbox(tag);
  t.teardown(() => sb.cleanup());
  const fresh = (n: string) => {
    const ns = sb.container(n);
    ip('-n', ns, 'link', 'set', 'lo', 'down'); // the sandbox sets lo up in every namespace it makes
    return ns;
  };
  return { sb, a: fresh('a'), b: fresh('b') };
}

function ref(sb: Sandbox, c: PluginCall): PluginRun {
  const r = sb.exec(sb.host, REF, [], { input: JSON.stringify(c.conf), env: sb.cniEnv(c) });
  let json: unknown;
  try { json = JSON.parse(r.stdout); } catch { json = undefined; }
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr, json };
}

/** What a user sees of lo: flags, state and addresses (without the lifetimes' noise). */
function loView(ns: string) {
  return ipJson(ns, 'addr', 'show', 'lo').map((l: any) => ({
    flags: l.flags, operstate: l.operstate, addrs: (l.addr_info ?? []).map((a: any) => `${a.local}/${a.prefixlen}`),
  }));
}

/** A result without the sandbox's netns path, the 0.3/0.4 `version` of each IP and an empty dns. */
function comparable(r: any, netns: string): unknown {
  const out = structuredClone(r);
  for (const i of out.interfaces ?? []) if (i.sandbox === netns) i.sandbox = '<netns>';
  for (const x of out.ips ?? []) delete x.version;
  if (out.dns && Object.keys(out.dns).length === 0) delete out.dns;
  return out;
}

for (const version of ['0.3.1', '0.4.0', '1.0.0']) {
  refTest(`[${version}] ADD and DEL look like the reference's: lo up with 127.0.0.1 and ::1, then down`, (t) => {
    const { sb, a, b } = setup(t, 'lo');
    const call = (netns: string, command: string, c = conf(version)): PluginCall => ({ command, netns: Sandbox.path(netns), ifName: 'lo', conf: c });
    const mine = sb.plugin('loopback', call(a, 'ADD'));
    const theirs = ref(sb, call(b, 'ADD'));
    t.is(mine.code, 0, mine.stdout);
    t.is(theirs.code, 0, theirs.stdout);
    t.deepEqual(loView(a), loView(b));
    t.true(loView(a)[0].flags.includes('UP'));
    t.deepEqual(loView(a)[0].addrs, ['127.0.0.1/8', '::1/128']);
    t.deepEqual(comparable(mine.json, Sandbox.path(a)), comparable(theirs.json, Sandbox.path(b)));
    t.is(mine.json.cniVersion, version);
    if (version !== '1.0.0') t.deepEqual(mine.json.ips.map((x: any) => x.version), ['4', '6'], 'spec: every 0.3.x/0.4.0 IP names its version');
    else t.deepEqual({ ...theirs.json, dns: undefined, interfaces: undefined }, { ...mine.json, dns: undefined, interfaces: undefined });

    if (version !== '0.3.1') {
      t.is(sb.plugin('loopback', call(a, 'CHECK')).code, 0);
      t.is(ref(sb, call(b, 'CHECK')).code, 0);
    }
    for (let i = 0; i < 2; i++) {
      const d1 = sb.plugin('loopback', call(a, 'DEL'));
      const d2 = ref(sb, call(b, 'DEL'));
      t.is(d1.code, 0, d1.stdout);
      t.is(d2.code, 0, d2.stdout);
      t.deepEqual(loView(a), loView(b), `after DEL ${i + 1}`);
    }
    t.false(loView(a)[0].flags.includes('UP'));
    t.deepEqual(loView(a)[0].addrs, ['127.0.0.1/8'], 'the kernel drops ::1 when lo goes down');
    if (version !== '0.3.1') {
      const c1 = sb.plugin('loopback', call(a, 'CHECK'));
      const c2 = ref(sb, call(b, 'CHECK'));
      t.like(c1.json, { code: 999, msg: 'loopback interface is down' });
      t.like(c2.json, { code: 999, msg: 'loopback interface is down' });
    }
  });
}

refTest('with a prevResult, both print it in the config\'s version (keys read as Go reads them)', (t) => {
  const { sb, a, b } = setup(t, 'lp');
  for (const [version, prev] of [
    ['0.4.0', { cniVersion: '0.4.0', ips: [{ version: '4', address: '10.1.1.1/24' }] }],
    ['1.0.0', { CNIVersion: '1.0.0', IPs: [{ Address: '10.1.1.1/24', Gateway: '10.1.1.254' }], Interfaces: [{ Name: 'eth0', Sandbox: '/x' }] }],
  ] as const) {
    const c = conf(version, { prevResult: prev });
    const mine = sb.plugin('loopback', { command: 'ADD', netns: Sandbox.path(a), ifName: 'lo', conf: c });
    const theirs = ref(sb, { command: 'ADD', netns: Sandbox.path(b), ifName: 'lo', conf: c });
    t.is(mine.code, 0, mine.stdout);
    t.deepEqual(comparable(mine.json, ''), comparable(theirs.json, ''), version);
  }
});

refTest('the 0.x results: the spec\'s shape of each version where the reference prints 1.0.0\'s', (t) => {
  const { sb, a, b } = setup(t, 'lv');
  const mine = sb.plugin('loopback', { command: 'ADD', netns: Sandbox.path(a), ifName: 'lo', conf: conf('0.2.0') });
  const theirs = ref(sb, { command: 'ADD', netns: Sandbox.path(b), ifName: 'lo', conf: conf('0.2.0') });
  t.is(mine.code, 0, mine.stdout);
  t.deepEqual(mine.json, { cniVersion: '0.2.0', ip4: { ip: '127.0.0.1/8' }, ip6: { ip: '::1/128' } });
  t.deepEqual(theirs.json.ips.map((x: any) => x.address), ['127.0.0.1/8', '::1/128'], 'the reference: 1.0.0 fields at 0.2.0');
  t.deepEqual(loView(a), loView(b));
});

refTest('CNI_IFNAME is ignored: the result names lo, as the reference\'s', (t) => {
  const { sb, a, b } = setup(t, 'li');
  const mine = sb.plugin('loopback', { command: 'ADD', netns: Sandbox.path(a), ifName: 'eth7', conf: conf('1.0.0') });
  const theirs = ref(sb, { command: 'ADD', netns: Sandbox.path(b), ifName: 'eth7', conf: conf('1.0.0') });
  t.is(mine.json.interfaces[0].name, 'lo');
  t.is(theirs.json.interfaces[0].name, 'lo');
  t.deepEqual(loView(a), loView(b));
});

refTest('a non-loopback address on lo fails ADD with the reference\'s message; lo is left as it was (the reference leaves it up)', (t) => {
  const { sb, a, b } = setup(t, 'lx');
  for (const ns of [a, b]) ip('-n', ns, 'addr', 'add', '10.9.9.9/8', 'dev', 'lo');
  const mine = sb.plugin('loopback', { command: 'ADD', netns: Sandbox.path(a), ifName: 'lo', conf: conf('1.0.0') });
  const theirs = ref(sb, { command: 'ADD', netns: Sandbox.path(b), ifName: 'lo', conf: conf('1.0.0') });
  t.like(mine.json, { code: 999, msg: 'loopback interface found with non-loopback address "10.9.9.9"' });
  t.like(theirs.json, { code: 999, msg: 'loopback interface found with non-loopback address "10.9.9.9"' });
  t.false(loView(a)[0].flags.includes('UP'), 'ours rolled back');
  t.true(loView(b)[0].flags.includes('UP'), 'the reference did not');
});

netnsTest('DEL succeeds without CNI_NETNS, after the namespace is gone, and for a path that is no namespace; ADD and CHECK there are errors', (t) => {
  const { sb, a } = setup(t, 'ld');
  t.is(sb.plugin('loopback', { command: 'DEL', netns: '', ifName: 'lo', conf: conf('1.0.0') }).code, 0);
  const gone = `${Sandbox.path(a)}-gone`;
  t.is(sb.plugin('loopback', { command: 'DEL', netns: gone, ifName: 'lo', conf: conf('1.0.0') }).code, 0);
  t.is(sb.plugin('loopback', { command: 'DEL', netns: sb.tmp, ifName: 'lo', conf: conf('1.0.0') }).code, 0);
  t.is(sb.plugin('loopback', { command: 'DEL', netns: sb.hostPath, ifName: 'lo', conf: conf('1.0.0') }).code, 0, 'the plugin\'s own namespace');
  t.true(loView(sb.host)[0].flags.includes('UP'), 'the host\'s lo stays up');
  t.like(sb.plugin('loopback', { command: 'ADD', netns: gone, ifName: 'lo', conf: conf('1.0.0') }).json, { code: 3 });
  t.like(sb.plugin('loopback', { command: 'CHECK', netns: gone, ifName: 'lo', conf: conf('1.0.0') }).json, { code: 3 });
  t.like(sb.plugin('loopback', { command: 'ADD', netns: sb.hostPath, ifName: 'lo', conf: conf('1.0.0') }).json, { code: 8 });
});

netnsTest('[1.1.0] ADD, CHECK, STATUS and GC; GC and STATUS change nothing', (t) => {
  const { sb, a } = setup(t, 'lg');
  const call = (command: string): PluginCall => ({ command, netns: Sandbox.path(a), ifName: 'lo', conf: conf('1.1.0') });
  const add = sb.plugin('loopback', call('ADD'));
  t.is(add.code, 0, add.stdout);
  t.deepEqual(add.json, { cniVersion: '1.1.0', interfaces: [{ name: 'lo', mac: '00:00:00:00:00:00', sandbox: Sandbox.path(a) }],
    ips: [{ address: '127.0.0.1/8', interface: 0 }, { address: '::1/128', interface: 0 }] });
  const before = loView(a);
  for (const c of ['CHECK', 'STATUS', 'GC']) t.is(sb.plugin('loopback', call(c)).code, 0, c);
  t.deepEqual(loView(a), before);
  t.is(sb.plugin('loopback', call('DEL')).code, 0);
});

/**
 * The firewall plugin end to end, behind the forward chains that drop by default on real hosts:
 * iptables-nft's `filter FORWARD` after `iptables -P FORWARD DROP` (what Docker leaves behind) and
 * a native nft table with a forward chain at policy drop. Real packets between container
 * namespaces, the sandbox host and its "outside" namespace: outbound, a published port from
 * outside (portmap in the chain) and container to container fail without the firewall and pass
 * with it; after the last DEL our rule is gone from the foreign chain and `iptables -S` /
 * `iptables-save` show the host as it was. Also DEL's and CHECK's contracts.
 */
import { BIN, Sandbox, tcpRequest } from './lib/sandbox.ts';
import { netnsSerial, netnsTest } from './lib/netns-test.ts';
import { NFT, type NetSpec, serve } from './lib/portmap-lib.ts';
import { existsSync } from 'node:fs';
import type { CmdArgs, RawConf } from '../pkg/cni/skel.ts';
import { silentLogger } from '../pkg/log.ts';
import { processKernel } from '../pkg/open-kernel.ts';
import { defaultDeps, firewallPlugin, makeFirewallPlugin } from '../plugins/firewall/plugin.ts';
import {
  REFERENCE_FIREWALL, type Attached, attach, bothIptables, bridgeNf, detach, firewallCall, forwardPolicy, hostCmd, iptablesS, iptablesSave, nativeDropTable,
  nftChainRules, runAt, setComments,
} from './lib/firewall-lib.ts';

const NET: NetSpec = { name: 'fwnet', bridge: 'cnkfw0', subnet4: '10.79.0.0/24', subnet6: 'fd79::/64' };
const WEB = [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }];
const OURS = /cnikit firewall: accepted by table inet cnikit \(mark 0x10000\)/;

/** What each kind of traffic does now: true when the request was answered as it should be. */
async function traffic(sb: Sandbox, out: string, a1: Attached, a2: Attached): Promise<Record<string, boolean>> {
  return {
    outbound4: tcpRequest(sb, a1.ns, '198.51.100.2', 8000, 'x', 1500) === 'outside 198.51.100.1',
    outbound6: tcpRequest(sb, a1.ns, '2001:db8:ff::2', 8000, 'x', 1500) === 'outside 2001:db8:ff::1',
    published4: tcpRequest(sb, out, '198.51.100.1', 8080, 'x', 1500) === 'web1 198.51.100.2',
    published6: tcpRequest(sb, out, '2001:db8:ff::1', 8080, 'x', 1500) === 'web1 2001:db8:ff::2',
    containers4: tcpRequest(sb, a2.ns, a1.ip4, 80, 'x', 1500) === `web1 ${a2.ip4}`,
    containers6: tcpRequest(sb, a2.ns, a1.ip6, 80, 'x', 1500) === `web1 ${a2.ip6}`,
  };
}

const ALL = { outbound4: true, outbound6: true, published4: true, published6: true, containers4: true, containers6: true };
const NONE = { outbound4: false, outbound6: false, published4: false, published6: false, containers4: false, containers6: false };

for (const kind of ['iptables-nft filter FORWARD', 'a native nft table'] as const) {
  netnsSerial(`${kind} at policy drop: traffic fails without firewall, passes with it, and the host's firewall is as it was after the last DEL`, async (t) => {
    const sb = new Sandbox('fw');
    t.teardown(() => sb.cleanup());
    const out = sb.outside();
    bridgeNf(sb, true);
    if (kind === 'a native nft table') nativeDropTable(sb);
    else forwardPolicy(sb, 'DROP');
    const before = { v4: iptablesSave(sb), v6: iptablesSave(sb, true), nft: nftChainRules(sb, 'inet', 'hostfw', 'forward') };
    const c1 = sb.container('c1');
    const c2 = sb.container('c2');
    // The chain without firewall first: bridge (+ portmap for c1).
    const a1 = attach(sb, NET, c1, 'ctr1', { mappings: WEB, firewall: null });
    const a2 = attach(sb, NET, c2, 'ctr2', { firewall: null });
    await serve(sb, c1, 'web1', 80);
    await serve(sb, out, 'outside', 8000);
    t.deepEqual(await traffic(sb, out, a1, a2), NONE, 'without firewall the drop policy drops it all');

    // Now firewall, chained after them as a runtime would.
    for (const a of [a1, a2]) {
      const r = firewallCall(sb, a, 'ADD');
      t.is(r.code, 0, r.stdout + r.stderr);
      t.deepEqual(r.json, a.result, 'the result is prevResult');
      a.opts.firewall = {};
    }
    t.deepEqual(await traffic(sb, out, a1, a2), ALL, 'with firewall everything passes');
    if (kind === 'iptables-nft filter FORWARD') {
      t.regex(iptablesS(sb), /^-A FORWARD -m mark --mark 0x10000\/0x10000 -m comment --comment "cnikit firewall: accepted by table inet cnikit \(mark 0x10000\)" -j ACCEPT$/m);
      t.regex(iptablesS(sb, true), OURS, 'ip6tables too');
      t.is(iptablesS(sb).split('\n').filter((l) => OURS.test(l)).length, 1, 'added once for two containers');
    } else {
      const rules = nftChainRules(sb, 'inet', 'hostfw', 'forward');
      t.deepEqual(rules.map((r) => r.comment), ['the admin\'s own rule', 'cnikit firewall: accepted by table inet cnikit (mark 0x10000)'], 'appended after the admin\'s rules');
    }
    t.is(firewallCall(sb, a1, 'CHECK').code, 0, firewallCall(sb, a1, 'CHECK').stdout);

    const d1 = firewallCall(sb, a1, 'DEL');
    t.is(d1.code, 0, d1.stdout);
    t.deepEqual(setComments(sb, 'firewall_ctr4'), ['net=fwnet id=ctr2 if=eth0'], 'exactly ctr1\'s elements went');
    t.is(tcpRequest(sb, a2.ns, '198.51.100.2', 8000, 'x', 1500), 'outside 198.51.100.1', 'ctr2 still goes out');
    t.regex(iptablesS(sb) + JSON.stringify(nftChainRules(sb, 'inet', 'hostfw', 'forward')), OURS, 'the rule stays while a container is left');
    for (const a of [a1, a2]) detach(sb, a);
    t.deepEqual(setComments(sb, 'firewall_ctr4'), []);
    t.deepEqual(setComments(sb, 'firewall_bridges'), [], 'the network\'s state went with its last container');
    t.deepEqual({ v4: iptablesSave(sb), v6: iptablesSave(sb, true), nft: nftChainRules(sb, 'inet', 'hostfw', 'forward') }, before,
      'iptables-save and the native table are as before: our rule is gone, nothing else changed');
    t.notRegex(iptablesS(sb), /cnikit/);
  });
}

netnsTest('DEL is idempotent and never fails on input it cannot use; without prevResult it finds the elements by owner', async (t) => {
  const sb = new Sandbox('fd');
  t.teardown(() => sb.cleanup());
  const c1 = sb.container('c1');
  const a1 = attach(sb, NET, c1, 'ctr1', { firewall: {} });
  t.deepEqual(setComments(sb, 'firewall_ctr4'), ['net=fwnet id=ctr1 if=eth0']);
  const bad = sb.plugin('firewall', { command: 'DEL', containerId: 'ctr1', netns: Sandbox.path(c1),
    conf: { cniVersion: '1.0.0', name: NET.name, type: 'firewall', backend: 'firewalld', ingressPolicy: 'nonsense', prevResult: { bogus: true } } });
  t.is(bad.code, 0, bad.stdout);
  t.deepEqual(setComments(sb, 'firewall_ctr4'), [], 'found by its owner tag');
  t.deepEqual(setComments(sb, 'firewall_bridges'), []);
  t.is(firewallCall(sb, a1, 'DEL').code, 0, 'again, with prevResult');
  t.is(sb.plugin('firewall', { command: 'DEL', containerId: 'never', conf: { cniVersion: '1.0.0', name: NET.name, type: 'firewall' } }).code, 0, 'never added, no netns');
  detach(sb, { ...a1, opts: { firewall: null } });
});

netnsTest('ADD refuses what it cannot honour, names the key and changes nothing', async (t) => {
  const sb = new Sandbox('fr');
  t.teardown(() => sb.cleanup());
  const c1 = sb.container('c1');
  const a1 = attach(sb, NET, c1, 'ctr1', { firewall: null });
  const cases: [Record<string, unknown>, number, RegExp][] = [
    [{ backend: 'iptables' }, 2, /backend "iptables".*set "backend": ""/],
    [{ backend: 'firewalld' }, 2, /firewalld.*D-Bus/],
    [{ ingressPolicy: 'strict' }, 7, /unknown ingress policy: "strict"/],
    [{ iptablesAdminChainName: 'firewall_forward' }, 7, /iptablesAdminChainName/],
  ];
  for (const [keys, code, re] of cases) {
    const r = firewallCall(sb, a1, 'ADD', keys);
    t.is(r.code, 1);
    t.is(r.json?.code, code, r.stdout);
    t.regex(`${r.json?.msg} ${r.json?.details}`, re);
  }
  const noPrev = sb.plugin('firewall', { command: 'ADD', containerId: 'ctr1', netns: Sandbox.path(c1), conf: { cniVersion: '1.0.0', name: NET.name, type: 'firewall' } });
  t.is(noPrev.json?.code, 7);
  t.regex(noPrev.json?.details ?? '', /prevResult/);
  const r = sb.exec(sb.host, NFT, ['list', 'table', 'inet', 'cnikit']);
  t.notRegex(r.stdout, /firewall/, 'nothing of the firewall was created (bridge\'s ipMasq made the table)');
  detach(sb, a1);
});

netnsTest('CHECK reports what is missing: an element, our rule in a drop chain set after the ADD', async (t) => {
  const sb = new Sandbox('fc');
  t.teardown(() => sb.cleanup());
  const c1 = sb.container('c1');
  const a1 = attach(sb, NET, c1, 'ctr1', { firewall: {} });
  t.is(firewallCall(sb, a1, 'CHECK').code, 0);
  forwardPolicy(sb, 'DROP');
  const late = firewallCall(sb, a1, 'CHECK');
  t.is(late.code, 1);
  t.regex(late.json.details, /ip filter FORWARD has policy drop and 0 cnikit accept rules/);
  const again = firewallCall(sb, a1, 'ADD');
  t.is(again.code, 0, `ADD again (same attachment) puts it there: ${again.stdout}`);
  t.is(firewallCall(sb, a1, 'CHECK').code, 0, firewallCall(sb, a1, 'CHECK').stdout);
  hostCmd(sb, NFT, ['flush', 'set', 'inet', 'cnikit', 'firewall_ctr4']);
  const gone = firewallCall(sb, a1, 'CHECK');
  t.regex(gone.json?.details ?? '', /address 10\.79\.0\.\d+\/24 on cnkfw0 is missing/);
  detach(sb, a1);
  t.notRegex(iptablesS(sb), /cnikit/);
});

netnsTest('GC keeps the valid attachments and other networks, removes the rest, and the last GC leaves iptables as it was', async (t) => {
  const sb = new Sandbox('fg');
  t.teardown(() => sb.cleanup());
  forwardPolicy(sb, 'DROP');
  const before = iptablesSave(sb);
  const OTHER: NetSpec = { name: 'fwother', bridge: 'cnkfw1', subnet4: '10.79.1.0/24', subnet6: 'fd79:1::/64' };
  const a1 = attach(sb, NET, sb.container('c1'), 'ctr1', { firewall: {} });
  const a2 = attach(sb, NET, sb.container('c2'), 'ctr2', { firewall: {} });
  const o1 = attach(sb, OTHER, sb.container('o1'), 'oth1', { firewall: { ingressPolicy: 'same-bridge' } });
  const gc = (n: NetSpec, valid: { containerID: string; ifname: string }[]) => sb.plugin('firewall', {
    command: 'GC', conf: { cniVersion: '1.1.0', name: n.name, type: 'firewall', 'cni.dev/valid-attachments': valid },
  });
  t.is(gc(NET, [{ containerID: 'ctr2', ifname: 'eth0' }]).code, 0);
  t.deepEqual(setComments(sb, 'firewall_ctr4').sort(), ['net=fwnet id=ctr2 if=eth0', 'net=fwother id=oth1 if=eth0']);
  t.deepEqual(setComments(sb, 'firewall_bridges').sort(), ['net=fwnet', 'net=fwother']);
  t.is(gc(NET, []).code, 0);
  t.deepEqual(setComments(sb, 'firewall_bridges'), ['net=fwother'], 'fwnet\'s state went with its last attachment');
  t.regex(iptablesS(sb), OURS, 'the other network still needs our rule');
  t.is(gc(OTHER, []).code, 0);
  t.deepEqual(iptablesSave(sb), before);
  t.is(sb.exec(sb.host, NFT, ['list', 'table', 'inet', 'cnikit']).status === 0, true, 'bridge\'s ipMasq elements keep the table');
  for (const a of [a1, a2, o1]) detach(sb, a);
});

netnsSerial('many ADDs at once add our rule once; DELs at once remove it and every element', async (t) => {
  const sb = new Sandbox('fm');
  t.teardown(() => sb.cleanup());
  forwardPolicy(sb, 'DROP');
  const before = iptablesSave(sb);
  const n = 6;
  const attached = Array.from({ length: n }, (_, i) => attach(sb, NET, sb.container(`m${i}`), `m${i}`, { firewall: null }));
  const conf = (a: Attached) => ({ cniVersion: '1.0.0', name: NET.name, type: 'firewall', prevResult: a.result });
  const adds = await Promise.all(attached.map((a) => sb.pluginAsync('firewall', { command: 'ADD', containerId: a.cid, netns: Sandbox.path(a.ns), conf: conf(a) })));
  t.deepEqual(adds.map((r) => r.code), adds.map(() => 0), adds.map((r) => r.stdout).join('\n'));
  t.is(iptablesS(sb).split('\n').filter((l) => OURS.test(l)).length, 1, 'exactly one rule of ours in FORWARD');
  t.is(iptablesS(sb, true).split('\n').filter((l) => OURS.test(l)).length, 1, 'and in ip6tables\' FORWARD');
  t.is(setComments(sb, 'firewall_ctr4').length, n);
  const dels = await Promise.all(attached.map((a) => sb.pluginAsync('firewall', { command: 'DEL', containerId: a.cid, netns: Sandbox.path(a.ns), conf: conf(a) })));
  t.deepEqual(dels.map((r) => r.code), dels.map(() => 0), dels.map((r) => r.stdout).join('\n'));
  t.deepEqual([...setComments(sb, 'firewall_ctr4'), ...setComments(sb, 'firewall_bridges'), ...setComments(sb, 'firewall_same')], []);
  t.deepEqual(iptablesSave(sb), before, 'our rule went with the last of them');
  for (const a of attached) detach(sb, { ...a, opts: { firewall: null } });
});

netnsSerial.needs({ met: existsSync(REFERENCE_FIREWALL), reason: `needs the reference firewall in ${REFERENCE_FIREWALL}` })(
  'where both run: the reference firewall (iptables backend) drops published ports and leaves its chains; ours passes them and leaves nothing', async (t) => {
    const sb = new Sandbox('fx');
    t.teardown(() => sb.cleanup());
    const out = sb.outside();
    bridgeNf(sb, true);
    forwardPolicy(sb, 'DROP');
    const before = iptablesSave(sb);
    const c1 = sb.container('c1');
    const c2 = sb.container('c2');
    const a1 = attach(sb, NET, c1, 'ctr1', { mappings: WEB, firewall: null });
    const a2 = attach(sb, NET, c2, 'ctr2', { firewall: null });
    await serve(sb, c1, 'web1', 80);
    await serve(sb, out, 'outside', 8000);
    const ref = (a: Attached, command: string) => runAt(sb, REFERENCE_FIREWALL, { command, containerId: a.cid, netns: Sandbox.path(a.ns), conf: { cniVersion: '1.0.0', name: NET.name, type: 'firewall', backend: 'iptables', prevResult: a.result } });
    for (const a of [a1, a2]) t.is(ref(a, 'ADD').code, 0, 'reference ADD');
    t.like(await traffic(sb, out, a1, a2), { outbound4: true, outbound6: true, containers4: true, published4: false, published6: false },
      'reference: outbound and container to container pass, a published port from outside is dropped (cni-notes §11.5)');
    for (const a of [a1, a2]) t.is(ref(a, 'DEL').code, 0, 'reference DEL');
    const left = iptablesS(sb);
    t.regex(left, /^-N CNI-FORWARD$/m, 'reference: its chains stay after the last DEL');
    t.regex(left, /^-A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD$/m);
    // Back to the host as it was, then ours on the same containers.
    bothIptables(sb, '-F');
    bothIptables(sb, '-X');
    t.deepEqual(iptablesSave(sb), before);
    for (const a of [a1, a2]) t.is(firewallCall(sb, a, 'ADD').code, 0, 'ours ADD');
    t.deepEqual(await traffic(sb, out, a1, a2), ALL, 'ours: everything passes, published ports included');
    for (const a of [a1, a2]) t.is(firewallCall(sb, a, 'DEL').code, 0, 'ours DEL');
    t.deepEqual(iptablesSave(sb), before, 'ours: nothing left');
    for (const a of [a1, a2]) detach(sb, { ...a, opts: { ...a.opts, firewall: null } });
  });

/** The CmdArgs of an in-process call whose kernel is the sandbox host's (never this process's namespace). */
function inProcess(t: { teardown(fn: () => void): void }, sb: Sandbox, command: 'ADD' | 'DEL', a: Attached, keys: Record<string, unknown>): CmdArgs {
  const kernel = processKernel({ hostNetns: sb.hostPath });
  t.teardown(() => kernel.release());
  const conf = { cniVersion: '1.0.0', name: NET.name, type: 'firewall', ...keys, prevResult: a.result };
  return {
    command, containerId: a.cid, netns: Sandbox.path(a.ns), ifName: 'eth0', args: '', path: [BIN],
    stdinData: Buffer.from(JSON.stringify(conf)), conf: conf as RawConf, env: {}, self: '', log: silentLogger, kernel,
  };
}

netnsTest('a failing ADD undoes what it did: elements, the network\'s state, the port flag; another attachment is untouched', async (t) => {
  const sb = new Sandbox('fb');
  t.teardown(() => sb.cleanup());
  forwardPolicy(sb, 'DROP');
  const a1 = attach(sb, NET, sb.container('c1'), 'ctr1', { firewall: null });
  const a2 = attach(sb, NET, sb.container('c2'), 'ctr2', { firewall: null });
  const veth = a1.result.interfaces[1].name as string;
  const failing = (step: 'isolate' | 'foreign') => makeFirewallPlugin({
    ...defaultDeps,
    setPortIsolated: async (k, v, on) => { if (step === 'isolate' && on) throw new Error('injected'); await defaultDeps.setPortIsolated(k, v, on); },
    ensureForeignRules: async (nft) => { if (step === 'foreign') throw new Error('injected'); return defaultDeps.ensureForeignRules(nft); },
  });
  const isolatedPort = () => JSON.parse(hostCmd(sb, 'bridge', ['-j', '-d', 'link', 'show', 'dev', veth]))[0]?.isolated;
  for (const step of ['isolate', 'foreign'] as const) {
    const err = await t.throwsAsync(failing(step).add(inProcess(t, sb, 'ADD', a1, { icc: false })));
    t.regex(err!.message, /failed to set up the firewall/);
    t.deepEqual([...setComments(sb, 'firewall_ctr4'), ...setComments(sb, 'firewall_bridges'), ...setComments(sb, 'firewall_noicc')], [], `${step}: nothing of ours is left`);
    t.is(isolatedPort(), false, `${step}: the port is not isolated`);
  }
  // With another attachment in place, a failing ADD takes only its own elements back.
  t.is(firewallCall(sb, a2, 'ADD', { icc: false }).code, 0);
  await t.throwsAsync(failing('foreign').add(inProcess(t, sb, 'ADD', a1, { icc: false })));
  t.deepEqual(setComments(sb, 'firewall_ctr4'), ['net=fwnet id=ctr2 if=eth0']);
  t.deepEqual(setComments(sb, 'firewall_noicc'), ['net=fwnet'], 'the network keeps its state for ctr2');
  t.regex(iptablesS(sb), OURS);
  await firewallPlugin.del(inProcess(t, sb, 'DEL', a2, { icc: false }));
  t.notRegex(iptablesS(sb), /cnikit/);
  for (const a of [a1, a2]) detach(sb, { ...a, opts: { firewall: null } });
});

netnsTest('after iptables-save | iptables-restore our rule (its comment now an x_tables match) is still ours: CHECK passes, the last DEL removes it', async (t) => {
  const sb = new Sandbox('fs');
  t.teardown(() => sb.cleanup());
  forwardPolicy(sb, 'DROP');
  const before = iptablesSave(sb);
  const a1 = attach(sb, NET, sb.container('c1'), 'ctr1', { firewall: {} });
  const saved = hostCmd(sb, '/usr/sbin/iptables-save', []);
  t.is(sb.exec(sb.host, '/usr/sbin/iptables-restore', [], { input: saved }).status, 0);
  t.true(nftChainRules(sb, 'ip', 'filter', 'FORWARD')[0]?.exprs.includes('xt'), 'the comment is an x_tables match now');
  t.is(firewallCall(sb, a1, 'CHECK').code, 0, firewallCall(sb, a1, 'CHECK').stdout);
  t.is(firewallCall(sb, a1, 'ADD').code, 0);
  t.is(iptablesS(sb).split('\n').filter((l) => OURS.test(l)).length, 1, 'ADD again does not add a second one');
  detach(sb, a1);
  t.deepEqual(iptablesSave(sb), before);
});

/**
 * bandwidth end to end: the built executable chained after a real bridge ADD in a sandbox host,
 * read back with `tc -j` and `ip -j` as a user would, side by side with the reference plugin
 * (/usr/lib/cni/bandwidth) for the same config; CHECK, DEL (also after the namespace is gone,
 * with a config it cannot use, and after the reference's ADD), the capability path as
 * containerd sends it, bad input and a failed ADD leaving nothing. The shaped rates measured
 * with real TCP flows are in bandwidth-rate.test.ts.
 */
import { existsSync } from 'node:fs';
import { netnsTest } from './lib/netns-test.ts';
import { Sandbox, ip } from './lib/sandbox.ts';
import {
  REF_BANDWIDTH, attachBridge, bandwidth, detachBridge, ifbs, madeQdiscs, redirects, tc,
} from './lib/bandwidth-lib.ts';

// 8 Mbit/s with a 10000-byte bucket to the container, 4 Mbit/s with 5000 bytes from it (§12.2).
const LIMITS = { ingressRate: 8_000_000, ingressBurst: 80_000, egressRate: 4_000_000, egressBurst: 40_000 };
const refTest = netnsTest.needs({ met: existsSync(REF_BANDWIDTH), reason: `no reference plugin at ${REF_BANDWIDTH}` });

/** The TBF as `tc -j -d qdisc show` prints it for the reference's numbers. */
const tbf = (rate: number, burst: number) => ({ kind: 'tbf', handle: '1:', root: true, options: { rate, burst: `${burst}b/1`, mpu: 0, lat: 25000, linklayer: 'unspec' } });
const drop = <T extends Record<string, unknown>>(o: T, ...keys: string[]) => Object.fromEntries(Object.entries(o).filter(([k]) => !keys.includes(k)));

refTest('ADD shapes both directions as the reference does: the same TBFs, ingress qdisc and redirect; CHECK; DEL leaves nothing', (t) => {
  const sb = new Sandbox('bw');
  t.teardown(() => sb.cleanup());
  const ours = attachBridge(sb, sb.container('c1'), 'ctr1');
  const ref = attachBridge(sb, sb.container('c2'), 'ctr2');

  const add = bandwidth(sb, 'ADD', ours, LIMITS);
  t.is(add.code, 0, add.stdout + add.stderr);
  const refAdd = bandwidth(sb, 'ADD', ref, LIMITS, { bin: REF_BANDWIDTH });
  t.is(refAdd.code, 0, refAdd.stdout);

  // The result is prevResult plus the ifb, as the reference's.
  const ifb = add.json.interfaces.at(-1);
  t.deepEqual(add.json.interfaces.slice(0, -1), ours.bridge.interfaces);
  t.regex(ifb.name, /^bwp[0-9a-f]{12}$/);
  t.deepEqual(Object.keys(ifb).sort(), Object.keys(refAdd.json.interfaces.at(-1)).sort());
  t.deepEqual(ifbs(sb).sort(), [ifb.name, refAdd.json.interfaces.at(-1).name].sort());
  const link = JSON.parse(ip('-n', sb.host, '-j', '-d', 'link', 'show', ifb.name))[0];
  t.like(link, { address: ifb.mac, mtu: 1500, linkinfo: { info_kind: 'ifb' } });
  t.true(link.flags.includes('UP'));

  // Host veth: the TBF to the container and the ingress qdisc; ifb: the TBF from it.
  const strip = (qs: any[]) => qs.map((q) => drop(q, 'refcnt'));
  t.deepEqual(strip(madeQdiscs(sb, ours.veth)), [tbf(1_000_000, 10_000), { kind: 'ingress', handle: 'ffff:', parent: 'ffff:fff1', options: {} }]);
  t.deepEqual(strip(madeQdiscs(sb, ifb.name)), [tbf(500_000, 5_000)]);
  t.deepEqual(strip(madeQdiscs(sb, ours.veth)), strip(madeQdiscs(sb, ref.veth)), 'the reference makes the same qdiscs');
  t.deepEqual(strip(madeQdiscs(sb, ifb.name)), strip(madeQdiscs(sb, refAdd.json.interfaces.at(-1).name)));
  // One match-all u32 filter stealing everything into the ifb; the reference's has a second,
  // never reached, copy of the action (§12.4).
  const redirect = { pref: 1, protocol: 'all', flowid: '1:1', match: { value: '0', mask: '0', offmask: '', off: 0 } };
  t.deepEqual(redirects(sb, ours.veth), [{ ...redirect, actions: [{ kind: 'mirred', action: 'redirect', direction: 'egress', to: ifb.name, control: 'stolen' }] }]);
  t.deepEqual(redirects(sb, ref.veth).map((f) => ({ ...f, actions: f.actions.slice(0, 1) })),
    [{ ...redirect, actions: [{ kind: 'mirred', action: 'redirect', direction: 'egress', to: refAdd.json.interfaces.at(-1).name, control: 'stolen' }] }]);

  t.is(bandwidth(sb, 'CHECK', ours, LIMITS, { prevResult: add.json }).code, 0);
  const wrong = bandwidth(sb, 'CHECK', ours, { ...LIMITS, egressRate: 2_000_000 }, { prevResult: add.json });
  t.is(wrong.code, 1);
  t.regex(wrong.json.details, /ifb bwp[0-9a-f]+\): rate is 500000 B\/s, should be 250000/);

  const del = bandwidth(sb, 'DEL', ours, LIMITS, { prevResult: add.json });
  t.is(del.code, 0, del.stdout + del.stderr);
  t.deepEqual(madeQdiscs(sb, ours.veth), [], 'no qdisc of ours is left on the host veth');
  t.deepEqual(ifbs(sb), [refAdd.json.interfaces.at(-1).name], 'our ifb is gone, the other attachment\'s stays');
  t.true(madeQdiscs(sb, ref.veth).length === 2, 'the other attachment keeps its shaping');
  t.is(bandwidth(sb, 'DEL', ours, LIMITS, { prevResult: add.json }).code, 0, 'DEL again');
  t.is(detachBridge(sb, ours).code, 0);
  t.is(bandwidth(sb, 'DEL', ours, LIMITS, { prevResult: add.json }).code, 0, 'DEL once the veth is gone');
});

netnsTest('CHECK fails once a qdisc is deleted with tc, or the ifb is gone', (t) => {
  const sb = new Sandbox('bc');
  t.teardown(() => sb.cleanup());
  const at = attachBridge(sb, sb.container('c1'), 'ctr1');
  const add = bandwidth(sb, 'ADD', at, LIMITS);
  t.is(add.code, 0, add.stdout);
  const ifb = add.json.interfaces.at(-1).name;
  t.is(bandwidth(sb, 'CHECK', at, LIMITS, { prevResult: add.json }).code, 0);

  tc(sb, 'qdisc', 'del', 'dev', at.veth, 'root');
  let check = bandwidth(sb, 'CHECK', at, LIMITS, { prevResult: add.json });
  t.is(check.code, 1);
  t.regex(check.json.details, new RegExp(`traffic to the container \\(${at.veth}\\): no TBF qdisc`));

  tc(sb, 'qdisc', 'del', 'dev', at.veth, 'ingress');
  check = bandwidth(sb, 'CHECK', at, { egressRate: LIMITS.egressRate, egressBurst: LIMITS.egressBurst }, { prevResult: add.json });
  t.is(check.code, 1);
  t.regex(check.json.details, /has no ingress qdisc to redirect from/);

  ip('-n', sb.host, 'link', 'del', ifb);
  check = bandwidth(sb, 'CHECK', at, LIMITS, { prevResult: add.json });
  t.regex(check.json.details, new RegExp(`ifb device ${ifb} is missing`));

  t.is(bandwidth(sb, 'DEL', at, LIMITS, { prevResult: add.json }).code, 0, 'DEL of what is left');
  t.deepEqual(madeQdiscs(sb, at.veth), []);
});

for (const version of ['0.3.1', '0.4.0', '1.1.0']) {
  netnsTest(`[${version}] ADD returns prevResult plus the ifb; DEL leaves nothing`, (t) => {
    const sb = new Sandbox('bv');
    t.teardown(() => sb.cleanup());
    const at = attachBridge(sb, sb.container('c1'), 'ctr1', 'eth0', version);
    const add = bandwidth(sb, 'ADD', at, LIMITS, { version });
    t.is(add.code, 0, add.stdout + add.stderr);
    t.is(add.json.cniVersion, version);
    t.deepEqual(add.json.ips, at.bridge.ips);
    t.deepEqual(add.json.interfaces.at(-1), { name: ifbs(sb)[0], mac: add.json.interfaces.at(-1).mac });
    // CHECK exists from 0.4.0 on (the skel refuses it before).
    if (version !== '0.3.1') t.is(bandwidth(sb, 'CHECK', at, LIMITS, { prevResult: add.json, version }).code, 0);
    t.is(bandwidth(sb, 'DEL', at, LIMITS, { prevResult: add.json, version }).code, 0);
    t.deepEqual(ifbs(sb), []);
    t.deepEqual(madeQdiscs(sb, at.veth), []);
  });
}

netnsTest('the capability as containerd sends it: runtimeConfig.bandwidth with the 2^32-1 burst gives a bucket that shapes', (t) => {
  const sb = new Sandbox('bk');
  t.teardown(() => sb.cleanup());
  const at = attachBridge(sb, sb.container('c1'), 'ctr1');
  // kubernetes.io/ingress-bandwidth: 10M, kubernetes.io/egress-bandwidth: 20M (docs/cni-notes.md §13.3).
  const runtime = { runtimeConfig: { bandwidth: { ingressRate: 10_000_000, ingressBurst: 4294967295, egressRate: 20_000_000, egressBurst: 4294967295 } } };
  const add = bandwidth(sb, 'ADD', at, runtime);
  t.is(add.code, 0, add.stdout + add.stderr);
  const ifb = add.json.interfaces.at(-1).name;
  // The bucket of a runtime's "no burst": 25 ms of the rate, at least 64 KiB (both here).
  t.like(madeQdiscs(sb, at.veth)[0], { kind: 'tbf', options: { rate: 1_250_000, burst: '64Kb/1' } });
  t.like(madeQdiscs(sb, ifb)[0], { kind: 'tbf', options: { rate: 2_500_000, burst: '64Kb/1' } });
  t.is(bandwidth(sb, 'CHECK', at, runtime, { prevResult: add.json }).code, 0);
  t.is(bandwidth(sb, 'DEL', at, runtime, { prevResult: add.json }).code, 0);
  t.deepEqual(ifbs(sb), []);

  // One direction only (containerd sends 0 for the other), and top-level keys win over runtimeConfig.
  const one = bandwidth(sb, 'ADD', at, { runtimeConfig: { bandwidth: { ingressRate: 10_000_000, ingressBurst: 4294967295, egressRate: 0, egressBurst: 0 } } });
  t.is(one.code, 0, one.stdout);
  t.deepEqual(ifbs(sb), [], 'no ifb without egress');
  t.is(madeQdiscs(sb, at.veth).length, 1);
  t.is(bandwidth(sb, 'DEL', at, {}, { prevResult: one.json }).code, 0);
  const top = bandwidth(sb, 'ADD', at, { ingressRate: 8_000_000, ingressBurst: 80_000, ...runtime });
  t.is(top.code, 0, top.stdout);
  t.deepEqual(ifbs(sb), [], 'runtimeConfig ignored once a key is at the top level');
  t.like(madeQdiscs(sb, at.veth)[0], { options: { rate: 1_000_000, burst: '10000b/1' } });
  t.is(bandwidth(sb, 'DEL', at, {}, { prevResult: top.json }).code, 0);
  t.deepEqual(madeQdiscs(sb, at.veth), []);
});

netnsTest('bad input is refused with code 7 naming the key, before anything changes', (t) => {
  const sb = new Sandbox('bb');
  t.teardown(() => sb.cleanup());
  const at = attachBridge(sb, sb.container('c1'), 'ctr1');
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ ingressRate: 8_000_000 }, /ingressRate: if rate is set, burst must also be set/],
    [{ egressBurst: 80_000 }, /egressBurst: if burst is set, rate must also be set/],
    [{ egressRate: 8_000_000, egressBurst: 8 * 2 ** 32 }, /egressBurst: burst cannot be more than 4GB/],
    [{ ingressRate: -1, ingressBurst: 80_000 }, /ingressRate: must be a non-negative integer/],
    [{ runtimeConfig: { bandwidth: { egressRate: 4, egressBurst: 80_000 } } }, /runtimeConfig\.bandwidth\.egressRate: must be at least 8 bit\/s/],
  ];
  for (const [keys, why] of cases) {
    const r = bandwidth(sb, 'ADD', at, keys);
    t.is(r.code, 1, JSON.stringify(keys));
    t.is(r.json.code, 7);
    t.regex(`${r.json.msg}: ${r.json.details}`, why);
    t.deepEqual(madeQdiscs(sb, at.veth), []);
    t.deepEqual(ifbs(sb), []);
    // DEL never fails on a config it cannot use.
    t.is(bandwidth(sb, 'DEL', at, keys).code, 0);
  }
  const noPrev = bandwidth(sb, 'ADD', at, LIMITS, { prevResult: undefined });
  t.like(noPrev.json, { code: 7, details: 'must be called as chained plugin: prevResult is missing' });
  t.is(bandwidth(sb, 'ADD', at, {}, { prevResult: undefined }).json.code, 7, 'also with nothing to shape (the reference panics)');
  const noVeth = bandwidth(sb, 'ADD', at, LIMITS, { prevResult: { ...at.bridge, interfaces: at.bridge.interfaces.filter((i: { name: string }) => i.name !== at.veth) } });
  t.regex(noVeth.json.msg, /no veth peer of container interface found in host ns/);
});

netnsTest('a failed ADD removes what it made and nothing else; a repeated ADD fails and keeps the first', (t) => {
  const sb = new Sandbox('bf');
  t.teardown(() => sb.cleanup());
  const at = attachBridge(sb, sb.container('c1'), 'ctr1');
  const first = bandwidth(sb, 'ADD', at, LIMITS);
  t.is(first.code, 0, first.stdout);
  const ifb = first.json.interfaces.at(-1).name;
  t.is(bandwidth(sb, 'DEL', at, LIMITS).code, 0);

  // Someone else's device holds the ifb's name: the ifb step fails after the host TBF was added.
  ip('-n', sb.host, 'link', 'add', ifb, 'type', 'bridge');
  const r = bandwidth(sb, 'ADD', at, LIMITS);
  t.is(r.code, 1);
  t.regex(`${r.json.msg}: ${r.json.details}`, new RegExp(`failed to create ifb device ${ifb}: .*EEXIST`));
  t.deepEqual(madeQdiscs(sb, at.veth), [], 'the host veth\'s TBF was taken back');
  t.is(JSON.parse(ip('-n', sb.host, '-j', '-d', 'link', 'show', ifb))[0].linkinfo.info_kind, 'bridge', 'the foreign device stays');
  t.is(bandwidth(sb, 'DEL', at, LIMITS).code, 0);
  t.is(JSON.parse(ip('-n', sb.host, '-j', '-d', 'link', 'show', ifb))[0].linkinfo.info_kind, 'bridge', 'DEL leaves it too');
  ip('-n', sb.host, 'link', 'del', ifb);

  const ok = bandwidth(sb, 'ADD', at, LIMITS);
  t.is(ok.code, 0, ok.stdout);
  const again = bandwidth(sb, 'ADD', at, LIMITS);
  t.is(again.code, 1);
  t.regex(again.json.details, /EEXIST.*an ADD repeated without DEL/);
  t.is(bandwidth(sb, 'CHECK', at, LIMITS, { prevResult: ok.json }).code, 0, 'the first ADD\'s shaping is intact');
  t.is(bandwidth(sb, 'DEL', at, LIMITS).code, 0);
  t.deepEqual(madeQdiscs(sb, at.veth), []);
  t.deepEqual(ifbs(sb), []);
});

netnsTest('two interfaces of one container on one network get two ifbs (the reference\'s names collide)', (t) => {
  const sb = new Sandbox('b2');
  t.teardown(() => sb.cleanup());
  const ns = sb.container('c1');
  const eth0 = attachBridge(sb, ns, 'ctr1', 'eth0');
  const eth1 = attachBridge(sb, ns, 'ctr1', 'eth1');
  const a0 = bandwidth(sb, 'ADD', eth0, LIMITS);
  const a1 = bandwidth(sb, 'ADD', eth1, LIMITS);
  t.is(a0.code, 0, a0.stdout);
  t.is(a1.code, 0, a1.stdout);
  t.not(a0.json.interfaces.at(-1).name, a1.json.interfaces.at(-1).name);
  t.is(ifbs(sb).length, 2);
  t.is(bandwidth(sb, 'DEL', eth0, LIMITS).code, 0);
  t.deepEqual(ifbs(sb), [a1.json.interfaces.at(-1).name], 'DEL of eth0 leaves eth1\'s');
  t.is(bandwidth(sb, 'CHECK', eth1, LIMITS, { prevResult: a1.json }).code, 0);
  t.is(bandwidth(sb, 'DEL', eth1, LIMITS).code, 0);
  t.deepEqual(ifbs(sb), []);
});

netnsTest('DEL after the container namespace is gone, with an empty CNI_NETNS, and with a config it cannot use', (t) => {
  const sb = new Sandbox('bg');
  t.teardown(() => sb.cleanup());
  const ns = sb.container('c1');
  const at = attachBridge(sb, ns, 'ctr1');
  t.is(bandwidth(sb, 'ADD', at, LIMITS).code, 0);
  ip('netns', 'del', ns); // the veth pair goes with it; the ifb does not
  t.is(ifbs(sb).length, 1);
  const bad = { ingressRate: 'fast', egressBurst: -3, runtimeConfig: 'x' };
  const del = bandwidth(sb, 'DEL', at, bad);
  t.is(del.code, 0, del.stdout + del.stderr);
  t.deepEqual(ifbs(sb), []);
  const empty = sb.plugin('bandwidth', { command: 'DEL', containerId: 'ctr1', netns: '', conf: { cniVersion: '1.0.0', name: 'bwnet', type: 'bandwidth' } });
  t.is(empty.code, 0, empty.stdout);
});

refTest('DEL cleans up after the reference\'s ADD: its qdiscs and its ifb', (t) => {
  const sb = new Sandbox('br');
  t.teardown(() => sb.cleanup());
  const at = attachBridge(sb, sb.container('c1'), 'ctr1');
  const add = bandwidth(sb, 'ADD', at, LIMITS, { bin: REF_BANDWIDTH });
  t.is(add.code, 0, add.stdout);
  t.is(ifbs(sb).length, 1);
  t.is(bandwidth(sb, 'DEL', at, LIMITS, { prevResult: add.json }).code, 0);
  t.deepEqual(madeQdiscs(sb, at.veth), []);
  t.deepEqual(ifbs(sb), []);
});

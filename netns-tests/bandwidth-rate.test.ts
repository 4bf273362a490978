/**
 * The shaped rates, measured: a real TCP flow (a Node sender and receiver, 3 s) between the
 * container and the sandbox host, through bridge + bandwidth, in each direction, must run within
 * ±25% of the configured rate. Different rates each way show which qdisc shapes which direction:
 * ingress (to the container) is the host veth's TBF, egress (from it) the ifb's.
 *
 * With a small explicit burst (10000 and 5000 bytes), and with the capability as containerd
 * sends it (burst 2^32-1 bits, the reference's 154 s bucket that let a 4 s flow run at 242
 * Mbit/s: docs/cni-notes.md §12.2). Serial: each test runs long flows that starve others on two
 * cores. The measured numbers are logged (`npx ava --verbose`).
 */
import { netnsSerial } from './lib/netns-test.ts';
import { Sandbox } from './lib/sandbox.ts';
import { NET, attachBridge, bandwidth, detachBridge, ifbs, madeQdiscs, measureTcp } from './lib/bandwidth-lib.ts';

const FLOW_MS = 3000;
const within = (measured: number, want: number) => Math.abs(measured - want) / want <= 0.25;
const mbit = (x: number) => `${(x / 1e6).toFixed(2)} Mbit/s`;

const CASES: { title: string; keys: Record<string, unknown>; ingress: number; egress: number }[] = [
  {
    title: 'a small explicit burst: 8 Mbit/s to the container, 4 Mbit/s from it',
    keys: { ingressRate: 8_000_000, ingressBurst: 80_000, egressRate: 4_000_000, egressBurst: 40_000 },
    ingress: 8_000_000, egress: 4_000_000,
  },
  {
    title: 'the capability as containerd sends it: 10 Mbit/s in, 20 Mbit/s out, burst 2^32-1 bits',
    keys: { runtimeConfig: { bandwidth: { ingressRate: 10_000_000, ingressBurst: 4294967295, egressRate: 20_000_000, egressBurst: 4294967295 } } },
    ingress: 10_000_000, egress: 20_000_000,
  },
];

for (const c of CASES) {
  netnsSerial(`TCP flows run at the configured rate each way (±25%): ${c.title}`, async (t) => {
    const sb = new Sandbox('bt');
    t.teardown(() => sb.cleanup());
    const at = attachBridge(sb, sb.container('c1'), 'ctr1');
    const add = bandwidth(sb, 'ADD', at, c.keys);
    t.is(add.code, 0, add.stdout + add.stderr);

    const toContainer = await measureTcp(sb, sb.host, at.ns, at.ip, FLOW_MS, 5201);
    const fromContainer = await measureTcp(sb, at.ns, sb.host, NET.gateway, FLOW_MS, 5202);
    t.log(`to the container: ${mbit(toContainer)} (configured ${mbit(c.ingress)}); from it: ${mbit(fromContainer)} (configured ${mbit(c.egress)})`);
    t.true(within(toContainer, c.ingress), `to the container: ${mbit(toContainer)}, configured ${mbit(c.ingress)}`);
    t.true(within(fromContainer, c.egress), `from the container: ${mbit(fromContainer)}, configured ${mbit(c.egress)}`);

    t.is(bandwidth(sb, 'DEL', at, c.keys, { prevResult: add.json }).code, 0);
    t.deepEqual(madeQdiscs(sb, at.veth), []);
    t.deepEqual(ifbs(sb), []);
    // Unshaped again: the same flow is far above both rates once DEL has run.
    const free = await measureTcp(sb, at.ns, sb.host, NET.gateway, 1000, 5203);
    t.log(`from the container after DEL: ${mbit(free)}`);
    t.true(free > 4 * c.egress, `unshaped after DEL: ${mbit(free)}`);
    t.is(detachBridge(sb, at).code, 0);
  });
}

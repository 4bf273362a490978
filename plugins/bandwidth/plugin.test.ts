/**
 * The bandwidth handlers over a fake kernel (no root): the order of ADD's requests, and that a
 * failure at each step takes back exactly what the steps before it made, in reverse. The real
 * kernel's side is in netns-tests/bandwidth.test.ts.
 */
import test from 'ava';
import type { CmdArgs } from '../../pkg/cni/skel.ts';
import { CniError } from '../../pkg/cni/errors.ts';
import type { Kernel } from '../../pkg/kernel.ts';
import { silentLogger } from '../../pkg/log.ts';
import { FakeNetlinkSocket, type FakeAnswer } from '../../pkg/netlink/fake-socket.ts';
import { type NlMessage, attr, attrStr, encodeAttrs, parseAttrs } from '../../pkg/netlink/message.ts';
import { RouteHandle } from '../../pkg/netlink/route.ts';
import { bandwidthPlugin } from './plugin.ts';
import { ifbName } from './ifb-name.ts';

const RTM = { NEWLINK: 16, DELLINK: 17, GETLINK: 18, NEWQDISC: 36, DELQDISC: 37, GETQDISC: 38, NEWTFILTER: 44, GETTFILTER: 46 } as const;
const NAMES: Record<number, string> = Object.fromEntries(Object.entries(RTM).map(([k, v]) => [v, k]));
const ENODEV = 19, EPERM = 1;
const CTR_ETH0 = 2, HOST_VETH = 7, IFB = 9;
const IFB_NAME = ifbName('bwnet', 'ctr1', 'eth0');

/** An RTM_NEWLINK reply for a link. */
function link(index: number, name: string, kind: string, peer?: number): Buffer {
  const hdr = Buffer.alloc(16);
  hdr.writeInt32LE(index, 4);
  const attrs = [attr.str(3, name), attr.u32(4, 1500), attr.bytes(1, Buffer.from([2, 0, 0, 0, 0, index]))];
  if (peer) attrs.push(attr.u32(5, peer));
  attrs.push(attr.nested(18, [attr.str(1, kind)]));
  return Buffer.concat([hdr, encodeAttrs(attrs)]);
}

/** What a request names: the link name (GETLINK by name) or its ifindex. */
function target(m: NlMessage): string | number {
  if (m.type === RTM.GETLINK || m.type === RTM.NEWLINK || m.type === RTM.DELLINK) {
    return attrStr(parseAttrs(m.payload, 16).get(3)) ?? m.payload.readInt32LE(4);
  }
  return m.payload.readInt32LE(4);
}

interface World { log: string[]; ifb: boolean }

/** The container's namespace: eth0, a veth whose peer is the host's #7. */
function container(w: World): FakeNetlinkSocket {
  return new FakeNetlinkSocket((m): FakeAnswer => {
    w.log.push(`ctr ${NAMES[m.type]} ${target(m)}`);
    const t = target(m);
    return m.type === RTM.GETLINK && (t === 'eth0' || t === CTR_ETH0) ? { data: [link(CTR_ETH0, 'eth0', 'veth', HOST_VETH)], errno: 0 } : ENODEV;
  }, '/proc/self/ns/net');
}

/** Which request fails: the `nth` (from 1) that reads `what`. */
interface Fail { what: string; nth: number }

/** The host: veth #7 (peer: the container's #2), the ifb #9 once created. */
function host(w: World, fail?: Fail): FakeNetlinkSocket {
  let seen = 0;
  return new FakeNetlinkSocket((m): FakeAnswer => {
    const what = `host ${NAMES[m.type]} ${target(m)}`;
    w.log.push(what);
    if (what === fail?.what && ++seen === fail.nth) return EPERM;
    const t = target(m);
    switch (m.type) {
      case RTM.GETLINK:
        if (t === HOST_VETH || t === 'veth1') return { data: [link(HOST_VETH, 'veth1', 'veth', CTR_ETH0)], errno: 0 };
        if (w.ifb && (t === IFB || t === IFB_NAME)) return { data: [link(IFB, IFB_NAME, 'ifb')], errno: 0 };
        return ENODEV;
      case RTM.NEWLINK: w.ifb = true; return 0;
      case RTM.DELLINK: w.ifb = false; return 0;
      case RTM.GETQDISC: case RTM.GETTFILTER: return { data: [] };
      default: return 0;
    }
  });
}

function args(w: World, fail?: Fail): CmdArgs {
  const ctr = new RouteHandle(container(w));
  const hst = new RouteHandle(host(w, fail));
  const kernel: Kernel = {
    route: async (p) => (p ? ctr : hst),
    nftables: () => Promise.reject(new Error('no nftables')), netfilter: () => Promise.reject(new Error('no netfilter')),
    sysctlWrite: () => Promise.reject(new Error('no sysctl')), sysctlRead: () => Promise.reject(new Error('no sysctl')),
  };
  const conf = {
    cniVersion: '1.0.0', name: 'bwnet', type: 'bandwidth', ingressRate: 8_000_000, ingressBurst: 80_000, egressRate: 4_000_000, egressBurst: 40_000,
    prevResult: { cniVersion: '1.0.0', interfaces: [{ name: 'veth1' }, { name: 'eth0', sandbox: '/proc/self/ns/net' }] },
  };
  return {
    command: 'ADD', containerId: 'ctr1', netns: '/proc/self/ns/net', ifName: 'eth0', args: '', path: [],
    stdinData: Buffer.from(JSON.stringify(conf)), conf, env: { CNI_NETNS_OVERRIDE: '1' }, self: '', log: silentLogger, kernel,
  };
}

// What ADD changes, in order (the lookups between them left out).
const CHANGES = [
  `host NEWQDISC ${HOST_VETH}`, // TBF to the container
  `host NEWLINK ${IFB_NAME}`, //   the ifb
  `host NEWQDISC ${IFB}`, //       its TBF
  `host NEWQDISC ${HOST_VETH}`, // the ingress qdisc
  `host NEWTFILTER ${HOST_VETH}`, // the redirect
];
const changes = (log: string[]) => log.filter((l) => /NEW(QDISC|LINK|TFILTER)|DEL/.test(l));

test('ADD finds the host veth through the container\'s peer index, then shapes in order; the result adds the ifb', async (t) => {
  const w: World = { log: [], ifb: false };
  const r = await bandwidthPlugin.add(args(w));
  t.deepEqual(w.log.slice(0, 4), [`ctr GETLINK eth0`, `ctr GETLINK ${CTR_ETH0}`, `host GETLINK ${HOST_VETH}`, `host GETLINK ${HOST_VETH}`]);
  t.deepEqual(changes(w.log), CHANGES);
  t.deepEqual(r.interfaces?.at(-1), { name: IFB_NAME, mac: `02:00:00:00:00:0${IFB}` });
});

// Each step failing: what the earlier steps made is undone, last first.
const UNDO: Record<number, string[]> = {
  0: [],
  1: [`host DELQDISC ${HOST_VETH}`],
  2: [`host GETLINK ${IFB_NAME}`, `host DELLINK ${IFB}`, `host DELQDISC ${HOST_VETH}`],
  3: [`host GETLINK ${IFB_NAME}`, `host DELLINK ${IFB}`, `host DELQDISC ${HOST_VETH}`],
  4: [`host DELQDISC ${HOST_VETH}`, `host GETLINK ${IFB_NAME}`, `host DELLINK ${IFB}`, `host DELQDISC ${HOST_VETH}`],
};
for (const [i, step] of CHANGES.entries()) {
  test(`ADD failing at step ${i + 1} (${step}) undoes the steps before it, in reverse`, async (t) => {
    const w: World = { log: [], ifb: false };
    // Two steps are a NEWQDISC on the host veth: fail the right one.
    const nth = CHANGES.slice(0, i + 1).filter((x) => x === step).length;
    const err = await t.throwsAsync(bandwidthPlugin.add(args(w, { what: step, nth })), { instanceOf: CniError });
    t.regex(err!.details ?? '', /EPERM/);
    const made = changes(w.log);
    t.deepEqual(made.slice(0, i + 1), CHANGES.slice(0, i + 1), 'the steps up to the failing one');
    t.deepEqual(made.slice(i + 1), UNDO[i]!.filter((l) => l.includes('DEL')), 'then only undos');
    const failedAt = w.log.findIndex((l, j) => l === step && w.log.slice(0, j + 1).filter((x) => x === step).length === nth);
    t.deepEqual(w.log.slice(failedAt + 1), UNDO[i]!);
  });
}

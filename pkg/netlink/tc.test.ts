/**
 * Golden bytes of the traffic-control requests (TcHandle) and of the ifb link
 * (RouteHandle.linkAddIfb), against what real tools sent: testdata/tc-golden.json, captured by
 * testdata/tc-capture.ts with strace inside a throwaway namespace. `tc` itself for the ingress
 * qdisc, the u32 redirect filter, the deletes and the dumps; the reference bandwidth plugin for
 * the TBF parameters (no rate table) and the ifb (docs/cni-notes.md §12.4). The decoders read the
 * kernel's own dump replies from the same capture, and the requests we encode, back.
 */
import test from 'ava';
import { readFileSync } from 'node:fs';
import { FakeNetlinkSocket, type FakeAnswer } from './fake-socket.ts';
import { NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST, type NlMessage } from './message.ts';
import { RouteHandle } from './route.ts';
import {
  TC_ACT_OK, TC_ACT_STOLEN, TC_H_INGRESS, TC_H_ROOT, TCA_EGRESS_REDIR, type TbfParams, TcHandle,
  decodeFilter, decodeQdisc, formatHandle, tcHandle,
} from './tc.ts';

interface Msg { type: number; flags: number; hex: string }
const golden = JSON.parse(readFileSync(new URL('testdata/tc-golden.json', import.meta.url), 'utf8')) as {
  tc: { devices: { vethh: number; ifbx: number }; ingress: Msg[]; filter: Msg[]; delIngress: Msg[]; delRoot: Msg[];
    qdiscShow: { request: Msg[]; replies: Msg[] }; filterShow: { request: Msg[]; replies: Msg[] } };
  reference: { devices: Record<string, number>; qdiscs: Msg[]; filters: Msg[]; ifb: Msg[]; qdiscReplies: Msg[]; filterReplies: Msg[] };
  reference40G: { devices: Record<string, number>; qdiscs: Msg[]; qdiscReplies: Msg[] };
};

const CREATE = NLM_F_REQUEST | NLM_F_ACK | NLM_F_EXCL | NLM_F_CREATE;
const DUMP = NLM_F_REQUEST | NLM_F_DUMP;
const tcDev = golden.tc.devices;
const refVeth = golden.reference.devices.vethh!;
const refIfbName = Object.keys(golden.reference.devices).find((n) => n.startsWith('bwp'))!;
const refIfb = golden.reference.devices[refIfbName]!;

/** Runs `call` over a fake socket (answering dumps with `replies`) and returns what it sent. */
async function sent<T>(call: (sock: FakeNetlinkSocket) => Promise<T>, replies: Msg[] = []): Promise<{ msgs: Msg[]; value: T }> {
  const answer = (m: NlMessage): FakeAnswer => ((m.flags & NLM_F_DUMP) === NLM_F_DUMP ? { data: replies.map((r) => Buffer.from(r.hex, 'hex')) } : 0);
  const fake = new FakeNetlinkSocket(answer);
  const value = await call(fake);
  return { msgs: fake.messages.map((m) => ({ type: m.type, flags: m.flags, hex: m.payload.toString('hex') })), value };
}

const tc = (s: FakeNetlinkSocket): TcHandle => new TcHandle(s);

// ---- requests, byte for byte ----

test('qdiscAddIngress sends what `tc qdisc add dev X handle ffff: ingress` sends', async (t) => {
  t.deepEqual((await sent((s) => tc(s).qdiscAddIngress(tcDev.vethh))).msgs, golden.tc.ingress);
  t.is(golden.tc.ingress[0]!.flags, CREATE);
});

test('filterAddU32Redirect sends what `tc filter add ... u32 match u32 0 0 flowid 1:1 action mirred egress redirect dev IFB` sends', async (t) => {
  const { msgs } = await sent((s) => tc(s).filterAddU32Redirect(tcDev.vethh, { parent: tcHandle(0xffff, 0), prio: 1, classid: tcHandle(1, 1), target: tcDev.ifbx }));
  t.deepEqual(msgs, golden.tc.filter);
});

test('qdiscDelIngress and qdiscDelRoot send what `tc qdisc del dev X ingress|root` send', async (t) => {
  t.deepEqual((await sent((s) => tc(s).qdiscDelIngress(tcDev.vethh))).msgs, golden.tc.delIngress);
  t.deepEqual((await sent((s) => tc(s).qdiscDelRoot(tcDev.vethh))).msgs, golden.tc.delRoot);
});

test('qdiscList and filterList send the dump requests of `tc qdisc show dev X` and `tc filter show dev X parent ffff:`', async (t) => {
  t.deepEqual((await sent((s) => tc(s).qdiscList(tcDev.vethh))).msgs, golden.tc.qdiscShow.request);
  t.deepEqual((await sent((s) => tc(s).filterList(tcDev.vethh, tcHandle(0xffff, 0)))).msgs, golden.tc.filterShow.request);
  t.is(golden.tc.qdiscShow.request[0]!.flags, DUMP);
});

// The reference's numbers for 8 Mbit/s with a 10000-byte burst and 4 Mbit/s with 5000 bytes
// (docs/cni-notes.md §12.2): rate in bytes/s, limit = rate * 25 ms + burst, buffer in ticks.
const TBF_8M: TbfParams = { rate: 1_000_000n, limit: 35_000, buffer: 156_250, peakrate: 0n, mtu: 0 };
const TBF_4M: TbfParams = { rate: 500_000n, limit: 17_500, buffer: 156_250, peakrate: 0n, mtu: 0 };
// 40 Gbit/s with a 10 MB burst: the rate needs TCA_TBF_RATE64.
const TBF_40G: TbfParams = { rate: 5_000_000_000n, limit: 135_000_000, buffer: 31_250, peakrate: 0n, mtu: 0 };

test('qdiscAddTbf sends the reference plugin\'s TBF requests (parameters only; RATE64 from 2^32 B/s)', async (t) => {
  const [host, , ifb] = golden.reference.qdiscs;
  t.deepEqual((await sent((s) => tc(s).qdiscAddTbf(refVeth, TBF_8M))).msgs, [host!]);
  t.deepEqual((await sent((s) => tc(s).qdiscAddTbf(refIfb, TBF_4M))).msgs, [ifb!]);
  t.deepEqual((await sent((s) => tc(s).qdiscAddTbf(golden.reference40G.devices.vethh!, TBF_40G))).msgs, golden.reference40G.qdiscs);
});

test('linkAddIfb sends the reference plugin\'s ifb request (up, MTU of the host veth, txqlen 0)', async (t) => {
  const { msgs } = await sent((s) => new RouteHandle(s).linkAddIfb(refIfbName, { mtu: 1500, txqlen: 0, up: true }));
  t.deepEqual(msgs, golden.reference.ifb);
});

// ---- decoders, on the kernel's replies ----

test('qdiscList decodes the kernel\'s dump: the TBFs\' parameters as sent, the ingress qdisc, only the asked device', async (t) => {
  const replies = golden.reference.qdiscReplies;
  t.deepEqual((await sent((s) => tc(s).qdiscList(refVeth), replies)).value, [
    { ifindex: refVeth, handle: tcHandle(1, 0), parent: TC_H_ROOT, kind: 'tbf', tbf: TBF_8M },
    { ifindex: refVeth, handle: tcHandle(0xffff, 0), parent: TC_H_INGRESS, kind: 'ingress' },
  ]);
  t.deepEqual((await sent((s) => tc(s).qdiscList(refIfb), replies)).value, [
    { ifindex: refIfb, handle: tcHandle(1, 0), parent: TC_H_ROOT, kind: 'tbf', tbf: TBF_4M },
  ]);
  t.deepEqual(decodeQdisc(Buffer.from(golden.reference40G.qdiscReplies[0]!.hex, 'hex')).tbf, TBF_40G, 'the 64-bit rate');
});

test('filterList decodes the kernel\'s u32 dump: hash table entries, then the match-all key with its mirred actions', async (t) => {
  const filters = (await sent((s) => tc(s).filterList(refVeth, tcHandle(0xffff, 0)), golden.reference.filterReplies)).value;
  t.is(filters.length, 3);
  for (const f of filters) t.like(f, { ifindex: refVeth, parent: tcHandle(0xffff, 0), prio: 1, protocol: 3, kind: 'u32', chain: 0 });
  // The classifier itself (handle 0), then its hash table 800: (handle 0x80000000): no selector, no action.
  t.deepEqual(filters.slice(0, 2).map((f) => [f.handle, f.sel, f.actions]), [[0, undefined, []], [0x80000000, undefined, []]]);
  // The reference installs two mirred actions (vishvananda's RedirIndex plus its Actions list).
  const node = filters[2]!;
  t.is(node.handle, 0x80000800);
  t.is(node.classid, tcHandle(1, 1));
  t.deepEqual(node.sel, { flags: 1, keys: [{ mask: 0, val: 0, off: 0, offmask: 0 }] });
  t.deepEqual(node.actions.map((a) => [a.kind, a.mirred?.action, a.mirred?.eaction, a.mirred?.ifindex]), [
    ['mirred', TC_ACT_STOLEN, TCA_EGRESS_REDIR, refIfb],
    ['mirred', TC_ACT_OK, TCA_EGRESS_REDIR, refIfb],
  ]);
});

test('decodeFilter reads the filter `tc` made (one action) from the kernel, and our own request back', (t) => {
  const node = golden.tc.filterShow.replies.map((m) => decodeFilter(Buffer.from(m.hex, 'hex'))).find((f) => f.sel);
  t.like(node, { ifindex: tcDev.vethh, prio: 1, protocol: 3, classid: tcHandle(1, 1) });
  t.deepEqual(node?.actions.map((a) => a.mirred && [a.mirred.action, a.mirred.eaction, a.mirred.ifindex]), [[TC_ACT_STOLEN, TCA_EGRESS_REDIR, tcDev.ifbx]]);
  const ours = decodeFilter(Buffer.from(golden.tc.filter[0]!.hex, 'hex'));
  t.like(ours, { ifindex: tcDev.vethh, handle: 0, parent: tcHandle(0xffff, 0), prio: 1, protocol: 3, kind: 'u32', classid: tcHandle(1, 1) });
  t.deepEqual(ours.actions, [{ kind: 'mirred', mirred: { index: 0, action: TC_ACT_STOLEN, eaction: TCA_EGRESS_REDIR, ifindex: tcDev.ifbx } }]);
});

test('decodeQdisc reads our TBF request back, also with rates and buffers at the top of their ranges', async (t) => {
  for (const tbf of [TBF_8M, TBF_40G, { rate: 0xffffffffn, limit: 0xffffffff, buffer: 0xffffffff, peakrate: 0n, mtu: 0 }, { ...TBF_40G, rate: 2n ** 64n - 1n }]) {
    const { msgs } = await sent((s) => tc(s).qdiscAddTbf(7, tbf));
    t.deepEqual(decodeQdisc(Buffer.from(msgs[0]!.hex, 'hex')), { ifindex: 7, handle: tcHandle(1, 0), parent: TC_H_ROOT, kind: 'tbf', tbf });
  }
});

test('formatHandle and tcHandle spell handles as tc does', (t) => {
  t.is(formatHandle(tcHandle(1, 0)), '1:');
  t.is(formatHandle(tcHandle(0xffff, 0)), 'ffff:');
  t.is(formatHandle(tcHandle(1, 1)), '1:1');
  t.is(tcHandle(0xffff, 0xfff1), TC_H_INGRESS);
});

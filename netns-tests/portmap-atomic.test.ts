/**
 * Atomicity of a portmap ADD against the real kernel: the plugin's handlers run in this process
 * with an injected nftables socket (through the call's kernel), bound to the sandbox host
 * namespace, that corrupts the second message of the transaction (an unknown message type, which
 * nfnetlink refuses with EINVAL). The kernel must then apply none of the batch: no table on a fresh host, and no new
 * element next to an existing attachment, whose mapping keeps working.
 */
import type { CmdArgs, RawConf } from '../pkg/cni/skel.ts';
import { processKernel } from '../pkg/open-kernel.ts';
import { NLM_F_REQUEST, encodeMessage, parseMessages } from '../pkg/netlink/message.ts';
import { BlockingNetlinkSocket, type Exchange, NETLINK_NETFILTER, NetlinkSocketBase, type NetlinkSocket } from '../pkg/netlink/socket.ts';
import { NFNL_MSG_BATCH_BEGIN } from '../pkg/nftables/consts.ts';
import { Nftables } from '../pkg/nftables/handle.ts';
import { makePortmapPlugin } from '../plugins/portmap/portmap.ts';
import { BIN, Sandbox, tcpRequest } from './lib/sandbox.ts';
import { netnsTest } from './lib/netns-test.ts';
import { NET_A, attach, bridgeConf, nftView, owners, portmapConf, serve } from './lib/portmap-lib.ts';
import { silentLogger } from '../pkg/log.ts';

/** A socket into `netns` whose batches get their message number `victim` (1 = first after BEGIN) garbled. */
class CorruptingSocket extends NetlinkSocketBase {
  private readonly inner: NetlinkSocket;
  private readonly victim: number;
  constructor(netns: string, victim: number) {
    super();
    this.inner = BlockingNetlinkSocket.open(NETLINK_NETFILTER, netns);
    this.victim = victim;
  }
  get netns() { return this.inner.netns; }
  exchange(buf: Buffer, x: Exchange) {
    const msgs = parseMessages(buf);
    if (msgs[0]?.type !== NFNL_MSG_BATCH_BEGIN) return this.inner.exchange(buf, x);
    return this.inner.exchange(Buffer.concat(msgs.map((m, i) => encodeMessage(i === this.victim ? (10 << 8) | 0x7f : m.type, m.flags | NLM_F_REQUEST, m.seq, m.payload))), x);
  }
  close() { this.inner.close(); }
}

/** The CmdArgs of an in-process ADD whose nftables handle is `nft` (closed when the test ends). */
function args(t: { teardown(fn: () => void): void }, ns: string, cid: string, conf: Record<string, unknown>, nft: Nftables): CmdArgs {
  // Everything else of the call's kernel is the sandbox host's too, never this process's namespace.
  const kernel = processKernel({ hostNetns: nft.sock.netns });
  t.teardown(() => { nft.close(); kernel.release(); });
  return {
    command: 'ADD', containerId: cid, netns: Sandbox.path(ns), ifName: 'eth0', args: '', path: [BIN],
    stdinData: Buffer.from(JSON.stringify(conf)), conf: conf as RawConf, env: {}, self: '', log: silentLogger,
    kernel: { ...kernel, nftables: async () => nft },
  };
}

netnsTest('a netlink error on the second message of an ADD leaves nothing behind', async (t) => {
  const sb = new Sandbox('a');
  t.teardown(() => sb.cleanup());
  const out = sb.outside();
  const c1 = sb.container('c1');
  const c2 = sb.container('c2');
  const localnet: string[] = [];
  const broken = makePortmapPlugin({ enableRouteLocalnet: (ip) => { localnet.push(String(ip.value)); } });

  // Fresh host: the table itself is in the failing batch, so nothing at all may appear.
  const br1 = sb.plugin('bridge', { command: 'ADD', containerId: 'ctr1', netns: Sandbox.path(c1), conf: bridgeConf(sb, NET_A) });
  t.is(br1.code, 0, br1.stdout);
  const err = await t.throwsAsync(broken.add(args(t, c1, 'ctr1', portmapConf(NET_A, [{ hostPort: 8080, containerPort: 80 }], br1.json), new Nftables(new CorruptingSocket(sb.hostPath, 2)))));
  t.regex(err!.message, /failed to apply|failed to add/);
  t.deepEqual(nftView(sb).tables, [], 'no table, chain, set or element');

  // With state in place: another attachment's mapping survives and nothing of ctr2 lands.
  attach(sb, NET_A, c2, 'ctr2', [{ hostPort: 9090, containerPort: 80, protocol: 'tcp' }]);
  await serve(sb, c2, 'web2', 80);
  const before = nftView(sb);
  // State exists, so this is the elements-only transaction (6 messages): first, second, last.
  for (const victim of [1, 2, 6]) {
    const plugin = makePortmapPlugin({ enableRouteLocalnet: () => {} });
    const nft = new Nftables(new CorruptingSocket(sb.hostPath, victim));
    await t.throwsAsync(plugin.add(args(t, c1, 'ctr1', portmapConf(NET_A, [{ hostPort: 8080, containerPort: 80 }, { hostPort: 8443, containerPort: 443 }], br1.json), nft)));
    t.deepEqual(nftView(sb), before, `victim message ${victim}: the ruleset is unchanged`);
  }
  t.deepEqual([...new Set(owners(before))], ['net=pmnet id=ctr2 if=eth0']);
  t.is(tcpRequest(sb, out, '198.51.100.1', 9090), 'web2 198.51.100.2');
});

netnsTest('a failure after the transaction (route_localnet) takes the new elements out again', async (t) => {
  const sb = new Sandbox('r');
  t.teardown(() => sb.cleanup());
  const c1 = sb.container('c1');
  const br = sb.plugin('bridge', { command: 'ADD', containerId: 'ctr1', netns: Sandbox.path(c1), conf: bridgeConf(sb, NET_A) });
  t.is(br.code, 0, br.stdout);
  const plugin = makePortmapPlugin({ enableRouteLocalnet: () => { throw Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' }); } });
  const nft = new Nftables(BlockingNetlinkSocket.open(NETLINK_NETFILTER, sb.hostPath));
  const err = await t.throwsAsync(plugin.add(args(t, c1, 'ctr1', portmapConf(NET_A, [{ hostPort: 8080, containerPort: 80 }], br.json), nft)));
  t.is(err!.message, 'failed to enable route_localnet for localhost port mappings');
  t.deepEqual(owners(nftView(sb)), [], 'no element of ctr1 is left');
});

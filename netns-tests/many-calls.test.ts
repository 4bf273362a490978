/**
 * The shape a long-lived engine needs, against the real kernel in sandbox namespaces: many
 * requests in flight on one asynchronous netlink socket, timeouts that never block the event
 * loop, and many CNI calls (bridge with in-process host-local and ipMasq, then portmap) running
 * at once in this process through runPlugin, each with its own Io, over kernel handles shared
 * between the calls (SharedKernel with AsyncNetlinkSocket, bound to the sandbox host). Nothing
 * here runs in, or changes, the namespace of the test process: the "host" of every call is the
 * sandbox host namespace.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { runPlugin } from '../pkg/cni/skel.ts';
import { SharedKernel } from '../pkg/open-kernel.ts';
import { AsyncNetlinkSocket } from '../pkg/netlink/async-socket.ts';
import { NLM_F_REQUEST, encodeMessage } from '../pkg/netlink/message.ts';
import { NETLINK_ROUTE } from '../pkg/netlink/socket.ts';
import { RouteHandle } from '../pkg/netlink/route.ts';
import type { Plugin } from '../pkg/cni/skel.ts';
import { makeBridgePlugin } from '../plugins/bridge/plugin.ts';
import { ipMasqSkeleton } from '../plugins/bridge/ipmasq.ts';
import { hostLocalPlugin } from '../plugins/host-local/plugin.ts';
import { portmapPlugin } from '../plugins/portmap/portmap.ts';
import { portmapSkeleton } from '../plugins/portmap/rules.ts';
import { BIN, Sandbox, ipJson, ping } from './lib/sandbox.ts';
import { netnsSerial, netnsTest } from './lib/netns-test.ts';
import { NET_A, bridgeConf, nftView, owners, portmapConf } from './lib/portmap-lib.ts';

const RTM_GETLINK = 18;

netnsTest('one async socket: concurrent requests and dumps each get their own replies', async (t) => {
  const sb = new Sandbox('as');
  t.teardown(() => sb.cleanup());
  const sock = AsyncNetlinkSocket.open(NETLINK_ROUTE, sb.hostPath);
  t.teardown(() => sock.close());
  const h = new RouteHandle(sock);
  // 30 bridges created at once, one of them twice, with link and address dumps in between.
  const names = Array.from({ length: 30 }, (_, i) => `cb${i}`);
  const work = [
    ...names.map((n) => h.linkAddBridge(n)),
    h.linkAddBridge('cb7').then(() => 'created', (err: { code?: string; op?: string }) => `${err.code} ${err.op}`),
    ...Array.from({ length: 5 }, () => h.linkList()),
    ...Array.from({ length: 5 }, () => h.addrList()),
  ];
  // (Most are answered while they are sent: the socket reads what the kernel queued right away.)
  const out = await Promise.all(work);
  t.is(out[30], 'EEXIST RTM_NEWLINK bridge cb7', 'the duplicate fails alone, with its own op');
  for (const links of out.slice(31, 36) as { name: string }[][]) t.true(links.some((l) => l.name === 'lo'), 'every dump is whole');
  const listed = (await h.linkList()).map((l) => l.name).sort();
  t.deepEqual(listed, (ipJson(sb.host, 'link', 'show') as { ifname: string }[]).map((l) => l.ifname).sort());
  t.true(names.every((n) => listed.includes(n)));
  t.is(sock.inFlight, 0);
});

// Serial: alone in its worker, so no other test's spawnSync stalls this event loop meanwhile.
netnsSerial('one async socket: a request that gets no answer times out without blocking anything', async (t) => {
  const sb = new Sandbox('at');
  t.teardown(() => sb.cleanup());
  const sock = AsyncNetlinkSocket.open(NETLINK_ROUTE, sb.hostPath, { timeoutMs: 300 });
  t.teardown(() => sock.close());
  const h = new RouteHandle(sock);
  let ticks = 0;
  const ticker = setInterval(() => { ticks++; }, 10);
  t.teardown(() => clearInterval(ticker));
  // A GETLINK without NLM_F_ACK is answered by the link alone, never by a final ACK or DONE.
  const seq = sock.allocSeq();
  const body = Buffer.alloc(16);
  body.writeInt32LE(1, 4); // lo
  const silent = sock.exchange(encodeMessage(RTM_GETLINK, NLM_F_REQUEST, seq, body), { wait: [seq], op: 'GETLINK without ACK' });
  let timedOut = false;
  const failed = t.throwsAsync(silent.finally(() => { timedOut = true; }));
  t.is((await h.linkGet('lo'))?.index, 1);
  t.false(timedOut, 'the other request on the socket was answered while the first one waited');
  t.like(await failed, { code: 'ETIMEDOUT', op: 'GETLINK without ACK' });
  t.true(ticks > 0, 'timers ran while the request waited');
  t.is((await h.linkGet('lo'))?.name, 'lo', 'the socket still works');
});

interface Call { code: number; json: any; out: string }

netnsTest('8 containers at once in one process: bridge + in-process host-local + ipMasq, then portmap; then all DELs at once', async (t) => {
  const sb = new Sandbox('mc');
  t.teardown(() => sb.cleanup());
  const shared = new SharedKernel({ hostNetns: sb.hostPath, openSocket: (p, ns) => AsyncNetlinkSocket.open(p, ns) });
  t.teardown(() => shared.close());
  const bridge = makeBridgePlugin({ ipam: { 'host-local': hostLocalPlugin } });
  const N = 8;
  const ctrs = Array.from({ length: N }, (_, i) => sb.container(`c${i}`));
  const conf = bridgeConf(sb, NET_A, { ipMasq: true });

  const call = async (plugin: Plugin, command: string, i: number, stdin: unknown): Promise<Call> => {
    let out = '';
    const code = await runPlugin(plugin, {
      env: { CNI_COMMAND: command, CNI_CONTAINERID: `ctr${i}`, CNI_NETNS: Sandbox.path(ctrs[i]!), CNI_IFNAME: 'eth0', CNI_PATH: BIN },
      self: join(BIN, 'bridge'),
      readStdin: () => Buffer.from(JSON.stringify(stdin)),
      stdout: (s) => { out += s; },
      stderr: (s) => { out += s; },
      kernel: shared.forCall(),
    });
    let json: unknown;
    try { json = JSON.parse(out); } catch { json = undefined; }
    return { code, json, out };
  };
  const mapping = (i: number) => [{ hostPort: 8000 + i, containerPort: 80, protocol: 'tcp' }];

  const adds = await Promise.all(ctrs.map((_, i) => call(bridge, 'ADD', i, conf)));
  for (const a of adds) t.is(a.code, 0, a.out);
  const pms = await Promise.all(ctrs.map((_, i) => call(portmapPlugin, 'ADD', i, portmapConf(NET_A, mapping(i), adds[i]!.json))));
  for (const p of pms) t.is(p.code, 0, p.out);

  const v4 = adds.map((a) => (a.json.ips as { address: string }[]).map((x) => x.address).find((x) => !x.includes(':'))!);
  t.is(new Set(v4).size, N, 'distinct addresses');
  t.is((ipJson(sb.host, 'link', 'show', 'master', NET_A.bridge) as unknown[]).length, N, 'one port per container');
  const view = nftView(sb);
  t.is(view.rules, ipMasqSkeleton().rules.length + portmapSkeleton().rules.length, 'the fixed rules exist once');
  for (let i = 0; i < N; i++) {
    const tag = `net=${NET_A.name} id=ctr${i} if=eth0`;
    t.true(view.elements.ipmasq_src4!.includes(tag) && view.elements.portmap_any4!.includes(tag), `elements of ctr${i}`);
  }
  t.true(ping(sb, ctrs[0]!, v4[N - 1]!.split('/')[0]!), 'containers reach each other');

  const dels = await Promise.all(ctrs.map(async (_, i) => {
    const pm = await call(portmapPlugin, 'DEL', i, portmapConf(NET_A, mapping(i), pms[i]!.json));
    const br = await call(bridge, 'DEL', i, { ...conf, prevResult: pms[i]!.json });
    return [pm, br];
  }));
  for (const d of dels.flat()) t.is(d.code, 0, d.out);
  t.deepEqual(ipJson(sb.host, 'link', 'show', 'type', 'veth'), [], 'no veth left');
  t.deepEqual(readdirSync(join(sb.tmp, 'ipam', NET_A.name)).filter((f) => /^[0-9a-f.:]+$/.test(f)), [], 'no lease left');
  t.deepEqual(owners(nftView(sb)), [], 'no element left');
});

/**
 * Go-compatible decoding end to end (docs/cni-notes.md §13): the plugins read their stdin as the
 * reference's encoding/json does. containerd's CRI sends port mappings with Go field names
 * (`{"HostPort":8081,"ContainerPort":80,"Protocol":"tcp","HostIP":""}`, go-cni's struct without
 * JSON tags): ADD must publish the port and DEL must remove it, with real packets from outside.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Sandbox, ipJson, tcpRequest } from './lib/sandbox.ts';
import { netnsSerial } from './lib/netns-test.ts';
import { NET_A, bridgeConf, nftView, owners, portmapConf, serve } from './lib/portmap-lib.ts';

const CONTAINERD = [{ HostPort: 8081, ContainerPort: 80, Protocol: 'tcp', HostIP: '' }];

netnsSerial('containerd\'s capitalised portMappings: ADD maps the port, DEL removes it', async (t) => {
  const sb = new Sandbox('gd');
  t.teardown(() => sb.cleanup());
  const out = sb.outside();
  const c1 = sb.container('c1');
  const netns = Sandbox.path(c1);
  const br = sb.plugin('bridge', { command: 'ADD', containerId: 'pod1', netns, conf: bridgeConf(sb, NET_A) });
  t.is(br.code, 0, br.stdout);
  // As libcni hands it over: the capability injected as runtimeConfig, prevResult from bridge.
  const conf = portmapConf(NET_A, CONTAINERD as never, br.json);
  const add = sb.plugin('portmap', { command: 'ADD', containerId: 'pod1', netns, conf, cniArgs: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web' });
  t.is(add.code, 0, add.stdout);
  await serve(sb, c1, 'web', 80);
  t.is(tcpRequest(sb, out, '198.51.100.1', 8081), 'web 198.51.100.2', 'published on every host address (HostIP "")');
  t.is(tcpRequest(sb, out, '2001:db8:ff::1', 8081), 'web 2001:db8:ff::2', 'and over IPv6');
  t.true(owners(nftView(sb)).length > 0);

  t.is(sb.plugin('portmap', { command: 'CHECK', containerId: 'pod1', netns, conf: { ...conf, prevResult: add.json } }).code, 0, 'CHECK reads them too');
  const del = sb.plugin('portmap', { command: 'DEL', containerId: 'pod1', netns, conf: { ...conf, prevResult: add.json } });
  t.is(del.code, 0, del.stdout);
  t.deepEqual(owners(nftView(sb)), [], 'no element of ours is left');
  t.is(tcpRequest(sb, out, '198.51.100.1', 8081, 'x', 1000), '', 'the port is closed again');
  t.is(sb.plugin('bridge', { command: 'DEL', containerId: 'pod1', netns, conf: { ...bridgeConf(sb, NET_A), prevResult: add.json } }).code, 0);
});

netnsSerial('the network config itself in Go\'s spelling: bridge + host-local with capitalised keys attach and detach', (t) => {
  const sb = new Sandbox('gc');
  t.teardown(() => sb.cleanup());
  const c1 = sb.container('c1');
  const netns = Sandbox.path(c1);
  const b = bridgeConf(sb, NET_A) as { ipam: { dataDir: string; ranges: unknown } };
  const conf = {
    CNIVersion: '1.0.0', Name: NET_A.name, Type: 'bridge', Bridge: NET_A.bridge, IsGateway: true,
    IPAM: { Type: 'host-local', DataDir: b.ipam.dataDir, Ranges: [[{ Subnet: NET_A.subnet4 }]], Routes: [{ Dst: '0.0.0.0/0' }] },
  };
  const add = sb.plugin('bridge', { command: 'ADD', containerId: 'pod1', netns, conf });
  t.is(add.code, 0, add.stdout);
  t.is(add.json.cniVersion, '1.0.0');
  t.is(add.json.ips[0].address, '10.77.0.2/24');
  t.is(add.json.interfaces[0].name, NET_A.bridge);
  t.is(sb.plugin('bridge', { command: 'CHECK', containerId: 'pod1', netns, conf: { ...conf, PrevResult: add.json } }).code, 0);
  t.deepEqual(leases(), ['10.77.0.2'], 'the lease is where DataDir says');
  t.is(sb.plugin('bridge', { command: 'DEL', containerId: 'pod1', netns, conf: { ...conf, PrevResult: add.json } }).code, 0);
  t.deepEqual(leases(), [], 'DEL released it');
  t.deepEqual(ipJson(c1, 'link', 'show').map((l: { ifname: string }) => l.ifname), ['lo'], 'and removed the interface');

  function leases(): string[] {
    const dir = join(b.ipam.dataDir, NET_A.name);
    return existsSync(dir) ? readdirSync(dir).filter((f) => f !== 'lock' && !f.startsWith('last_reserved_ip')) : [];
  }
});

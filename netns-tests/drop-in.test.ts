/**
 * Drop-in for the chains real runtimes write (issue 11): the conflists Podman's CNI backend and a
 * Kubernetes node (containerd's CRI) use, run through libcni itself (lib/libcni-lib.ts) exactly as
 * those runtimes call them (CNI_ARGS, capability arguments in their Go spelling, the results
 * cache), with CNI_PATH holding only dist/bin. ADD, then real packets, CHECK, and DEL leaving no
 * link, lease, qdisc, nftables element or cache entry behind.
 *
 * State paths the runtimes leave at their defaults (host-local's dataDir, dnsname's recordsDir,
 * tuning's dataDir) point into the sandbox here; bridge names are the sandbox's; everything
 * else is as the runtime writes it (docs/cni-notes.md §8, §9.4, §13.3, §16.4).
 */
import test from 'ava';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BIN, Sandbox, ipJson, isRoot, ping, tcpRequest } from './lib/sandbox.ts';
import { netnsSerial } from './lib/netns-test.ts';
import { LIBCNI_NEED, buildLibcniDriver, libcni } from './lib/libcni-lib.ts';
import { nftView, owners, serve } from './lib/portmap-lib.ts';
import { resolve } from './lib/dns-lib.ts';

/** The plugins a chain names, which must be in dist/bin. */
function built(...types: string[]) {
  const missing = types.filter((t) => !existsSync(join(BIN, t)));
  return { met: missing.length === 0, reason: `needs ${missing.join(', ')} in dist/bin` };
}
const k8sTest = netnsSerial.needs(LIBCNI_NEED, built('loopback', 'bridge', 'host-local', 'portmap', 'bandwidth'));
const podmanTest = netnsSerial.needs(LIBCNI_NEED, built('bridge', 'host-local', 'portmap', 'firewall', 'tuning', 'dnsname'));

let driver = '';
let removeDriver = () => {};
// Built in the hook, not at load: when every test is skipped, ava runs no hooks to remove it.
test.before(() => {
  if (!LIBCNI_NEED.met || !isRoot) return;
  ({ driver, remove: removeDriver } = buildLibcniDriver());
});
test.after.always(() => removeDriver());

function writeConfs(sb: Sandbox, lists: Record<string, unknown>): string {
  const dir = join(sb.tmp, 'net.d');
  mkdirSync(dir, { recursive: true });
  for (const [file, list] of Object.entries(lists)) writeFileSync(join(dir, file), JSON.stringify(list, null, 3));
  return dir;
}

const leases = (dir: string) => (existsSync(dir) ? readdirSync(dir).filter((f) => f !== 'lock' && !f.startsWith('last_reserved_ip')) : []);
const hostLinks = (sb: Sandbox, type: string) => ipJson(sb.host, 'link', 'show', 'type', type).map((l: { ifname: string }) => l.ifname);
const loUp = (ns: string) => (ipJson(ns, 'link', 'show', 'lo')[0].flags as string[]).includes('UP');

k8sTest('a Kubernetes node: containerd\'s cni-loopback network, then bridge + host-local + portmap + bandwidth (1.0.0), as its CRI calls them', async (t) => {
  const sb = new Sandbox('k8');
  t.teardown(() => sb.cleanup());
  const out = sb.outside();
  const pod = sb.container('pod');
  sb.exec(pod, 'ip', ['link', 'set', 'lo', 'down']); // a fresh pod sandbox has lo down
  const dataDir = join(sb.tmp, 'ipam');
  const confDir = writeConfs(sb, {
    // go-cni's WithLoNetwork, which containerd's CRI loads before the node's own network.
    '99-loopback.conflist': { cniVersion: '0.3.1', name: 'cni-loopback', plugins: [{ type: 'loopback' }] },
    // containerd's install-cni default (10-containerd-net.conflist), with bandwidth added as kubelet's docs ask.
    '10-containerd-net.conflist': {
      cniVersion: '1.0.0', name: 'containerd-net',
      plugins: [
        {
          type: 'bridge', bridge: 'cnkk8s0', isGateway: true, ipMasq: true, promiscMode: true,
          ipam: { type: 'host-local', dataDir, ranges: [[{ subnet: '10.88.0.0/16' }], [{ subnet: 'fd88::/64' }]], routes: [{ dst: '0.0.0.0/0' }, { dst: '::/0' }] },
        },
        { type: 'portmap', capabilities: { portMappings: true } },
        { type: 'bandwidth', capabilities: { bandwidth: true } },
      ],
    },
  });
  const sandboxId = 'f1c2d3e4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2';
  // containerd's CNI_ARGS (their order varies per call: Go map order) and capability arguments:
  // go-cni's structs have no JSON tags, so libcni marshals Go field names (§13.3).
  const cniArgs = `K8S_POD_NAME=web-0;IgnoreUnknown=1;K8S_POD_UID=3f1e0c2a-9b8d-4c7e-a6f5-0d1c2b3a4e5f;K8S_POD_INFRA_CONTAINER_ID=${sandboxId};K8S_POD_NAMESPACE=default`;
  const capabilityArgs = {
    portMappings: [{ HostPort: 8081, ContainerPort: 80, Protocol: 'tcp', HostIP: '' }],
    bandwidth: { IngressRate: 10_000_000, IngressBurst: 4294967295, EgressRate: 10_000_000, EgressBurst: 4294967295 },
    'io.kubernetes.cri.pod-annotations': { 'kubernetes.io/ingress-bandwidth': '10M', 'kubernetes.io/egress-bandwidth': '10M' },
  };
  const lo = { confDir, ifName: 'lo', cniArgs, capabilityArgs };
  const eth0 = { confDir, ifName: 'eth0', cniArgs, capabilityArgs };
  const netns = Sandbox.path(pod);

  const addLo = libcni(sb, driver, 'add', 'cni-loopback', netns, lo);
  t.is(addLo.status, 0, addLo.stderr);
  t.like(JSON.parse(addLo.stdout), { cniVersion: '0.3.1', interfaces: [{ name: 'lo' }] });
  t.true(loUp(pod));
  const add = libcni(sb, driver, 'add', 'containerd-net', netns, eth0);
  t.is(add.status, 0, add.stderr);
  const result = JSON.parse(add.stdout);
  t.deepEqual(result.ips.map((i: { address: string }) => i.address), ['10.88.0.2/16', 'fd88::2/64']);
  const veth = result.interfaces[1].name as string;

  // What the pod sees: its port published, NAT to the outside, its own loopback; shaping on its veth.
  await serve(sb, pod, 'web', 80);
  t.is(tcpRequest(sb, out, '198.51.100.1', 8081), 'web 198.51.100.2', 'hostPort 8081 from outside');
  t.is(tcpRequest(sb, pod, '127.0.0.1', 80), 'web 127.0.0.1', 'lo works inside the pod');
  t.true(ping(sb, pod, '198.51.100.2'), 'outbound through ipMasq');
  const qdiscs = JSON.parse(sb.exec(sb.host, 'tc', ['-j', 'qdisc', 'show', 'dev', veth]).stdout) as { kind: string }[];
  t.true(qdiscs.some((q) => q.kind === 'tbf'), 'ingress shaping on the host veth');
  t.is(hostLinks(sb, 'ifb').length, 1, 'an ifb for egress shaping');

  const check = libcni(sb, driver, 'check', 'containerd-net', netns, eth0);
  t.is(check.status, 0, check.stderr);

  // containerd removes the networks in the order it set them up.
  for (const pass of ['DEL', 'DEL again']) {
    const delLo = libcni(sb, driver, 'del', 'cni-loopback', netns, lo);
    t.is(delLo.status, 0, `${pass} cni-loopback: ${delLo.stderr}`);
    const del = libcni(sb, driver, 'del', 'containerd-net', netns, eth0);
    t.is(del.status, 0, `${pass} containerd-net: ${del.stderr}`);
  }
  t.false(loUp(pod), 'lo is down again');
  t.deepEqual(hostLinks(sb, 'veth').filter((n: string) => n !== 'uplink0'), [], 'no veth left');
  t.deepEqual(hostLinks(sb, 'ifb'), [], 'no ifb left');
  t.deepEqual(leases(join(dataDir, 'containerd-net')), [], 'no lease left');
  t.deepEqual(owners(nftView(sb)), [], 'no nftables element of ours left');
  t.deepEqual(readdirSync(join(sb.tmp, 'cache', 'results')), [], 'libcni\'s cache is empty');
  t.is(tcpRequest(sb, out, '198.51.100.1', 8081, 'x', 1000), '', 'the port is closed');
});

podmanTest('Podman\'s default chain: bridge, portmap, firewall, tuning, dnsname (0.4.0), as `podman network create` writes it and its CNI backend calls it', async (t) => {
  const sb = new Sandbox('pd');
  t.teardown(() => sb.cleanup());
  const out = sb.outside();
  const ctr = sb.container('web');
  const other = sb.container('db');
  const dataDir = join(sb.tmp, 'ipam');
  const dns = join(sb.tmp, 'dns');
  // §16.4: 3-space indent, sorted top-level keys, plugin keys in struct order, cniVersion 0.4.0.
  const confDir = writeConfs(sb, {
    'podnet.conflist': {
      cniVersion: '0.4.0', name: 'podnet',
      plugins: [
        {
          type: 'bridge', bridge: 'cni-podman1', isGateway: true, ipMasq: true, hairpinMode: true,
          ipam: { type: 'host-local', routes: [{ dst: '0.0.0.0/0' }], ranges: [[{ subnet: '10.89.0.0/24', gateway: '10.89.0.1' }]], dataDir },
          capabilities: { ips: true },
        },
        { type: 'portmap', capabilities: { portMappings: true } },
        { type: 'firewall', backend: '' },
        { type: 'tuning', dataDir: join(sb.tmp, 'tuning') },
        { type: 'dnsname', domainName: 'dns.podman', capabilities: { aliases: true }, recordsDir: dns, runDir: dns },
      ],
    },
  });
  // Podman's CNI backend: the name only as K8S_POD_NAME, the short id as an alias, its own
  // port mapping struct (JSON-tagged, lower case), a static IP through `ips` (§8).
  const call = (name: string, shortId: string, extra: Record<string, unknown>) => ({
    confDir, cniArgs: `IgnoreUnknown=1;K8S_POD_NAME=${name}`,
    capabilityArgs: { aliases: { podnet: [shortId] }, ...extra },
  });
  const web = call('web', '3f1e0c2a9b8d', { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp', hostIP: '' }], ips: ['10.89.0.5'] });
  const db = call('db', '7a6b5c4d3e2f', {});

  const addWeb = libcni(sb, driver, 'add', 'podnet', Sandbox.path(ctr), web);
  t.is(addWeb.status, 0, addWeb.stderr);
  const result = JSON.parse(addWeb.stdout);
  t.is(result.cniVersion, '0.4.0');
  t.deepEqual(result.ips.map((i: { address: string }) => i.address), ['10.89.0.5/24'], 'the static IP through the ips capability');
  t.deepEqual(result.dns, { nameservers: ['10.89.0.1'], search: ['dns.podman'] }, 'dnsname\'s resolver for resolv.conf');
  const addDb = libcni(sb, driver, 'add', 'podnet', Sandbox.path(other), db);
  t.is(addDb.status, 0, addDb.stderr);
  const dbIp = (JSON.parse(addDb.stdout).ips[0].address as string).split('/')[0];

  await serve(sb, ctr, 'web', 80);
  t.is(tcpRequest(sb, out, '198.51.100.1', 8080), 'web 198.51.100.2', 'the published port from outside');
  t.is(tcpRequest(sb, other, '10.89.0.5', 80), `web ${dbIp}`, 'container to container on the network');
  t.true(ping(sb, ctr, '198.51.100.2'), 'outbound');
  t.deepEqual(resolve(sb, other, { name: 'web.dns.podman', server: '10.89.0.1' }), ['10.89.0.5'], 'the name from K8S_POD_NAME');
  t.deepEqual(resolve(sb, other, { name: '3f1e0c2a9b8d.dns.podman', server: '10.89.0.1' }), ['10.89.0.5'], 'the alias');

  for (const [ns, c] of [[ctr, web], [other, db]] as const) {
    const check = libcni(sb, driver, 'check', 'podnet', Sandbox.path(ns), c);
    t.is(check.status, 0, check.stderr);
  }
  for (const pass of ['DEL', 'DEL again']) {
    for (const [ns, c] of [[ctr, web], [other, db]] as const) {
      const del = libcni(sb, driver, 'del', 'podnet', Sandbox.path(ns), c);
      t.is(del.status, 0, `${pass}: ${del.stderr}`);
    }
  }
  t.deepEqual(hostLinks(sb, 'veth').filter((n: string) => n !== 'uplink0'), [], 'no veth left');
  t.deepEqual(leases(join(dataDir, 'podnet')), [], 'no lease left');
  t.deepEqual(owners(nftView(sb)), [], 'no nftables element of ours left');
  t.deepEqual(readdirSync(join(sb.tmp, 'cache', 'results')), [], 'libcni\'s cache is empty');
  t.false(existsSync(join(dns, 'podnet.records')), 'no DNS records left');
  t.is(tcpRequest(sb, out, '198.51.100.1', 8080, 'x', 1000), '', 'the port is closed');
});

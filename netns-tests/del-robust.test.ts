/**
 * A DEL never fails because of an input it cannot use, for every plugin in executables.ts (a
 * runtime retries a failing DEL forever, and the pod leaks), and neither does a GC (it would
 * leave every stale attachment of the network behind). For each plugin and each bad input (a
 * partial config, every known key of the wrong type, a runtimeConfig or capability of the wrong
 * type, a prevResult that is no result, CNI_ARGS that do not parse):
 *
 * - DEL with nothing there succeeds and changes nothing;
 * - ADD of the same input is refused with code 7 and changes nothing (where the plugin reads
 *   that input: every plugin its config and runtimeConfig, a plugin with capabilities their
 *   objects, a meta plugin its prevResult);
 * - after a real ADD, DEL with the bad input succeeds and takes back everything the ADD made
 *   (the same snapshot as before the ADD; CHECK with the good config fails afterwards).
 *
 * And for each plugin that implements GC (`gc` in its subject), with the same bad inputs:
 *
 * - GC with nothing there succeeds and changes nothing;
 * - after a real ADD, GC that lists the attachment as valid succeeds and keeps all of it, and GC
 *   that lists none succeeds and frees what GC with the good config frees (state files and
 *   nftables: GC does not touch links); a valid-attachments list GC cannot read fails it and
 *   frees nothing. A plugin whose subject says it has no GC is checked to free nothing.
 *
 * The plugins come from the manifest, so a plugin added later is covered once it has its line
 * in SUBJECTS (a good config with its state in the sandbox); the first test fails until it has.
 * Meta plugins run after a real bridge ADD, whose result is their prevResult.
 */
import test, { type ExecutionContext } from 'ava';
import { join } from 'node:path';
import { type Executable, PLUGINS } from '../executables.ts';
import { type PluginRun, Sandbox, ip } from './lib/sandbox.ts';
import { netnsSerial } from './lib/netns-test.ts';
import { snapshot } from './lib/snapshot.ts';

type Conf = Record<string, unknown>;

interface Subject {
  /** The plugin's own keys for an ADD that works, state paths inside the sandbox. */
  good(sb: Sandbox): Conf;
  /** The keys that keep its state inside the sandbox: kept in every bad input. */
  state(sb: Sandbox): Conf;
  /** The capabilities it declares (each then comes in runtimeConfig). */
  capabilities: string[];
  /** CNI_ARGS for its calls. */
  cniArgs?: string;
  /** It implements GC (frees attachments not in cni.dev/valid-attachments). */
  gc: boolean;
}

const NET = 'delnet';
const ipam = (sb: Sandbox) => ({ type: 'host-local', dataDir: join(sb.tmp, 'ipam'), ranges: [[{ subnet: '10.79.0.0/24' }]], routes: [{ dst: '0.0.0.0/0' }] });

/** One line per plugin type of the manifest. */
const SUBJECTS: Record<string, Subject> = {
  bridge: {
    good: (sb) => ({ bridge: 'cnkdel0', isGateway: true, ipam: ipam(sb) }),
    state: (sb) => ({ ipam: { type: 'host-local', dataDir: join(sb.tmp, 'ipam') } }),
    capabilities: ['mac', 'ips'],
    gc: true,
  },
  'host-local': {
    good: (sb) => ({ ipam: { ...ipam(sb), ranges: [[{ subnet: '10.80.0.0/24' }]] } }),
    state: (sb) => ({ ipam: { dataDir: join(sb.tmp, 'ipam') } }),
    capabilities: ['ips', 'ipRanges'],
    gc: true,
  },
  portmap: {
    good: () => ({ runtimeConfig: { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }] } }),
    state: () => ({}),
    capabilities: ['portMappings'],
    gc: true,
  },
  dnsname: {
    good: (sb) => ({ domainName: 'del.test', recordsDir: join(sb.tmp, 'dns'), runDir: join(sb.tmp, 'dns') }),
    state: (sb) => ({ recordsDir: join(sb.tmp, 'dns'), runDir: join(sb.tmp, 'dns') }),
    capabilities: ['aliases'],
    cniArgs: 'IgnoreUnknown=1;K8S_POD_NAME=web',
    gc: true,
  },
  bandwidth: {
    good: () => ({ runtimeConfig: { bandwidth: { ingressRate: 8_000_000, ingressBurst: 80_000, egressRate: 4_000_000, egressBurst: 40_000 } } }),
    state: () => ({}),
    capabilities: ['bandwidth'],
    gc: false,
  },
  tuning: {
    good: (sb) => ({ dataDir: join(sb.tmp, 'tuning'), mtu: 1400, promisc: true, sysctl: { 'net.ipv4.conf.eth0.log_martians': '1' } }),
    state: (sb) => ({ dataDir: join(sb.tmp, 'tuning') }),
    capabilities: ['mac'],
    gc: true,
  },
  firewall: { good: () => ({ backend: '', ingressPolicy: 'same-bridge', strictIsolation: true }), state: () => ({}), capabilities: [], gc: true },
  loopback: { good: () => ({}), state: () => ({}), capabilities: [], gc: false },
};

/** A wrong-typed value for every key the suite's plugins (and their references) know. */
const GARBAGE: Conf = {
  capabilities: 'all', ipam: 5, dns: 5, args: 'x', runtimeConfig: 'x', prevResult: 42,
  bridge: 7, isGateway: 'yes', isDefaultGateway: 'yes', forceAddress: 1, ipMasq: 'yes', ipMasqBackend: 9, mtu: 'big',
  hairpinMode: 'on', promiscMode: 'on', vlan: 'ten', preserveDefaultVlan: 0, vlanTrunk: 'x', enabledad: 'no',
  macspoofchk: 3, disableContainerInterface: 'no', portIsolation: 'no',
  snat: 'no', masqAll: 'no', backend: 5, markMasqBit: 'x', externalSetMarkChain: 7, conditionsV4: 5, conditionsV6: 5,
  domainName: 7, upstreams: 'x', port: 'fifty-three', recordsDir: 5, runDir: 5,
  sysctl: 'x', mac: 5, promisc: 'yes', allmulti: 'yes', txQLen: 'long', dataDir: 5,
  iptablesAdminChainName: 5, firewalldZone: 5, ingressPolicy: 5, internal: 'yes', icc: 'no', strictIsolation: 'yes',
  ingressRate: 'fast', ingressBurst: 'x', egressRate: 'fast', egressBurst: 'x',
};
const GARBAGE_IPAM: Conf = { type: 5, subnet: 5, rangeStart: 5, rangeEnd: 5, gateway: 5, ranges: 'x', routes: 'x', dataDir: 5, resolvConf: 5 };
/** Every capability of CNI's CONVENTIONS.md, wrong-typed (containerd's spelling for portMappings). */
const CAPS_GARBAGE: Conf = {
  portMappings: [{ HostPort: 'x', ContainerPort: 80 }], bandwidth: 'fast', mac: 5, ips: 'x', ipRanges: 'x', aliases: 5, dns: 5, infinibandGUID: 5, deviceID: 5,
};

interface Variant {
  what: string;
  conf(s: Subject, sb: Sandbox, prev: unknown): Conf;
  /** CNI_ARGS instead of the subject's. */
  cniArgs?: string;
  /** Whether ADD must refuse it (with code 7) for this plugin. */
  refused(s: Subject, role: string): boolean;
}

function withState(base: Conf, s: Subject, sb: Sandbox): Conf {
  const st = s.state(sb);
  const out: Conf = { ...base, ...st };
  if (st.ipam) out.ipam = { ...(typeof base.ipam === 'object' ? base.ipam as Conf : GARBAGE_IPAM), ...(st.ipam as Conf) };
  return out;
}

const VARIANTS: Variant[] = [
  { what: 'a partial config (no plugin keys)', conf: (s, sb) => withState({}, s, sb), refused: () => false },
  { what: 'every known key of the wrong type', conf: (s, sb) => withState(GARBAGE, s, sb), refused: () => true },
  { what: 'a runtimeConfig that is not an object', conf: (s, sb, prev) => good(s, sb, prev, { runtimeConfig: 'garbage' }), refused: () => true },
  { what: 'every capability of the wrong type', conf: (s, sb, prev) => good(s, sb, prev, { runtimeConfig: CAPS_GARBAGE }), refused: (s) => s.capabilities.length > 0 },
  { what: 'a prevResult that is not an object', conf: (s, sb) => good(s, sb, 42), refused: (_, role) => role === 'meta' },
  { what: 'a prevResult that is no result', conf: (s, sb) => good(s, sb, { cniVersion: '1.0.0', ips: 'x', interfaces: 5 }), refused: (_, role) => role === 'meta' },
  // Only the plugins that read CNI_ARGS refuse it on ADD (code 4), so no ADD is asserted.
  { what: 'CNI_ARGS that do not parse', conf: (s, sb, prev) => good(s, sb, prev), cniArgs: 'K8S_POD_NAME;MAC=zz;=', refused: () => false },
];

function good(s: Subject, sb: Sandbox, prev: unknown, extra: Conf = {}): Conf {
  const c: Conf = { ...s.good(sb), ...extra };
  if (s.capabilities.length) c.capabilities = Object.fromEntries(s.capabilities.map((k) => [k, true]));
  if (prev !== undefined) c.prevResult = prev;
  return c;
}

const full = (type: string, c: Conf): Conf => ({ cniVersion: '1.0.0', name: NET, type, ...c });

test('every plugin in executables.ts has a subject in del-robust.test.ts', (t) => {
  t.deepEqual(PLUGINS.map((p) => p.type).filter((type) => !Object.hasOwn(SUBJECTS, type)), [],
    'add a line to SUBJECTS: a config its ADD accepts, with its state paths in the sandbox');
});

/** A sandbox with a first attachment made and removed, and the pieces each test drives. */
interface Bench {
  sb: Sandbox;
  warm: string;
  ctr: string;
  meta: boolean;
  /** The bridge result a meta plugin's ADD takes as prevResult (undefined for the others). */
  prev: unknown;
  run(command: string, conf: Conf, cniArgs?: string): PluginRun;
  /** GC as libcni sends it: cniVersion 1.1.0, the still-valid attachments, no attachment env. */
  gc(conf: Conf, valid: unknown, cniArgs?: string): PluginRun;
  ok(r: PluginRun, what: string): void;
  view(): unknown;
}

function bench(t: ExecutionContext, plugin: Executable, subject: Subject): Bench {
  const sb = new Sandbox('dr');
  t.teardown(() => sb.cleanup());
  const warm = sb.container('c0');
  const ctr = sb.container('c1');
  for (const ns of [warm, ctr]) ip('-n', ns, 'link', 'set', 'lo', 'down');
  const meta = plugin.role === 'meta';
  const call = (command: string, ns: string, cid: string, conf: Conf, cniArgs = subject.cniArgs): PluginRun =>
    sb.plugin(plugin.type, { command, containerId: cid, netns: Sandbox.path(ns), conf: full(plugin.type, conf), cniArgs });
  const ok = (r: PluginRun, what: string) => t.is(r.code, 0, `${what}: ${r.stdout}${r.stderr}`);

  // Meta plugins are chained after a real bridge attachment, whose result is their prevResult.
  const prevOf = (ns: string, cid: string): unknown => {
    if (!meta) return undefined;
    const br = sb.plugin('bridge', { command: 'ADD', containerId: cid, netns: Sandbox.path(ns), conf: full('bridge', SUBJECTS.bridge!.good(sb)) });
    ok(br, `bridge ADD for ${cid}`);
    return br.json;
  };
  const prevWarm = prevOf(warm, 'warm');
  const prev = prevOf(ctr, 'pod');
  // A first attachment made and removed, so that what every attachment shares (a bridge, a
  // table skeleton, a directory) is there before the snapshot.
  const w = call('ADD', warm, 'warm', good(subject, sb, prevWarm));
  ok(w, 'warm-up ADD');
  ok(call('DEL', warm, 'warm', { ...good(subject, sb, prevWarm), prevResult: meta ? prevWarm : w.json }), 'warm-up DEL');
  return {
    sb, warm, ctr, meta, prev, ok,
    run: (command, conf, cniArgs) => call(command, ctr, 'pod', conf, cniArgs),
    gc: (conf, valid, cniArgs = subject.cniArgs) => sb.plugin(plugin.type, {
      command: 'GC', conf: { ...full(plugin.type, conf), cniVersion: '1.1.0', 'cni.dev/valid-attachments': valid }, cniArgs,
      env: { CNI_CONTAINERID: undefined, CNI_NETNS: undefined, CNI_IFNAME: undefined },
    }),
    view: () => snapshot(sb, [warm, ctr]),
  };
}

for (const plugin of PLUGINS) {
  const subject = SUBJECTS[plugin.type];
  if (!subject) continue;
  netnsSerial(`[${plugin.type}] DEL succeeds on input it cannot use, ADD refuses it with code 7, and neither leaves anything behind`, (t) => {
    const { sb, meta, prev, run, ok, view } = bench(t, plugin, subject);
    const before = view();

    for (const v of VARIANTS) {
      const bad = v.conf(subject, sb, prev);
      ok(run('DEL', bad, v.cniArgs), `DEL with nothing there, ${v.what}`);
      t.deepEqual(view(), before, `DEL with nothing there changed nothing: ${v.what}`);

      if (v.refused(subject, plugin.role)) {
        const add = run('ADD', bad, v.cniArgs);
        t.is(add.json?.code, 7, `ADD refuses ${v.what}: ${add.stdout}${add.stderr}`);
        t.deepEqual(view(), before, `a refused ADD changed nothing: ${v.what}`);
      }

      const add = run('ADD', good(subject, sb, prev));
      ok(add, `ADD before the DEL with ${v.what}`);
      // As a runtime sends it: the cached result as prevResult, unless the bad input replaces it.
      const del = run('DEL', { prevResult: add.json, ...bad }, v.cniArgs);
      ok(del, `DEL after ADD, ${v.what}`);
      t.deepEqual(view(), before, `DEL took back the ADD: ${v.what}`);
      const check = run('CHECK', good(subject, sb, meta ? prev : add.json));
      t.not(check.code, 0, `CHECK after the DEL finds nothing: ${v.what}`);
    }
  });
}

/**
 * What GC can touch: the host namespace, nftables and state files (it gets no container
 * namespace; so after GC freed tuning's saved settings, DEL cannot put them back in the
 * container, by design, and containers are left out of the comparisons).
 */
function hostView(b: Bench): unknown {
  const { host, nftables, files } = b.view() as { host: unknown; nftables: unknown; files: unknown };
  return { host, nftables, files };
}

/** What GC frees: state files and nftables (links are DEL's; no GC removes an interface). */
function gcView(b: Bench): unknown {
  const { nftables, files } = b.view() as { nftables: unknown; files: unknown };
  return { nftables, files };
}

const POD = [{ containerID: 'pod', ifname: 'eth0' }];

for (const plugin of PLUGINS) {
  const subject = SUBJECTS[plugin.type];
  if (!subject) continue;
  if (!subject.gc) {
    netnsSerial(`[${plugin.type}] has no GC: GC succeeds and frees nothing`, (t) => {
      const b = bench(t, plugin, subject);
      b.ok(b.run('ADD', good(subject, b.sb, b.prev)), 'ADD');
      const added = b.view();
      b.ok(b.gc(good(subject, b.sb, undefined), []), 'GC with nothing valid');
      t.deepEqual(b.view(), added, 'GC freed something: the plugin implements GC now, so set `gc: true` in its subject');
    });
    continue;
  }
  netnsSerial(`[${plugin.type}] GC succeeds on input it cannot use, keeps the valid attachments and frees the others as with a good config`, (t) => {
    const b = bench(t, plugin, subject);
    const goodGc = good(subject, b.sb, undefined);
    b.ok(b.gc(goodGc, []), 'GC with the good config and nothing there');
    const before = hostView(b);
    // What GC with the good config frees of an attachment: the reference for every bad input.
    const first = b.run('ADD', good(subject, b.sb, b.prev));
    b.ok(first, 'ADD');
    const added = gcView(b);
    b.ok(b.gc(goodGc, []), 'GC with the good config');
    const freed = gcView(b);
    t.notDeepEqual(freed, added, 'GC with the good config frees something of the attachment');
    b.ok(b.run('DEL', { ...good(subject, b.sb, b.prev), prevResult: first.json }), 'DEL after GC');
    t.deepEqual(hostView(b), before, 'DEL after GC took back the rest');

    for (const v of VARIANTS) {
      const bad = v.conf(subject, b.sb, b.prev);
      b.ok(b.gc(bad, [], v.cniArgs), `GC with nothing there, ${v.what}`);
      t.deepEqual(hostView(b), before, `GC with nothing there changed nothing: ${v.what}`);

      const add = b.run('ADD', good(subject, b.sb, b.prev));
      b.ok(add, `ADD before the GC with ${v.what}`);
      const attached = hostView(b);
      b.ok(b.gc(bad, POD, v.cniArgs), `GC keeping the attachment, ${v.what}`);
      t.deepEqual(hostView(b), attached, `GC kept the valid attachment: ${v.what}`);
      b.ok(b.gc(bad, [], v.cniArgs), `GC with nothing valid, ${v.what}`);
      t.deepEqual(gcView(b), freed, `GC freed what it frees with the good config: ${v.what}`);
      b.ok(b.run('DEL', { ...good(subject, b.sb, b.prev), prevResult: add.json }), `DEL after the GC with ${v.what}`);
      t.deepEqual(hostView(b), before, `DEL after the GC took back the rest: ${v.what}`);
    }

    // Not knowing which attachments are valid is not "none": GC refuses and frees nothing.
    b.ok(b.run('ADD', good(subject, b.sb, b.prev)), 'ADD before the GC with an unreadable list');
    const attached = hostView(b);
    for (const valid of ['all', [{ containerID: 5 }]]) {
      const r = b.gc(goodGc, valid);
      t.is(r.json?.code, 7, `GC refuses cni.dev/valid-attachments ${JSON.stringify(valid)}: ${r.stdout}${r.stderr}`);
      t.deepEqual(hostView(b), attached, `a refused GC freed nothing: ${JSON.stringify(valid)}`);
    }
  });
}

/**
 * `cnikit add|check|del` run this build's own plugins inside the cnikit process (cnikit/own-exec.ts)
 * instead of exec'ing each through its launcher. What a user sees must not change: the same
 * scenario through a CNI_PATH of wrapper scripts (`exec dist/bin/<type>`, not our launcher, so
 * every plugin is exec'd as before) gives the same exit codes, output, cache, leases, DNS records,
 * nftables ruleset and links. A foreign plugin in the middle of a chain is still exec'd (its
 * parent is the cnikit process) and passes its result on. An engine running meanwhile serves no
 * call of the in-process runs: none went through a launcher.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { EngineStatus } from '../engine/protocol.ts';
import { PLUGINS } from '../executables.ts';
import { CliSandbox } from './lib/cli-lib.ts';
import { BIN, NODE, ROOT, Sandbox, ipJson } from './lib/sandbox.ts';
import { netnsSerial } from './lib/netns-test.ts';
import { NFT } from './lib/portmap-lib.ts';

const CLIENT = join(ROOT, 'netns-tests/fixtures/engine-client.ts');
const REF_TUNING = '/usr/lib/cni/tuning';

function engineStatus(sb: Sandbox): EngineStatus | null {
  const r = sb.exec(sb.host, NODE, [CLIENT, 'status'], { env: { PATH: process.env.PATH } });
  return r.status === 0 ? JSON.parse(r.stdout) as EngineStatus | null : null;
}

async function engineUp(sb: Sandbox): Promise<EngineStatus> {
  sb.plugin('bridge', { command: 'VERSION', conf: '{"cniVersion":"1.0.0"}', env: { CNIKIT_ENGINE: 'on' } });
  for (let i = 0; i < 100; i++) {
    const s = engineStatus(sb);
    if (s) return s;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('no engine answered within 10 s');
}

/** A directory of scripts that exec each of our plugins: CNI_PATH resolves nothing to our launcher. */
function wrappers(dir: string): string {
  mkdirSync(dir, { recursive: true });
  for (const p of PLUGINS) {
    writeFileSync(join(dir, p.type), `#!/bin/sh\nexec ${join(BIN, p.type)} "$@"\n`);
    chmodSync(join(dir, p.type), 0o755);
  }
  return dir;
}

/** A network's life through the cnikit command, with CNI_PATH `path`; returns what a user sees. */
function scenario(c: CliSandbox, path: string): unknown {
  const sb = c.sb;
  const norm = (s: string) => s.split(sb.tmp).join('TMP').split(sb.id).join('SB')
    .replace(/([0-9a-f]{2}:){5}[0-9a-f]{2}/g, 'MAC').replace(/veth[0-9a-f]{8}/g, 'VETH')
    // Records name namespaces by inode (docs/architecture.md): each sandbox has its own.
    .replace(/^(host|container .*) \d{6,}( \/run\/netns\/SB-\w+)?$/gm, (_m, head: string, path = '') => `${head} INO${path}`);
  const out: unknown[] = [];
  const run = (args: string[]) => {
    const r = c.cnikit([...args, '--quiet'], 60_000, { CNI_PATH: path });
    out.push({ args: norm(args.join(' ')), code: r.code, stdout: norm(r.stdout), stderr: norm(r.stderr) });
    return r;
  };
  const [n1, n2] = [sb.container('c1'), sb.container('c2')];
  const created = c.create('inp');
  out.push({ create: created.code });
  run(['add', 'inp', Sandbox.path(n1), '--container-id', 'c1', '--args', 'K8S_POD_NAME=web1',
    '--cap-args', '{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]}']);
  run(['add', 'inp', Sandbox.path(n2), '--container-id', 'c2', '--args', 'K8S_POD_NAME=web2']);
  run(['add', 'inp', '/run/netns/none', '--container-id', 'c3']);
  run(['add', 'inp', Sandbox.path(n2), '--container-id', 'c4', '--ifname', 'bad/name']);
  run(['check', 'inp', Sandbox.path(n1), '--container-id', 'c1']);
  run(['del', 'inp', Sandbox.path(n2), '--container-id', 'c2']);
  run(['del', 'inp', Sandbox.path(n2), '--container-id', 'c2']);
  const files = (dir: string) => existsSync(dir)
    ? Object.fromEntries(readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => !f.endsWith('lock') && !/\.(sock|pid|log)$/.test(f)).sort()
      .map((f) => { try { return [f, norm(readFileSync(join(dir, f), 'utf8'))]; } catch { return [f, 'dir']; } }))
    : {};
  const nft = sb.exec(sb.host, NFT, ['list', 'ruleset']).stdout.replace(/# handle \d+/g, '');
  const links = ipJson(sb.host, 'link', 'show').map((l: { ifname: string; operstate: string }) => `${norm(l.ifname)} ${l.operstate}`).sort();
  // The cached config holds the network's file as written (its paths, its creation time).
  const cache = Object.fromEntries(Object.entries(files(c.cache)).map(([f, text]) => {
    try { return [f, { ...JSON.parse(text) as object, config: 'CONFIG' }]; } catch { return [f, text]; }
  }));
  // The records name the sandbox's netns by inode, which differs between the two sandboxes.
  const inodes = (o: Record<string, string>) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, v.replace(/^host \d+$/gm, 'host INO').replace(/ \d+ (\/run\/netns\/)/g, ' INO $1')]));
  return { out, cache, leases: files(c.ipam), dns: inodes(files(c.dns)), nft: norm(nft), links };
}

netnsSerial('cnikit add/check/del with our own plugins in-process: codes, output and on-disk state as when each plugin is exec\'d', async (t) => {
  const exec = new CliSandbox(t, 'ix');
  const inproc = new CliSandbox(t, 'ip');
  const viaScripts = scenario(exec, wrappers(join(exec.sb.tmp, 'wrap')));
  const up = await engineUp(inproc.sb);
  const local = scenario(inproc, BIN);
  t.deepEqual(local, viaScripts);
  t.is(engineStatus(inproc.sb)!.calls, up.calls, 'no plugin call went through a launcher to the engine');
  t.true((local as { out: { code: number }[] }).out.some((o) => o.code !== 0), 'the scenario has failures too');
});

netnsSerial.needs({ met: existsSync(REF_TUNING), reason: `no reference plugin at ${REF_TUNING}` })('a foreign plugin in the middle of a chain is exec\'d by cnikit and passes the result on; DEL leaves nothing', async (t) => {
  const c = new CliSandbox(t, 'if');
  const foreign = join(c.sb.tmp, 'foreign');
  mkdirSync(foreign);
  // The reference tuning under another type name, recording who started it.
  writeFileSync(join(foreign, 'ref-tuning'), `#!/bin/sh\ntr '\\0' ' ' < /proc/$PPID/cmdline > ${join(c.sb.tmp, 'parent')}\nexec ${REF_TUNING}\n`);
  chmodSync(join(foreign, 'ref-tuning'), 0o755);
  symlinkSync(REF_TUNING, join(foreign, 'ref-tuning-link'));
  const list = {
    cniVersion: '1.0.0', name: 'mixed', plugins: [
      { type: 'bridge', bridge: 'cnkmix0', isGateway: true, ipMasq: true, ipam: { type: 'host-local', dataDir: c.ipam, ranges: [[{ subnet: '10.66.0.0/24' }]], routes: [{ dst: '0.0.0.0/0' }] } },
      { type: 'ref-tuning' },
      { type: 'portmap', capabilities: { portMappings: true } },
    ],
  };
  writeFileSync(join(c.netconf, 'mixed.conflist'), JSON.stringify(list));
  const up = await engineUp(c.sb);
  const ns = c.sb.container('c1');
  const env = { CNI_PATH: `${foreign}:${BIN}` };
  const add = c.cnikit(['add', 'mixed', Sandbox.path(ns), '--container-id', 'm1', '--quiet', '--cap-args', '{"portMappings":[{"hostPort":9090,"containerPort":80,"protocol":"tcp"}]}'], 60_000, env);
  t.is(add.code, 0, add.stdout + add.stderr);
  const r = JSON.parse(add.stdout) as { ips: { address: string }[]; interfaces: { name: string }[] };
  t.deepEqual(r.ips.map((i) => i.address), ['10.66.0.2/24'], 'bridge\'s result came through the foreign plugin');
  t.true(r.interfaces.some((i) => i.name === 'cnkmix0'));
  t.regex(readFileSync(join(c.sb.tmp, 'parent'), 'utf8'), /cnikit/, 'the foreign plugin was started by the cnikit process');
  t.regex(c.sb.exec(c.sb.host, NFT, ['list', 'ruleset']).stdout, /9090/, 'portmap, after it, mapped the port');
  t.is(engineStatus(c.sb)!.calls, up.calls, 'our plugins ran in the cnikit process');
  t.is(c.cnikit(['check', 'mixed', Sandbox.path(ns), '--container-id', 'm1', '--quiet'], 60_000, env).code, 0);
  const del = c.cnikit(['del', 'mixed', Sandbox.path(ns), '--container-id', 'm1', '--quiet'], 60_000, env);
  t.is(del.code, 0, del.stdout + del.stderr);
  t.deepEqual(c.leftovers(), []);
  t.notRegex(c.sb.exec(c.sb.host, NFT, ['list', 'ruleset']).stdout, /9090/);
});

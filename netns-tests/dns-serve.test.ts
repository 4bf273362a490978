/**
 * The standalone resolver (`dnsname --serve`, what `cnikit dns serve` runs) over a records
 * directory, on explicit addresses: per-client views (a container sees only its own network, the
 * host sees all), following changes to the directory without a signal, refusing the wildcard.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BIN, Sandbox } from './lib/sandbox.ts';
import { netnsTest } from './lib/netns-test.ts';
import { ask, makeCtr, makeNet, resolve } from './lib/dns-lib.ts';
import { type NetworkRecords, formatRecords } from '../responder/records.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function records(dir: string, r: NetworkRecords): void {
  writeFileSync(join(dir, `.${r.network}.tmp`), formatRecords(r));
  renameSync(join(dir, `.${r.network}.tmp`), join(dir, `${r.network}.records`));
}

netnsTest('standalone resolver: per-network views for containers, everything for the host, follows the directory', async (t) => {
  const sb = new Sandbox('s');
  t.teardown(() => sb.cleanup());
  const A = makeNet(sb, { name: 'neta', bridge: 'br-a', v4: '10.89.0' });
  const B = makeNet(sb, { name: 'netb', bridge: 'br-b', v4: '10.90.0' });
  const a1 = makeCtr(sb, A, 'a1', 5);
  const b1 = makeCtr(sb, B, 'b1', 5);
  const dir = join(sb.tmp, 'records');
  mkdirSync(dir);
  const netA: NetworkRecords = { network: 'neta', domain: 'dns.cnikit', port: 53, upstreams: [], containers: [
    { containerId: 'a1', ifName: 'eth0', addresses: ['10.89.0.5/24'], gateways: ['10.89.0.1'], names: ['web'] },
  ] };
  records(dir, netA);
  records(dir, { network: 'netb', domain: 'dns.cnikit', port: 53, upstreams: [], containers: [
    { containerId: 'b1', ifName: 'eth0', addresses: ['10.90.0.5/24'], gateways: ['10.90.0.1'], names: ['cache'] },
  ] });
  const child = spawn('ip', ['netns', 'exec', sb.host, join(BIN, 'dnsname'), '--serve', '--records', dir, '--listen', '10.89.0.1:5353', '--listen', '127.0.0.1:5353'], { stdio: 'ignore' });
  child.unref();
  let up = false;
  for (let i = 0; i < 50 && !up; i++) {
    up = !ask(sb, sb.host, [{ server: '127.0.0.1', port: 5353, name: 'web', timeoutMs: 300 }])[0]!.error;
    if (!up) await sleep(100);
  }
  t.true(up, 'standalone resolver answers');
  const at = { server: '10.89.0.1', port: 5353 };
  t.deepEqual(resolve(sb, a1.ns, { ...at, name: 'web.dns.cnikit' }), ['10.89.0.5']);
  t.is(resolve(sb, a1.ns, { ...at, name: 'cache.dns.cnikit' }), 'rcode 3', 'network A sees only A');
  t.deepEqual(resolve(sb, b1.ns, { ...at, name: 'cache' }), ['10.90.0.5'], 'a B client on the same address gets B');
  t.is(resolve(sb, b1.ns, { ...at, name: 'web.dns.cnikit' }), 'rcode 3');
  const host = ask(sb, sb.host, [{ server: '127.0.0.1', port: 5353, name: 'web' }, { server: '127.0.0.1', port: 5353, name: 'cache.dns.cnikit' }]);
  t.deepEqual(host.map((h) => h.answers), [['10.89.0.5'], ['10.90.0.5']], 'the host sees every network');

  // A new container written to the directory resolves without any signal.
  netA.containers.push({ containerId: 'a2', ifName: 'eth0', addresses: ['10.89.0.6/24'], gateways: ['10.89.0.1'], names: ['db'] });
  records(dir, netA);
  let db: string[] | string = '';
  for (let i = 0; i < 30 && !Array.isArray(db); i++) {
    db = resolve(sb, a1.ns, { ...at, name: 'db' });
    if (!Array.isArray(db)) await sleep(100);
  }
  t.deepEqual(db, ['10.89.0.6']);
});

netnsTest('standalone resolver refuses to listen on the wildcard address', (t) => {
  const r = spawnSync(join(BIN, 'dnsname'), ['--serve', '--records', '/nonexistent', '--listen', '0.0.0.0:5353'], { encoding: 'utf8', timeout: 10_000 });
  t.not(r.status, 0);
  t.regex(r.stderr, /wildcard/);
});

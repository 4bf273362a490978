/**
 * Concurrent calls in the warm engine: a call that waits (for a lock another process holds)
 * never delays the others, and many calls at once on one network stay correct.
 */
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { EngineStatus } from '../engine/protocol.ts';
import { NODE, ROOT, Sandbox, type PluginRun } from './lib/sandbox.ts';
import { netnsTest } from './lib/netns-test.ts';

const CLIENT = join(ROOT, 'netns-tests/fixtures/engine-client.ts');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function engineUp(sb: Sandbox): Promise<EngineStatus> {
  for (let i = 0; i < 100; i++) {
    const r = sb.exec(sb.host, NODE, [CLIENT, 'status'], { env: { PATH: process.env.PATH } });
    const s = r.status === 0 ? JSON.parse(r.stdout) as EngineStatus | null : null;
    if (s) return s;
    await sleep(100);
  }
  throw new Error('no engine answered within 10 s');
}

function conf(sb: Sandbox, net: string, subnet: string, bridge: string) {
  return {
    cniVersion: '1.0.0', name: net, type: 'bridge', bridge, isGateway: true,
    ipam: { type: 'host-local', dataDir: join(sb.tmp, 'ipam'), ranges: [[{ subnet }]], routes: [{ dst: '0.0.0.0/0' }] },
  };
}

netnsTest('a call waiting for a lock does not delay the engine\'s other calls', async (t) => {
  const sb = new Sandbox('q');
  t.teardown(() => sb.cleanup());
  const a = sb.container('a');
  const b = sb.container('b');
  sb.plugin('bridge', { command: 'VERSION', conf: '{"cniVersion":"1.0.0"}' });
  const up = await engineUp(sb);
  const lockDir = join(sb.tmp, 'ipam', 'neta');
  mkdirSync(lockDir, { recursive: true });
  const holder = spawn('flock', [join(lockDir, 'lock'), 'sleep', '30'], { stdio: 'ignore', detached: true });
  const release = () => { try { process.kill(-holder.pid!, 'SIGKILL'); } catch { /* gone */ } };
  t.teardown(release);
  await sleep(300);
  let slowDone = false;
  const slow = sb.pluginAsync('bridge', { command: 'ADD', containerId: 'a', netns: Sandbox.path(a), conf: conf(sb, 'neta', '10.81.0.0/24', 'cnka') })
    .then((r) => { slowDone = true; return r; });
  await sleep(500);
  const fast = await sb.pluginAsync('bridge', { command: 'ADD', containerId: 'b', netns: Sandbox.path(b), conf: conf(sb, 'netb', '10.82.0.0/24', 'cnkb') });
  t.is(fast.code, 0, fast.stdout + fast.stderr);
  t.false(slowDone, 'the waiting call is still waiting');
  release();
  const r: PluginRun = await slow;
  t.is(r.code, 0, r.stdout + r.stderr);
  t.is((await engineUp(sb)).pid, up.pid, 'both were served by the one engine');
});

/**
 * The control protocol, both ends in one process (no root): the server answers `ping` and
 * `reload` with one ControlReply, refuses other commands, reports a failed reload, says it is
 * stopping; the client gets undefined when nothing sensible answers.
 */
import test from 'ava';
import { mkdtempSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../pkg/log.ts';
import { type ControlTarget, RUN_FILES, controlRequest, serveControl } from './control.ts';
import type { ServerStats } from './server.ts';

const stats: ServerStats = { queries: 3, answered: 2, forwarded: 1, refused: 0, servfail: 0, malformed: 0, reloads: 1 };

function target(over: Partial<ControlTarget> = {}): ControlTarget & { reloads: string[] } {
  const reloads: string[] = [];
  return { reloads, reload: async (reason: string) => { reloads.push(reason); }, stopping: false, networks: 2, bound: ['10.89.0.1|53'], stats, ...over };
}

async function serve(t: { teardown(fn: () => void): void }, tg: ControlTarget): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'cnikit-ctl-'));
  writeFileSync(join(dir, RUN_FILES.sock), 'stale'); // replaced
  const server = await serveControl(dir, tg, silentLogger);
  t.teardown(() => server.close());
  return dir;
}

function raw(dir: string, line: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = net.connect({ path: join(dir, RUN_FILES.sock) }, () => c.write(line));
    let data = '';
    c.on('data', (d) => { data += d; });
    c.on('end', () => resolve(data));
    c.on('error', reject);
  });
}

test('ping and reload: one reply with the state; reload re-reads first', async (t) => {
  const tg = target();
  const dir = await serve(t, tg);
  t.deepEqual(await controlRequest(dir, 'ping', 2000), { ok: true, pid: process.pid, networks: 2, listening: ['10.89.0.1|53'], stats });
  t.deepEqual(tg.reloads, []);
  t.like(await controlRequest(dir, 'reload', 2000), { ok: true, networks: 2 });
  t.deepEqual(tg.reloads, ['control']);
});

test('an unknown command and a failed reload are ok:false with the reason', async (t) => {
  const dir = await serve(t, target({ reload: async () => { throw new Error('disk on fire'); } }));
  t.like(JSON.parse(await raw(dir, 'status\n')), { ok: false, error: 'unknown command "status"', pid: process.pid });
  t.like(await controlRequest(dir, 'reload', 2000), { ok: false, error: 'disk on fire' });
});

test('a stopping responder says so: ping not ok, no networks; a reload that emptied it is still ok', async (t) => {
  const dir = await serve(t, target({ stopping: true }));
  t.like(await controlRequest(dir, 'ping', 2000), { ok: false, networks: 0 });
  t.like(await controlRequest(dir, 'reload', 2000), { ok: true, networks: 0 });
});

test('the client: nothing listening, silence, or garbage is undefined', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cnikit-ctl-'));
  t.is(await controlRequest(dir, 'ping', 500), undefined);
  const silent = net.createServer(() => {});
  const garbage = net.createServer((c) => c.end('not json\n'));
  await new Promise<void>((r) => silent.listen(join(dir, RUN_FILES.sock), () => r()));
  t.teardown(() => { silent.close(); garbage.close(); });
  t.is(await controlRequest(dir, 'ping', 300), undefined);
  const dir2 = mkdtempSync(join(tmpdir(), 'cnikit-ctl-'));
  await new Promise<void>((r) => garbage.listen(join(dir2, RUN_FILES.sock), () => r()));
  t.is(await controlRequest(dir2, 'ping', 2000), undefined);
});

/**
 * The responder run in-process on loopback (no root), as the plugin's daemon and as the
 * standalone resolver: serveDns takes the run directory, answers from the records, reloads on a
 * control command, stops when no network is left and removes its run files; parseListen and the
 * responder's command line.
 */
import test from 'ava';
import dgram from 'node:dgram';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../pkg/log.ts';
import { RUN_FILES, controlRequest } from './control.ts';
import { parseServeArgs } from './main.ts';
import { type NetworkRecords, formatRecords } from './records.ts';
import { parseListen, serveDns } from './serve.ts';
import { TYPE, answerCount, encodeQuery, rcodeOf } from './wire.ts';

async function freePort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const { port } = s.address();
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function query(port: number, name: string, timeoutMs = 2000): Promise<{ rcode: number; answers: number } | undefined> {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    const done = (r: { rcode: number; answers: number } | undefined) => { clearTimeout(timer); s.close(); resolve(r); };
    const timer = setTimeout(() => done(undefined), timeoutMs);
    s.on('message', (m) => done({ rcode: rcodeOf(m), answers: answerCount(m) }));
    s.send(encodeQuery(1, name, TYPE.A), port, '127.0.0.1');
  });
}

function records(port: number): NetworkRecords {
  return { network: 'lo', domain: 'dns.cnikit', port, upstreams: [], containers: [
    { containerId: 'c1', ifName: 'eth0', addresses: ['127.0.0.5/8'], gateways: ['127.0.0.1'], names: ['web'] },
  ] };
}

test.serial('the plugin\'s daemon in-process: run files, answers, reload by control, stops when empty', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cnikit-serve-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const port = await freePort();
  writeFileSync(join(dir, 'lo.records'), formatRecords(records(port)));
  const svc = await serveDns({ recordsDir: dir, runDir: dir, exitWhenEmpty: true, resolvConf: join(dir, 'no-resolv.conf'), log: silentLogger });
  t.teardown(() => svc.close());
  t.deepEqual(svc.server.bound, [`127.0.0.1|${port}`]);
  t.is(readFileSync(join(dir, RUN_FILES.pid), 'utf8'), `${process.pid}\n`);
  t.deepEqual(await query(port, 'web.dns.cnikit'), { rcode: 0, answers: 1 });
  t.deepEqual(await query(port, 'nosuch.dns.cnikit'), { rcode: 3, answers: 0 });
  t.like(await controlRequest(dir, 'ping', 2000), { ok: true, networks: 1, listening: [`127.0.0.1|${port}`] });

  rmSync(join(dir, 'lo.records'));
  t.like(await controlRequest(dir, 'reload', 2000), { ok: true, networks: 0 });
  await svc.done;
  t.false(existsSync(join(dir, RUN_FILES.pid)), 'pid file removed');
  t.false(existsSync(join(dir, RUN_FILES.sock)), 'control socket removed');
  t.is(await query(port, 'web.dns.cnikit', 300), undefined, 'nothing listens any more');
});

test.serial('the standalone resolver in-process: listens where told, reloads on request, closes', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cnikit-serve-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const port = await freePort();
  // No resolv.conf: with nothing to forward to, names outside the records are REFUSED (never the host's resolver).
  const svc = await serveDns({ recordsDir: dir, listen: [{ address: '127.0.0.1', port }], resolvConf: join(dir, 'no-resolv.conf'), log: silentLogger });
  t.teardown(() => svc.close());
  t.is(svc.server.networks, 0);
  t.is((await query(port, 'web.dns.cnikit'))?.rcode, 5, 'REFUSED: nothing to answer from, nowhere to forward');
  writeFileSync(join(dir, 'lo.records'), formatRecords(records(53)));
  t.is(await svc.reload('test'), 1);
  t.deepEqual(await query(port, 'web.dns.cnikit'), { rcode: 0, answers: 1 });
  await svc.close();
  await svc.done;
  t.is(await svc.reload('after close'), 0, 'a reload after close does nothing');
});

test('parseListen: ADDR:PORT, [V6]:PORT, a bare address; never the wildcard', (t) => {
  t.deepEqual(parseListen('127.0.0.1:5353'), { address: '127.0.0.1', port: 5353 });
  t.deepEqual(parseListen('[FD00::1]:53'), { address: 'fd00::1', port: 53 });
  t.deepEqual(parseListen('10.89.0.1'), { address: '10.89.0.1', port: 53 });
  for (const s of ['0.0.0.0:53', '::', '[::]:5353']) t.throws(() => parseListen(s), { message: /refusing to listen on the wildcard address/ }, s);
  for (const s of ['localhost:53', '10.89.0.1:0', '']) t.throws(() => parseListen(s), { message: /invalid listen address/ }, s);
});

test('the responder\'s command line', (t) => {
  t.deepEqual(parseServeArgs(['--responder', '--records', '/r', '--run-dir', '/x']), { recordsDir: '/r', runDir: '/x', exitWhenEmpty: true });
  t.deepEqual(parseServeArgs(['--serve', '--records', '/r', '--listen', '127.0.0.1:5353', '--forward-timeout-ms', '500']),
    { recordsDir: '/r', exitWhenEmpty: false, watch: true, listen: [{ address: '127.0.0.1', port: 5353 }], forwardTimeoutMs: 500 });
  t.throws(() => parseServeArgs(['--responder']), { message: '--records DIR is required' });
  t.throws(() => parseServeArgs(['--records']), { message: '--records needs a value' });
  t.throws(() => parseServeArgs(['--records', '/r', '--bogus']), { message: 'unknown argument "--bogus"' });
});

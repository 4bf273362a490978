// hostLocalPlugin called in-process the way bridge calls it (delegate with its in-process table): the
// whole bridge config as args.conf, CNI_ARGS in args.args, runtimeConfig in args.conf; nothing
// read from process.env, nothing printed. No root needed (flock is unprivileged).
import test from 'ava';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CniError } from '../../pkg/cni/errors.ts';
import type { CmdArgs, RawConf } from '../../pkg/cni/skel.ts';
import { hostLocalPlugin } from './plugin.ts';
import { silentLogger } from '../../pkg/log.ts';
import { noKernel } from '../../pkg/kernel.ts';

function bridgeArgs(dataDir: string, over: Partial<CmdArgs> = {}, confExtra: Record<string, unknown> = {}): CmdArgs {
  const conf: RawConf = {
    cniVersion: '1.1.0', name: 'brnet', type: 'bridge', bridge: 'cni0', isGateway: true,
    ipam: { type: 'host-local', dataDir, ranges: [[{ subnet: '10.77.0.0/24' }], [{ subnet: 'fd77::/64' }]], routes: [{ dst: '0.0.0.0/0' }] },
    ...confExtra,
  };
  return {
    command: 'ADD', containerId: 'ctr1', netns: '/run/netns/x', ifName: 'eth0', args: '', path: ['/nonexistent'],
    stdinData: Buffer.from(JSON.stringify(conf)), conf, env: {}, self: '', log: silentLogger, ...over, kernel: noKernel,
  };
}

function tmp(t: { teardown(fn: () => void): void }): string {
  const d = mkdtempSync(join(tmpdir(), 'cnikit-hl-plugin-'));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

test('ADD/CHECK/DEL in-process from a bridge config', async (t) => {
  const data = tmp(t);
  const r = await hostLocalPlugin.add(bridgeArgs(data, { args: 'IgnoreUnknown=1;IP=10.77.0.40' }, { runtimeConfig: { ips: ['fd77::40'] } }));
  t.deepEqual(r, {
    cniVersion: '1.1.0',
    ips: [{ address: '10.77.0.40/24', gateway: '10.77.0.1' }, { address: 'fd77::40/64', gateway: 'fd77::1' }],
    routes: [{ dst: '0.0.0.0/0' }],
  });
  t.deepEqual(readdirSync(join(data, 'brnet')).sort(), ['10.77.0.40', 'fd77::40', 'last_reserved_ip.0', 'last_reserved_ip.1', 'lock']);
  await t.notThrowsAsync(hostLocalPlugin.check(bridgeArgs(data, { command: 'CHECK' })));
  await hostLocalPlugin.del(bridgeArgs(data, { command: 'DEL', netns: '' }));
  await hostLocalPlugin.del(bridgeArgs(data, { command: 'DEL', netns: '' }));
  t.deepEqual(readdirSync(join(data, 'brnet')).sort(), ['last_reserved_ip.0', 'last_reserved_ip.1', 'lock']);
  const err = await t.throwsAsync(hostLocalPlugin.check(bridgeArgs(data, { command: 'CHECK' })), { instanceOf: CniError });
  t.is(err.message, 'host-local: Failed to find address added by container ctr1');
});

test('STATUS and GC in-process', async (t) => {
  const data = tmp(t);
  const small = { ipam: { type: 'host-local', dataDir: data, ranges: [[{ subnet: '10.77.0.0/30' }]] } };
  await t.notThrowsAsync(hostLocalPlugin.status!(bridgeArgs(data, { command: 'STATUS' }, small)));
  await hostLocalPlugin.add(bridgeArgs(data, {}, small));
  const err = await t.throwsAsync(hostLocalPlugin.status!(bridgeArgs(data, { command: 'STATUS' }, small)), { instanceOf: CniError });
  t.is(err.code, 50);
  await hostLocalPlugin.gc!(bridgeArgs(data, { command: 'GC' }, small), [{ containerID: 'ctr1', ifname: 'eth0' }]);
  t.true(readdirSync(join(data, 'brnet')).includes('10.77.0.2'));
  await hostLocalPlugin.gc!(bridgeArgs(data, { command: 'GC' }, small), []);
  t.false(readdirSync(join(data, 'brnet')).includes('10.77.0.2'));
  await t.notThrowsAsync(hostLocalPlugin.status!(bridgeArgs(data, { command: 'STATUS' }, small)));
});

test('a bridge config without ipam is a config error', async (t) => {
  const a = bridgeArgs('/nonexistent');
  delete a.conf.ipam;
  const err = await t.throwsAsync(hostLocalPlugin.add(a), { instanceOf: CniError });
  t.is(err.code, 7);
});

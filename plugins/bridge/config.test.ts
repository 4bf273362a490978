import test from 'ava';
import { CniError } from '../../pkg/cni/errors.ts';
import type { CmdArgs } from '../../pkg/cni/skel.ts';
import { parseBridgeConf } from './config.ts';
import { silentLogger } from '../../pkg/log.ts';
import { noKernel } from '../../pkg/kernel.ts';

function args(conf: Record<string, unknown>, cniArgs = ''): CmdArgs {
  const full = { cniVersion: '1.0.0', name: 'net', type: 'bridge', ...conf };
  return {
    command: 'ADD', containerId: 'c', netns: '/run/netns/x', ifName: 'eth0', args: cniArgs, path: [],
    stdinData: Buffer.from(JSON.stringify(full)), conf: full as CmdArgs['conf'], env: {}, self: '', log: silentLogger, kernel: noKernel,
  };
}

test('defaults match the reference plugin', (t) => {
  const c = parseBridgeConf(args({}));
  t.is(c.bridge, 'cni0');
  t.false(c.isGateway);
  t.false(c.ipMasq);
  t.is(c.vlan, 0);
  t.is(c.ipamType, undefined);
  t.is(c.mac, undefined);
});

test('isDefaultGateway implies isGateway; unknown keys are ignored', (t) => {
  const c = parseBridgeConf(args({ isDefaultGateway: true, someOtherPluginsKey: 1 }));
  t.true(c.isGateway);
  t.true(c.isDefaultGateway);
});

test('MAC comes from runtimeConfig, then args.cni, then CNI_ARGS', (t) => {
  t.is(parseBridgeConf(args({}, 'MAC=0a:00:00:00:00:03')).mac, '0a:00:00:00:00:03');
  t.is(parseBridgeConf(args({ args: { cni: { mac: '0a:00:00:00:00:02' } } }, 'MAC=0a:00:00:00:00:03')).mac, '0a:00:00:00:00:02');
  t.is(parseBridgeConf(args({ runtimeConfig: { mac: '0A:00:00:00:00:01' }, args: { cni: { mac: '0a:00:00:00:00:02' } } })).mac, '0a:00:00:00:00:01');
});

const rejects = test.macro((t, conf: Record<string, unknown>, code: number, re: RegExp, cniArgs?: string) => {
  const err = t.throws(() => parseBridgeConf(args(conf, cniArgs ?? '')), { instanceOf: CniError }) as CniError;
  t.is(err.code as number, code);
  t.regex(`${err.message}: ${err.details}`, re);
});

test('mtu must be a sane integer', rejects, { mtu: 12 }, 7, /mtu 12/);
test('mtu must be a number', rejects, { mtu: '1500' }, 7, /mtu: expected number/);
test('vlan range', rejects, { vlan: 4095 }, 7, /VLAN ID 4095/);
test('hairpin with promisc', rejects, { hairpinMode: true, promiscMode: true }, 7, /hairpin/);
test('bridge name too long', rejects, { bridge: 'a-very-long-bridge-name' }, 7, /bridge name/);
test('macspoofchk is not implemented: rejected, not ignored', rejects, { macspoofchk: true }, 2, /macspoofchk/);
test('vlanTrunk is not implemented', rejects, { vlanTrunk: [{ id: 101 }] }, 2, /vlanTrunk/);
test('iptables masquerade backend', rejects, { ipMasqBackend: 'iptables' }, 2, /ipMasqBackend/);
test('bad MAC', rejects, { runtimeConfig: { mac: 'zz:00:00:00:00:01' } }, 7, /invalid MAC/);
test('multicast MAC', rejects, { runtimeConfig: { mac: '01:00:00:00:00:01' } }, 7, /multicast/);
test('unknown CNI_ARGS key', rejects, {}, 4, /unknown args \[FOO\]/, 'FOO=1');
test('missing name', rejects, { name: 5 }, 7, /name: expected string/);

test('DEL, GC and STATUS take each key they need only when usable, as Go matches keys', (t) => {
  const del = parseBridgeConf(args({ IPMasq: true, IPAM: { Type: 'host-local' }, Bridge: 'br7' }), false);
  t.like(del, { ipMasq: true, ipamType: 'host-local', bridge: 'br7' });
  // Wrong types: no IPAM was reached by any ADD, masquerade may have been on (removed by owner), the default bridge.
  const garbage = parseBridgeConf(args({ ipMasq: 'yes', ipam: { type: 5 }, bridge: 7, mtu: 'x', vlan: [], runtimeConfig: 'x' }, 'garbage'), false);
  t.like(garbage, { ipMasq: true, ipamType: undefined, bridge: 'cni0' });
  t.like(parseBridgeConf(args({ ipam: 5 }), false), { ipMasq: false, ipamType: undefined });
});

test('runtimeConfig.mac and args.cni.mac are matched as Go matches them', (t) => {
  t.is(parseBridgeConf(args({ RuntimeConfig: { MAC: '0a:00:00:00:00:01' } })).mac, '0a:00:00:00:00:01');
  t.is(parseBridgeConf(args({ Args: { CNI: { Mac: '0a:00:00:00:00:02' } } })).mac, '0a:00:00:00:00:02');
});

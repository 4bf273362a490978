/**
 * The firewall's config without root: every rejection with its code and message, the defaults,
 * and what ADD/CHECK and DEL take from prevResult.
 */
import test from 'ava';
import { type CniCode, CniError } from '../../pkg/cni/errors.ts';
import { parseCidr } from '../../pkg/ip/cidr.ts';
import { attachmentOf, parseFirewallConf, parseFirewallDel } from './config.ts';

const base = { cniVersion: '1.0.0', name: 'net', type: 'firewall' };
const prevResult = {
  cniVersion: '1.0.0',
  interfaces: [{ name: 'cnk0' }, { name: 'veth1234' }, { name: 'eth0', sandbox: '/run/netns/x' }],
  ips: [{ address: '10.77.0.5/24', interface: 2 }, { address: 'fd77::5/64', interface: 2 }, { address: '192.0.2.9/24', interface: 7 }],
};

const rejects = test.macro((t, conf: Record<string, unknown>, code: CniCode, text: RegExp) => {
  const err = t.throws(() => attachmentOf(parseFirewallConf({ ...base, ...conf }), 'c1', 'eth0'), { instanceOf: CniError }) as CniError;
  t.is(err.code, code);
  t.regex(`${err.message} ${err.details ?? ''}`, text);
});

test('backend iptables', rejects, { backend: 'iptables', prevResult }, 2, /unsupported config field "backend".*nftables under backend "".*set "backend": ""/);
test('backend firewalld', rejects, { backend: 'firewalld', prevResult }, 2, /firewalld over D-Bus.*trusted zone/);
test('backend unknown', rejects, { backend: 'ipfw', prevResult }, 7, /backend: must be/);
test('ingressPolicy unknown (the reference\'s message)', rejects, { ingressPolicy: 'strict', prevResult }, 7, /unknown ingress policy: "strict"/);
test('isolated with icc true', rejects, { ingressPolicy: 'isolated', icc: true, prevResult }, 7, /icc: ingressPolicy "isolated"/);
test('strictIsolation with ingressPolicy open', rejects, { strictIsolation: true, ingressPolicy: 'open', prevResult }, 7, /strictIsolation: .*"ingressPolicy": "open" contradicts it/);
test('strictIsolation not a boolean', rejects, { strictIsolation: 'yes', prevResult }, 7, /strictIsolation/);
test('internal not a boolean', rejects, { internal: 'yes', prevResult }, 7, /internal/);
test('admin chain with a space', rejects, { iptablesAdminChainName: 'MY ADMIN', prevResult }, 7, /iptablesAdminChainName: must be/);
test('admin chain too long for iptables', rejects, { iptablesAdminChainName: 'A'.repeat(29), prevResult }, 7, /1-28 characters/);
test('admin chain named like ours', rejects, { iptablesAdminChainName: 'portmap_hostports', prevResult }, 7, /cnikit uses for its own chains/);
test('no prevResult', rejects, {}, 7, /prevResult is missing/);
test('prevResult without a host interface', rejects, { prevResult: { ...prevResult, interfaces: [{ name: 'eth0', sandbox: '/x' }] } }, 7, /interfaces\[0\]/);
test('prevResult without addresses of the interface', rejects, { prevResult: { ...prevResult, ips: [{ address: '10.0.0.1/24', interface: 7 }] } }, 7, /no IP address of the container interface "eth0"/);

test('defaults: open, not internal, icc on, CNI-ADMIN; backend "" and "nftables" are ours', (t) => {
  for (const backend of [undefined, '', 'nftables']) {
    const c = parseFirewallConf({ ...base, ...(backend === undefined ? {} : { backend }), prevResult, firewalldZone: 'trusted' });
    t.like(c, { ingressPolicy: 'open', internal: false, icc: true, strict: false, adminChain: 'CNI-ADMIN', cniVersion: '1.0.0' });
  }
  t.like(parseFirewallConf({ ...base, ingressPolicy: '' }), { ingressPolicy: 'open' });
  t.like(parseFirewallConf({ ...base, ingressPolicy: 'isolated' }), { ingressPolicy: 'isolated', icc: false }, 'isolated implies icc false');
  t.like(parseFirewallConf({ ...base, ingressPolicy: 'same-bridge', internal: true, icc: false, iptablesAdminChainName: 'MY-ADMIN' }),
    { ingressPolicy: 'same-bridge', internal: true, icc: false, adminChain: 'MY-ADMIN' });
});

test('strictIsolation: implies the ingress part (same-bridge) when ingressPolicy is unset; keeps icc; combines with isolated', (t) => {
  t.like(parseFirewallConf({ ...base, ingressPolicy: 'same-bridge', strictIsolation: true }), { ingressPolicy: 'same-bridge', strict: true, icc: true });
  for (const ingressPolicy of [undefined, '']) {
    t.like(parseFirewallConf({ ...base, ...(ingressPolicy === undefined ? {} : { ingressPolicy }), strictIsolation: true }), { ingressPolicy: 'same-bridge', strict: true });
  }
  t.like(parseFirewallConf({ ...base, ingressPolicy: 'isolated', strictIsolation: true }), { ingressPolicy: 'isolated', strict: true, icc: false });
  t.like(parseFirewallConf({ ...base, ingressPolicy: 'open', strictIsolation: false }), { ingressPolicy: 'open', strict: false });
});

test('the attachment: bridge interfaces[0], the veth after it, the addresses of the container interface only', (t) => {
  const a = attachmentOf(parseFirewallConf({ ...base, prevResult }), 'c1', 'eth0');
  t.deepEqual(a, { network: 'net', containerId: 'c1', ifName: 'eth0', bridge: 'cnk0', hostVeth: 'veth1234', addrs: [parseCidr('10.77.0.5/24'), parseCidr('fd77::5/64')] });
});

test('DEL never throws: what it can use, and `complete` only with a bridge and addresses', (t) => {
  t.like(parseFirewallDel({ ...base, prevResult }, 'c1', 'eth0'), { bridge: 'cnk0', complete: true });
  for (const junk of [{ bogus: 1 }, 'text', null, { ...prevResult, cniVersion: '9.9.9' }, { interfaces: [{ name: 'x'.repeat(20) }] }]) {
    const d = parseFirewallDel({ ...base, backend: 'firewalld', ingressPolicy: 7, prevResult: junk }, 'c1', 'eth0');
    t.like(d, { network: 'net', complete: false });
  }
  t.like(parseFirewallDel({ cniVersion: '1.0.0', type: 'firewall' }, 'c1', 'eth0'), { network: '', complete: false });
});

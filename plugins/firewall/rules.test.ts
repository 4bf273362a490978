/**
 * The firewall's ruleset without root: each rule of the skeleton against the bytes `nft` sends
 * for the same rule text (pkg/nftables/testdata/golden.json, the fw* captures, taken from the
 * module header of rules.ts), the foreign rule, the base chains and sets, the elements a network
 * and an attachment own, which foreign chains get our rule, and how a bridge's state is compared
 * with a policy.
 */
import test from 'ava';
import { parseCidr } from '../../pkg/ip/cidr.ts';
import { CNIKIT_TABLE } from '../../pkg/nftables/model.ts';
import { type TableRef, addChain, addRule, addSet } from '../../pkg/nftables/objects.ts';
import { LOOKUP_SET_ID, SET_UDATA, captured, ours } from '../../pkg/nftables/testdata/golden.ts';
import { NF_ACCEPT, NF_DROP, NFPROTO } from '../../pkg/nftables/consts.ts';
import { chainName, foreignForwardChains, seesOurMark } from './foreign.ts';
import { bridgeDifferences } from './network.ts';
import {
  CHAIN, CONTAINER_SETS, NETWORK_SETS, SET, bridgeOfKey, containerElements, firewallRuleset, firewallSkeleton, foreignRule, networkElements, parseNetworkTag,
} from './rules.ts';
import type { NetworkPolicy } from './config.ts';

const OPEN: NetworkPolicy = { ingressPolicy: 'open', internal: false, icc: true, strict: false, adminChain: 'CNI-ADMIN' };
const skeleton = firewallSkeleton('CNI-ADMIN');
const forward = skeleton.rules.filter((r) => r.chain === CHAIN.FORWARD);

/** The capture of each rule of firewall_forward, in order (rules.ts's header in nft syntax). */
const FORWARD_GOLDEN = [
  'fwMarkClear', 'fwNotOurs', 'fwMarkSet', 'fwAdminOut', 'fwAdminIn', 'fwMarkClear', 'fwInternalOut', 'fwInternalIn',
  'fwEstablished', 'fwPublished4', 'fwPublished6', 'fwNoIcc', 'fwIsolated', 'fwStrict', 'fwFromCtr4', 'fwFromCtr6',
];

test('every rule of firewall_forward encodes as nft encodes its text', (t) => {
  t.is(forward.length, FORWARD_GOLDEN.length);
  forward.forEach((r, i) => {
    const msg = addRule(CNIKIT_TABLE, r);
    const lookups = r.exprs.some((e) => e.type === 'lookup');
    t.deepEqual(ours(msg), captured(FORWARD_GOLDEN[i]!, lookups ? LOOKUP_SET_ID : []), `rule ${i}: ${FORWARD_GOLDEN[i]}`);
  });
});

test('firewall_unmark clears the mark; the foreign rule is iptables-readable and tagged', (t) => {
  const unmark = skeleton.rules.filter((r) => r.chain === CHAIN.UNMARK);
  t.is(unmark.length, 1);
  t.deepEqual(ours(addRule(CNIKIT_TABLE, unmark[0]!)), captured('fwUnmark'));
  const ipFilter: TableRef = { family: 'ip', name: 'filter' };
  t.deepEqual(ours(addRule(ipFilter, foreignRule('FORWARD'))), captured('fwForeignMarkAccept'));
  t.deepEqual(foreignRule('FORWARD').exprs.map((e) => e.type), ['meta', 'bitwise', 'cmp', 'counter', 'verdict'], 'no ct, no lookup: iptables -S reads it back');
});

test('the skeleton: base chains at -200 and 200, the admin chain left to the admin, sets of ifname keys and the verdict map', (t) => {
  const [admin, fwd, unmark] = skeleton.chains;
  t.deepEqual(admin, { name: 'CNI-ADMIN', userRules: true });
  t.deepEqual(ours(addChain(CNIKIT_TABLE, fwd!)), captured('fwForwardChain'));
  t.deepEqual(ours(addChain(CNIKIT_TABLE, unmark!)), captured('fwUnmarkChain'));
  const byName = new Map(skeleton.sets.map((s) => [s.name, s]));
  t.deepEqual(ours(addSet(CNIKIT_TABLE, byName.get(SET.BRIDGES)!, 1)), captured('setIfname', SET_UDATA));
  t.deepEqual(ours(addSet(CNIKIT_TABLE, byName.get(SET.SAME)!, 1)), captured('setIfnamePair', SET_UDATA));
  t.deepEqual(ours(addSet(CNIKIT_TABLE, byName.get(SET.CTR4)!, 1)), captured('setIfnameAddr4', SET_UDATA));
  t.deepEqual(ours(addSet(CNIKIT_TABLE, byName.get(SET.CTR6)!, 1)), captured('setIfnameAddr6', SET_UDATA));
  t.deepEqual(ours(addSet(CNIKIT_TABLE, byName.get(SET.ADMIN)!, 1)), captured('vmapIfname', SET_UDATA));
  t.deepEqual([...byName.keys()].sort(), [...NETWORK_SETS, ...CONTAINER_SETS].sort(), 'DEL and GC know every set');
  t.deepEqual(firewallSkeleton('MY-ADMIN').rules, skeleton.rules, 'the rules do not depend on the admin chain');
});

test('a network\'s elements: shared, tagged with the network, only what its policy asks for', (t) => {
  const els = networkElements('net', 'cnk0', { ingressPolicy: 'same-bridge', internal: true, icc: false, strict: false, adminChain: 'MY-ADMIN' });
  t.deepEqual(els.map((e) => e.set), [SET.BRIDGES, SET.SAME, SET.ADMIN, SET.ISOLATED, SET.INTERNAL, SET.NOICC]);
  t.true(els.every((e) => e.shared && e.comment === 'net=net'));
  t.deepEqual(els[2]!.verdict, { verdict: 'jump', chain: 'MY-ADMIN' });
  t.is(els[1]!.key.toString('hex'), '636e6b30'.padEnd(32, '0').repeat(2), 'cnk0 . cnk0, each NUL-padded to 16 bytes');
  t.deepEqual(networkElements('net', 'cnk0', OPEN).map((e) => e.set), [SET.BRIDGES, SET.SAME, SET.ADMIN]);
  const strict = networkElements('net', 'cnk0', { ...OPEN, ingressPolicy: 'same-bridge', strict: true });
  t.deepEqual(strict.map((e) => e.set), [SET.BRIDGES, SET.SAME, SET.ADMIN, SET.ISOLATED, SET.STRICT], 'strict: kept out and kept in, icc on');
  t.is(strict[4]!.key.toString('hex'), '636e6b30'.padEnd(32, '0'), 'the bridge alone');
  t.is(parseNetworkTag('net=net'), 'net');
  t.is(parseNetworkTag('net=net id=c if=eth0'), undefined, 'a container\'s owner tag is not a network tag');
});

test('an attachment\'s elements: bridge . address per address, owner-tagged, exclusive', (t) => {
  const a = { network: 'net', containerId: 'c1', ifName: 'eth0', bridge: 'cnk0', hostVeth: 'veth1', addrs: [parseCidr('10.77.0.5/24'), parseCidr('fd77::5/64')] };
  const els = containerElements(a);
  t.deepEqual(els.map((e) => e.set), [SET.CTR4, SET.CTR6]);
  t.is(els[0]!.key.toString('hex'), '636e6b30'.padEnd(32, '0') + '0a4d0005');
  t.true(els.every((e) => e.comment === 'net=net id=c1 if=eth0' && !e.shared));
  t.is(bridgeOfKey(els[1]!.key), 'cnk0');
  t.is(firewallRuleset(a, OPEN).elements.length, 5, 'three of the network, two of the attachment');
});

test('foreign chains: filter base chains on the forward hook of ip/ip6/inet tables that are not ours; the priority window', (t) => {
  const chains = foreignForwardChains([
    { family: NFPROTO.ip, table: 'filter', name: 'FORWARD', hook: 2, priority: 0, type: 'filter', policy: NF_DROP },
    { family: NFPROTO.ip6, table: 'filter', name: 'FORWARD', hook: 2, priority: 0, type: 'filter', policy: NF_ACCEPT },
    { family: NFPROTO.inet, table: 'hostfw', name: 'forward', hook: 2, priority: -300, type: 'filter', policy: NF_DROP },
    { family: NFPROTO.inet, table: 'cnikit', name: 'firewall_forward', hook: 2, priority: -200, type: 'filter', policy: NF_ACCEPT },
    { family: NFPROTO.ip, table: 'cnikit', name: 'fwd', hook: 2, priority: 0, type: 'filter', policy: NF_DROP },
    { family: NFPROTO.bridge, table: 'filter', name: 'FORWARD', hook: 2, priority: -200, type: 'filter', policy: NF_DROP },
    { family: NFPROTO.ip, table: 'filter', name: 'INPUT', hook: 1, priority: 0, type: 'filter', policy: NF_DROP },
    { family: NFPROTO.ip, table: 'filter', name: 'user' },
  ]);
  t.deepEqual(chains.map((c) => [chainName(c), c.drop, seesOurMark(c)]), [
    ['ip filter FORWARD', true, true], ['ip6 filter FORWARD', false, true], ['inet hostfw forward', true, false], ['ip cnikit fwd', true, true],
  ], 'inet cnikit is ours; ip cnikit is not; bridge family and other hooks are ignored');
});

test('a bridge\'s state against a policy: what is missing, what is there too much, an admin jump elsewhere', (t) => {
  const isolated: NetworkPolicy = { ingressPolicy: 'isolated', internal: false, icc: false, strict: false, adminChain: 'CNI-ADMIN' };
  const have = new Map([
    [SET.BRIDGES, { key: Buffer.alloc(16), flags: 0, comment: 'net=net' }],
    [SET.ADMIN, { key: Buffer.alloc(16), flags: 0, verdict: { code: -3, chain: 'OLD-ADMIN' } }],
    [SET.INTERNAL, { key: Buffer.alloc(16), flags: 0 }],
  ]);
  const d = bridgeDifferences(have, 'net', 'cnk0', isolated);
  t.deepEqual(d.missing, [
    'bridge cnk0 (same-bridge pair) is missing', 'ingress isolation of bridge cnk0 is missing', 'no traffic between containers of bridge cnk0 is missing',
  ]);
  t.deepEqual(d.stale.map((s) => [s.set, s.describe]), [
    [SET.ADMIN, 'admin chain CNI-ADMIN of bridge cnk0 jumps to OLD-ADMIN instead'],
    [SET.INTERNAL, 'internal bridge cnk0 is set, the config does not ask for it'],
  ]);
});

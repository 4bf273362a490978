/**
 * Golden-bytes tests: our encoders against the messages `nft` itself sends for the same objects
 * (testdata/golden.json, captured with `nft --debug=mnl` by testdata/capture.ts inside a throwaway
 * netns). Attributes that nft adds for its own bookkeeping and cnikit does not send are removed
 * from the capture before comparing: NFTA_SET_USERDATA (nft's type hints), NFTA_LOOKUP_SET_ID and
 * NFTA_SET_ELEM_LIST_SET_ID (nft refers to sets by transaction id; we refer by name).
 */
import test from 'ava';
import { parseCidr, parseIP } from '../ip/cidr.ts';
import { NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, attr, encodeAttrs, parseMessages } from '../netlink/message.ts';
import { ELEM_SET_ID, LOOKUP_SET_ID, SET_UDATA, captured, golden, ours } from './testdata/golden.ts';
import { FakeNetlinkSocket } from '../netlink/fake-socket.ts';
import { NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END, NFT_MSG, msgType } from './consts.ts';
import { type NftError, Nftables } from './handle.ts';
import { type Expr, encodeExpr } from './expr/index.ts';
import { exprAttr } from './expr/common.ts';
import {
  accept, addrInPrefix, concatKey, counter, ctStateIn, ctStatusDnat, dnatMap, drop, fibTypeLocal, ifnameBytes, inSet, ipToBytes, jump,
  markClearBits, markHasBits, markSetBits, masquerade, nfproto, portBytes, protoBytes, ret, vmap,
} from './match.ts';
import { removeTableIfEmpty, ruleFingerprint, rulesetMessages } from './model.ts';
import { ownerTag, parseOwnerTag } from './owned.ts';
import {
  type NftMsg, type TableRef, addChain, addElements, addRule, addSet, addTable, decodeElements, decodeRule, delElements, delRule,
  encodeBody, nfgenmsg, parseCommentUdata,
} from './objects.ts';

const T: TableRef = { family: 'inet', name: 'cnikit' };
/** iptables-nft's filter table, as a foreign table the firewall adds its one rule to. */
const IPF: TableRef = { family: 'ip', name: 'filter' };

const cases: [string, NftMsg, number[][]?][] = [
  ['table', addTable(T)],
  ['baseChain', addChain(T, { name: 'pre', base: { type: 'nat', hook: 'prerouting', priority: -100, policy: 'accept' } })],
  ['chain', addChain(T, { name: 'hostports' })],
  ['mapAny4', addSet(T, { name: 'pm_any4', key: ['inet_proto', 'inet_service'], data: ['ipv4_addr', 'inet_service'] }), SET_UDATA],
  ['mapAddr6', addSet(T, { name: 'pm_addr6', key: ['ipv6_addr', 'inet_proto', 'inet_service'], data: ['ipv6_addr', 'inet_service'] }), SET_UDATA],
  ['setConcatInterval4', addSet(T, { name: 'hp4', key: ['ipv4_addr', 'ipv4_addr'], interval: true }), SET_UDATA],
  ['ruleFibJump', addRule(T, { chain: 'post', exprs: [...fibTypeLocal('daddr'), ...jump('hostports')] })],
  ['ruleDnatMap', addRule(T, { chain: 'hostports', exprs: [...nfproto(4), ...dnatMap(4, ['meta l4proto', 'th dport'], 'pm_any4')] }), LOOKUP_SET_ID],
  ['ruleDnatMap6', addRule(T, { chain: 'hostports', exprs: [...nfproto(6), ...dnatMap(6, ['ip6 daddr', 'meta l4proto', 'th dport'], 'pm_addr6')] }), LOOKUP_SET_ID],
  ['ruleMasqLocalnet', addRule(T, { chain: 'post', exprs: [...ctStatusDnat(), ...nfproto(4), ...addrInPrefix('saddr', parseCidr('127.0.0.0/8')), ...masquerade()] })],
  ['ruleMasqLookup', addRule(T, { chain: 'post', exprs: [...ctStatusDnat(), ...nfproto(4), ...inSet(['ip saddr', 'ip daddr'], 'hp4'), ...masquerade()] }), LOOKUP_SET_ID],
  ['ruleReturnMulticast6', addRule(T, { chain: 'post', exprs: [...nfproto(6), ...addrInPrefix('daddr', parseCidr('ff00::/8')), ...ret()] })],
  ['ruleCounterRange', addRule(T, { chain: 'post', exprs: [
    ...nfproto(4),
    { type: 'meta', key: 'l4proto', dreg: 1 }, { type: 'cmp', op: 'eq', sreg: 1, data: Buffer.from([6]) },
    { type: 'payload', base: 'transport', offset: 2, len: 2, dreg: 1 },
    { type: 'cmp', op: 'gte', sreg: 1, data: portBytes(1000) }, { type: 'cmp', op: 'lte', sreg: 1, data: portBytes(2000) },
    ...counter(), ...accept(),
  ] as Expr[] })],
  ['elemMap', addElements(T, 'pm_any4', [{ set: 'pm_any4', key: concatKey(protoBytes('tcp'), portBytes(8080)),
    data: concatKey(ipToBytes(parseIP('10.77.0.5')), portBytes(80)), comment: 'net=n id=c if=eth0' }], true), ELEM_SET_ID],
  ['elemMap6', addElements(T, 'pm_addr6', [{ set: 'pm_addr6', key: concatKey(ipToBytes(parseIP('2001:db8::1')), protoBytes('udp'), portBytes(53)),
    data: concatKey(ipToBytes(parseIP('fd77::5')), portBytes(5353)) }], true), ELEM_SET_ID],
  ['elemInterval', addElements(T, 'hp4', [{ set: 'hp4', key: concatKey(ipToBytes(parseIP('10.77.1.0')), ipToBytes(parseIP('10.77.1.5'))),
    keyEnd: concatKey(ipToBytes(parseIP('10.77.1.255')), ipToBytes(parseIP('10.77.1.5'))), comment: 'x' }], true), ELEM_SET_ID],
  ['delElemMap', delElements(T, 'pm_any4', [{ set: 'pm_any4', key: concatKey(protoBytes('tcp'), portBytes(8080)) }]), ELEM_SET_ID],
  // Shapes the firewall plugin introduced: ifname keys, a verdict map, mark arithmetic, a foreign chain.
  ['filterChainDrop', addChain(IPF, { name: 'FORWARD', base: { type: 'filter', hook: 'forward', priority: 0, policy: 'drop' } })],
  ['setIfname', addSet(T, { name: 'firewall_bridges', key: ['ifname'] }), SET_UDATA],
  ['setIfnamePair', addSet(T, { name: 'firewall_same', key: ['ifname', 'ifname'] }), SET_UDATA],
  ['setIfnameAddr4', addSet(T, { name: 'firewall_ctr4', key: ['ifname', 'ipv4_addr'] }), SET_UDATA],
  ['setIfnameAddr6', addSet(T, { name: 'firewall_ctr6', key: ['ifname', 'ipv6_addr'] }), SET_UDATA],
  ['vmapIfname', addSet(T, { name: 'firewall_admin', key: ['ifname'], data: ['verdict'] }), SET_UDATA],
  ['fwMarkClear', addRule(T, { chain: 'firewall_forward', exprs: markClearBits(0x10000) })],
  ['fwMarkSet', addRule(T, { chain: 'firewall_forward', exprs: markSetBits(0x10000) })],
  ['fwAdminOut', addRule(T, { chain: 'firewall_forward', exprs: vmap(['oifname'], 'firewall_admin') }), LOOKUP_SET_ID],
  ['fwNoIcc', addRule(T, { chain: 'firewall_forward', exprs: [...inSet(['iifname', 'oifname'], 'firewall_noicc'), ...drop()] }), LOOKUP_SET_ID],
  ['fwEstablished', addRule(T, { chain: 'firewall_forward', exprs: [...ctStateIn(['established', 'related']), ...markSetBits(0x10000), ...accept()] })],
  ['fwForeignMarkAccept', addRule(IPF, { chain: 'FORWARD', exprs: [...markHasBits(0x10000), ...counter(), ...accept()],
    comment: 'cnikit firewall: accepted by table inet cnikit (mark 0x10000)' })],
  ['delRuleHandle', delRule(IPF, 'FORWARD', 2n)],
  ['elemIfname', addElements(T, 'firewall_bridges', [{ set: 'firewall_bridges', key: ifnameBytes('cnk0'), comment: 'net=n' }], false), ELEM_SET_ID],
  ['elemIfnamePair', addElements(T, 'firewall_same', [{ set: 'firewall_same', key: concatKey(ifnameBytes('cnk0'), ifnameBytes('cnk0')), comment: 'net=n' }], false), ELEM_SET_ID],
  ['elemIfnameAddr4', addElements(T, 'firewall_ctr4', [{ set: 'firewall_ctr4', key: concatKey(ifnameBytes('cnk0'), ipToBytes(parseIP('10.77.0.5'))),
    comment: 'net=n id=c if=eth0' }], true), ELEM_SET_ID],
  ['elemIfnameAddr6', addElements(T, 'firewall_ctr6', [{ set: 'firewall_ctr6', key: concatKey(ifnameBytes('cnk0'), ipToBytes(parseIP('fd77::5'))),
    comment: 'net=n id=c if=eth0' }], true), ELEM_SET_ID],
  ['elemVmapJump', addElements(T, 'firewall_admin', [{ set: 'firewall_admin', key: ifnameBytes('cnk0'), verdict: { verdict: 'jump', chain: 'CNI-ADMIN' },
    comment: 'net=n' }], false), ELEM_SET_ID],
];

for (const [name, msg, paths] of cases) {
  test(`golden: ${name} encodes as nft does`, (t) => {
    t.deepEqual(ours(msg), captured(name, paths ?? []));
  });
}

test('golden: unstripped messages are byte-identical', (t) => {
  for (const [name, msg, paths] of cases) {
    if (paths) continue;
    t.is(encodeBody(msg).toString('hex'), golden[name]![0]!.hex, name);
  }
});

test('elements round-trip through the reply decoder', (t) => {
  const key = concatKey(protoBytes('tcp'), portBytes(8080));
  const data = concatKey(ipToBytes(parseIP('10.77.0.5')), portBytes(80));
  const keyEnd = concatKey(ipToBytes(parseIP('10.77.0.255')), ipToBytes(parseIP('10.77.0.5')));
  const m = addElements(T, 's', [{ set: 's', key, data, comment: ownerTag('net', 'cid', 'eth0') }, { set: 's', key, keyEnd }], false);
  const [a, b] = decodeElements(encodeBody(m));
  t.deepEqual(a, { key, data, flags: 0, comment: 'net=net id=cid if=eth0' });
  t.deepEqual(b, { key, keyEnd, flags: 0 });
});

test('rules round-trip: expression names and fingerprint comment', (t) => {
  const r = { chain: 'c', exprs: [...fibTypeLocal('daddr'), ...jump('x')] };
  const info = decodeRule(encodeBody(addRule(T, { ...r, comment: ruleFingerprint(r) })));
  t.deepEqual(info.exprNames, ['fib', 'cmp', 'immediate']);
  t.is(info.comment, ruleFingerprint(r));
  t.regex(info.comment!, /^cnikit:[0-9a-f]{16}$/);
  t.not(ruleFingerprint({ chain: 'c', exprs: jump('y') }), ruleFingerprint({ chain: 'c', exprs: jump('x') }));
});

test('owner tags parse back; foreign comments do not', (t) => {
  t.deepEqual(parseOwnerTag(ownerTag('appnet', 'ctr-1.a', 'eth0')), { network: 'appnet', containerId: 'ctr-1.a', ifName: 'eth0' });
  t.is(parseOwnerTag('cnikit:0011'), undefined);
  t.is(parseOwnerTag(undefined), undefined);
  t.is(parseCommentUdata(Buffer.from([1, 2, 0x41, 0, 0, 3, 0x78, 0x79, 0]), 0), 'xy');
});

test('prefix matches: unaligned prefixes get a mask, as nft does', (t) => {
  const e = addrInPrefix('saddr', parseCidr('10.16.0.0/12'));
  t.deepEqual(e.map((x) => x.type), ['payload', 'bitwise', 'cmp']);
  t.deepEqual((e[1] as { mask: Buffer }).mask, Buffer.from([0xff, 0xf0]));
  t.deepEqual((e[2] as { data: Buffer }).data, Buffer.from([10, 16]));
});

test('a ruleset becomes one ordered transaction; rules for undeclared chains are refused', (t) => {
  const msgs = rulesetMessages({
    table: T, sets: [{ name: 's', key: ['ipv4_addr'] }], chains: [{ name: 'c' }],
    rules: [{ chain: 'c', exprs: accept() }], elements: [{ set: 's', key: Buffer.from([1, 2, 3, 4]) }],
  });
  t.deepEqual(msgs.map((m) => m.msg), [NFT_MSG.NEWTABLE, NFT_MSG.NEWSET, NFT_MSG.NEWCHAIN, NFT_MSG.DELRULE, NFT_MSG.NEWRULE, NFT_MSG.NEWSETELEM]);
  t.is(msgs.at(-1)!.flags & NLM_F_EXCL, NLM_F_EXCL, 'elements are exclusive');
  t.throws(() => rulesetMessages({ table: T, sets: [], chains: [], rules: [{ chain: 'nope', exprs: accept() }], elements: [] }), { message: /nope/ });
});

test('transact: one BEGIN..END batch, ACK on every inner message, error blamed on its message', async (t) => {
  const msgs = [addTable(T), addChain(T, { name: 'a' }), addChain(T, { name: 'b' })];
  // The kernel answers every inner message; the second one fails with ENOENT.
  const fake = new FakeNetlinkSocket((m, i) => (m.type === NFNL_MSG_BATCH_BEGIN || m.type === NFNL_MSG_BATCH_END ? undefined : i === 2 ? 2 : 0));
  const nft = new Nftables(fake);
  const err = await t.throwsAsync(nft.transact(msgs)) as NftError;
  t.is(err.code, 'ENOENT');
  t.is(err.index, 1);
  t.is(err.op, 'add chain a');
  const wire = parseMessages(fake.sent[0]!);
  t.is(fake.sent.length, 1, 'one datagram');
  t.deepEqual(wire.map((m) => m.type), [NFNL_MSG_BATCH_BEGIN, msgType(NFT_MSG.NEWTABLE), msgType(NFT_MSG.NEWCHAIN), msgType(NFT_MSG.NEWCHAIN), NFNL_MSG_BATCH_END]);
  t.deepEqual(wire.map((m) => Boolean(m.flags & NLM_F_ACK)), [false, true, true, true, false]);
  t.is(wire[0]!.payload.readUInt16BE(2), 10, 'BEGIN carries res_id NFNL_SUBSYS_NFTABLES');
  t.true(wire.slice(1, 4).every((m) => (m.flags & NLM_F_CREATE) !== 0));
});

test('transact: a refused batch (error on BEGIN) throws at once', async (t) => {
  const fake = new FakeNetlinkSocket((m) => (m.type === NFNL_MSG_BATCH_BEGIN ? 85 : undefined));
  const err = await t.throwsAsync(new Nftables(fake).transact([addTable(T)], { genId: 7 })) as NftError;
  t.is(err.errno, 85);
  t.is(err.index, -1);
});

test('a userRules chain is created but never flushed; a shared element is added without NLM_F_EXCL', (t) => {
  const msgs = rulesetMessages({
    table: T, sets: [{ name: 's', key: ['ifname'] }], chains: [{ name: 'ADMIN', userRules: true }, { name: 'c' }],
    rules: [{ chain: 'c', exprs: accept() }],
    elements: [{ set: 's', key: ifnameBytes('br0'), shared: true }, { set: 's', key: ifnameBytes('br1') }],
  });
  t.deepEqual(msgs.map((m) => m.what), [
    'add table inet cnikit', 'add set s', 'add chain ADMIN', 'add chain c', 'flush chain c', `add rule to chain c (${ruleFingerprint({ chain: 'c', exprs: accept() })})`,
    `add element to s (${ifnameBytes('br0').toString('hex')})`, `add element to s (${ifnameBytes('br1').toString('hex')})`,
  ]);
  t.is(msgs.at(-2)!.flags & NLM_F_EXCL, 0, 'shared');
  t.is(msgs.at(-1)!.flags & NLM_F_EXCL, NLM_F_EXCL, 'exclusive');
});

test('a verdict map element round-trips through the reply decoder', (t) => {
  const m = addElements(T, 'm', [{ set: 'm', key: ifnameBytes('br0'), verdict: { verdict: 'jump', chain: 'CNI-ADMIN' }, comment: 'net=n' }], false);
  t.deepEqual(decodeElements(encodeBody(m)), [{ key: ifnameBytes('br0'), verdict: { code: -3, chain: 'CNI-ADMIN' }, flags: 0, comment: 'net=n' }]);
});

test('removeTableIfEmpty keeps a table whose chains hold a rule that is not ours (an admin\'s), deletes one that holds only ours', async (t) => {
  for (const [comment, deleted] of [['the admin\'s', false], [ruleFingerprint({ chain: 'c', exprs: accept() }), true]] as const) {
    const rule = encodeBody(addRule(T, { chain: 'ADMIN', exprs: accept(), comment }));
    const gen = Buffer.concat([Buffer.from([0, 0, 0, 0]), encodeAttrs([attr.u32be(1, 7)])]);
    const sent: number[] = [];
    const fake = new FakeNetlinkSocket((m) => {
      sent.push(m.type);
      if (m.type === msgType(NFT_MSG.GETGEN)) return { data: [gen], errno: 0 };
      if (m.type === msgType(NFT_MSG.GETSET)) return { data: [] };
      if (m.type === msgType(NFT_MSG.GETCHAIN)) return { data: [encodeBody(addChain(T, { name: 'ADMIN' }))] };
      if (m.type === msgType(NFT_MSG.GETRULE)) return { data: [rule] };
      return m.type === NFNL_MSG_BATCH_BEGIN || m.type === NFNL_MSG_BATCH_END ? undefined : 0;
    });
    t.is(await removeTableIfEmpty(new Nftables(fake), T), deleted, comment);
    t.is(sent.includes(msgType(NFT_MSG.DELTABLE)), deleted);
  }
});

test('a rule\'s x_tables comment match (iptables-restore\'s -m comment) is decoded as xtComment', (t) => {
  const info = Buffer.alloc(256);
  info.write('cnikit firewall: x');
  const match = exprAttr('match', [attr.str(1, 'comment'), attr.u32be(2, 0), attr.bytes(3, info)]);
  const body = Buffer.concat([nfgenmsg(2), encodeAttrs([attr.str(1, 'filter'), attr.str(2, 'FORWARD'), attr.nested(4, [match, encodeExpr(accept()[0]!)])])]);
  const r = decodeRule(body);
  t.deepEqual(r.exprNames, ['match', 'immediate']);
  t.is(r.xtComment, 'cnikit firewall: x');
  t.is(r.comment, undefined);
});

/**
 * owned.ts against a fake nf_tables (a few sets of elements behind a FakeNetlinkSocket): DEL by
 * point queries or by a scan deletes exactly the owner's elements, once each, and looks again
 * once when something else deleted one meanwhile; CHECK tells missing, foreign and misdirected
 * elements apart; GC keeps valid attachments and everything not of its network. No root needed;
 * the real kernel's side is in netns-tests (portmap, ipmasq).
 */
import test from 'ava';
import { attrStr, NLM_F_DUMP, type NlMessage, parseAttrs } from '../netlink/message.ts';
import { FakeNetlinkSocket, type FakeAnswer } from '../netlink/fake-socket.ts';
import { NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END, NFTA_SET_ELEM_LIST, NFT_MSG, msgType } from './consts.ts';
import { Nftables } from './handle.ts';
import { type ElementSpec, type TableRef, addElements, decodeElements, encodeBody } from './objects.ts';
import { checkOwned, dedupeElements, deleteOwned, elementKey, gcOwned, ownerTag, sameKey } from './owned.ts';

const T: TableRef = { family: 'inet', name: 'cnikit' };
const A = ownerTag('n', 'ctr-a', 'eth0');
const B = ownerTag('n', 'ctr-b', 'eth0');
const b = (h: string) => Buffer.from(h, 'hex');

/** Sets of elements answering point queries (an interval answers for every key inside it), dumps and deletes. */
class FakeTables {
  readonly sets = new Map<string, ElementSpec[]>();
  readonly log: string[] = [];
  /** Called before a delete is applied; return an errno to fail it instead. */
  beforeDelete: ((set: string) => number | undefined) | undefined;

  add(set: string, key: string, comment: string | undefined, keyEnd?: string, data?: string): void {
    const e: ElementSpec = { set, key: b(key) };
    if (keyEnd) e.keyEnd = b(keyEnd);
    if (data) e.data = b(data);
    if (comment !== undefined) e.comment = comment;
    this.sets.set(set, [...(this.sets.get(set) ?? []), e]);
  }

  has(set: string, key: string): boolean {
    return (this.sets.get(set) ?? []).some((e) => e.key.equals(b(key)));
  }

  private find(set: string, key: Buffer): ElementSpec | undefined {
    return (this.sets.get(set) ?? []).find((e) => (e.keyEnd ? Buffer.compare(e.key, key) <= 0 && Buffer.compare(key, e.keyEnd) <= 0 : e.key.equals(key)));
  }

  private reply(set: string, elems: ElementSpec[]): Buffer {
    return encodeBody(addElements(T, set, elems, false));
  }

  answer = (m: NlMessage): FakeAnswer => {
    if (m.type === NFNL_MSG_BATCH_BEGIN || m.type === NFNL_MSG_BATCH_END) return undefined;
    const set = attrStr(parseAttrs(m.payload, 4).get(NFTA_SET_ELEM_LIST.SET)) ?? '';
    const asked = decodeElements(m.payload);
    if (m.type === msgType(NFT_MSG.GETSETELEM) && (m.flags & NLM_F_DUMP) === NLM_F_DUMP) {
      this.log.push(`dump ${set}`);
      return { data: (this.sets.get(set) ?? []).map((e) => this.reply(set, [e])), errno: 0 };
    }
    if (m.type === msgType(NFT_MSG.GETSETELEM)) {
      this.log.push(`get ${set} ${asked[0]!.key.toString('hex')}`);
      const e = this.find(set, asked[0]!.key);
      return e ? { data: [this.reply(set, [e])], errno: 0 } : 2;
    }
    if (m.type === msgType(NFT_MSG.DELSETELEM)) {
      for (const q of asked) {
        this.log.push(`del ${set} ${q.key.toString('hex')}`);
        const list = this.sets.get(set) ?? [];
        const i = list.findIndex((e) => e.key.equals(q.key));
        const errno = this.beforeDelete?.(set) ?? (i < 0 ? 2 : undefined);
        if (errno) return errno;
        list.splice(i, 1);
      }
      return 0;
    }
    return 0;
  };

  nft(): Nftables {
    return new Nftables(new FakeNetlinkSocket(this.answer));
  }
}

test('elementKey, dedupe and the exact-key check', (t) => {
  const e = { set: 's', key: b('01'), keyEnd: b('02') };
  t.is(elementKey(e), 's/01/02');
  t.is(elementKey({ set: 's', key: b('01') }), 's/01/');
  t.deepEqual(dedupeElements([e, { ...e }, { set: 't', key: b('01'), keyEnd: b('02') }]).map(elementKey), ['s/01/02', 't/01/02']);
  t.true(sameKey({ key: b('01'), keyEnd: b('02') }, e));
  t.false(sameKey({ key: b('01'), keyEnd: b('03') }, e), 'another range that contains the key is not this element');
  t.false(sameKey({ key: b('01') }, e));
  t.true(sameKey({ key: b('01'), keyEnd: b('09') }, { key: b('01') }), 'no range asked: the key decides');
});

test('deleteOwned by point queries: the owner\'s elements only, each once, as the kernel holds them', async (t) => {
  const k = new FakeTables();
  k.add('map', '0050', A, undefined, 'aa');
  k.add('map', '0051', B);
  k.add('range', '10', A, '1f');
  const wanted = [
    { set: 'map', key: b('0050') }, { set: 'map', key: b('0051') }, // B's: left alone
    { set: 'range', key: b('12') }, { set: 'range', key: b('15') }, // both inside A's range: deleted once, by its real key
    { set: 'map', key: b('0050') }, // asked twice
  ];
  t.is(await deleteOwned(k.nft(), T, ['map', 'range'], A, wanted), 2);
  t.false(k.has('map', '0050'));
  t.true(k.has('map', '0051'));
  t.false(k.has('range', '10'));
  t.deepEqual(k.log.filter((l) => l.startsWith('del')), ['del map 0050', 'del range 10']);
  t.false(k.log.some((l) => l.startsWith('dump')), 'no dump when the candidates are known');
  t.is(await deleteOwned(k.nft(), T, ['map', 'range'], A, wanted), 0, 'idempotent');
});

test('deleteOwned without candidates scans the sets for the tag', async (t) => {
  const k = new FakeTables();
  k.add('map', '0050', A);
  k.add('map', '0051', B);
  k.add('range', '10', A, '1f');
  t.is(await deleteOwned(k.nft(), T, ['map', 'range'], A), 2);
  t.deepEqual(k.log.filter((l) => l.startsWith('dump')), ['dump map', 'dump range']);
  t.true(k.has('map', '0051'));
});

test('deleteOwned looks again once when an element vanished between lookup and delete; a second ENOENT is an error', async (t) => {
  const k = new FakeTables();
  k.add('map', '0050', A);
  k.add('map', '0052', A);
  let races = 1;
  k.beforeDelete = (set) => {
    if (races-- <= 0) return undefined;
    // Someone else deletes 0050 first: the whole batch fails with ENOENT.
    k.sets.set(set, (k.sets.get(set) ?? []).filter((x) => !x.key.equals(b('0050'))));
    return 2;
  };
  const wanted = [{ set: 'map', key: b('0050') }, { set: 'map', key: b('0052') }];
  t.is(await deleteOwned(k.nft(), T, ['map'], A, wanted), 1, 'the second round deletes what is left');
  t.deepEqual(k.sets.get('map'), []);

  k.add('map', '0053', A);
  k.beforeDelete = () => 2;
  const err = await t.throwsAsync(deleteOwned(k.nft(), T, ['map'], A, [{ set: 'map', key: b('0053') }]));
  t.is((err as { code?: string }).code, 'ENOENT');
});

test('checkOwned: missing, held by someone else, pointing elsewhere, or fine', async (t) => {
  const k = new FakeTables();
  k.add('map', '0050', A, undefined, 'aa');
  k.add('map', '0051', B, undefined, 'aa');
  k.add('map', '0052', A, undefined, 'bb');
  k.add('range', '10', A, '1f');
  const want: ElementSpec[] = [
    { set: 'map', key: b('0050'), data: b('aa') },
    { set: 'map', key: b('0051'), data: b('aa') },
    { set: 'map', key: b('0052'), data: b('aa') },
    { set: 'map', key: b('0053') },
    { set: 'range', key: b('12'), keyEnd: b('1f') }, // inside A's range, but not that range
    { set: 'range', key: b('10'), keyEnd: b('1f') },
  ];
  const problems = await checkOwned(k.nft(), T, want, A);
  t.deepEqual(problems.map((p) => [p.element.key.toString('hex'), p.problem, 'owner' in p ? p.owner : undefined]), [
    ['0051', 'foreign', B],
    ['0052', 'data', undefined],
    ['0053', 'missing', undefined],
    ['12', 'missing', undefined],
  ]);
});

test('gcOwned keeps valid attachments, other networks and untagged elements', async (t) => {
  const k = new FakeTables();
  k.add('map', '01', ownerTag('n', 'keep', 'eth0'));
  k.add('map', '02', ownerTag('n', 'keep', 'eth1')); // same container, another interface: stale
  k.add('map', '03', ownerTag('n', 'gone', 'eth0'));
  k.add('map', '04', ownerTag('other', 'gone', 'eth0'));
  k.add('map', '05', undefined);
  k.add('map', '06', 'cnikit:not-an-owner-tag');
  t.is(await gcOwned(k.nft(), T, ['map'], 'n', [{ containerID: 'keep', ifname: 'eth0' }]), 2);
  t.deepEqual(k.sets.get('map')!.map((e) => e.key.toString('hex')), ['01', '04', '05', '06']);
});

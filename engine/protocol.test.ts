// The launcher protocol's pure parts: names, request parsing (what launcher.c sends), frames.
import test from 'ava';
import { MAGIC, RequestError, encodeCall, engineId, engineSocketName, frame, parseReply, parseRequest, requestLength } from './protocol.ts';

test('the engine id is FNV-1a 64 of the bundle directory, as launcher.c computes it', (t) => {
  t.is(engineId(''), 'cbf29ce484222325');
  t.is(engineId('a'), 'af63dc4c8601ec8c');
  t.is(engineSocketName('/x/dist/bin/.lib'), `\0cnikit/engine/${engineId('/x/dist/bin/.lib')}`);
  t.is(engineSocketName('/x/dist/bin/.lib', '/starting'), `\0cnikit/engine/${engineId('/x/dist/bin/.lib')}/starting`);
});

test('a call round-trips through encodeCall and parseRequest; partial input is not yet a request', (t) => {
  const call = { self: '/opt/cni/bin/bridge', type: 'bridge', env: { CNI_COMMAND: 'ADD', EMPTY: '', EQ: 'a=b' }, stdin: Buffer.from('{"cniVersion":"1.0.0"}') };
  const bytes = encodeCall(call);
  t.deepEqual({ ...parseRequest(bytes) }, { kind: 'C', version: 2, ...call, env: { ...call.env } });
  t.like(parseRequest(encodeCall(call, 1)), { kind: 'C', version: 1 }, 'the launchers of an earlier build');
  for (const n of [0, 3, 6, 10, bytes.length - 1]) t.is(parseRequest(bytes.subarray(0, n)), undefined, `${n} bytes`);
  t.deepEqual(parseRequest(Buffer.concat([MAGIC, Buffer.from('S')])), { kind: 'S' });
});

test('requestLength tells how far to read: the next length field, then the whole request', (t) => {
  const bytes = encodeCall({ self: 'ab', type: 'bridge', env: {}, stdin: Buffer.from('{}') });
  t.deepEqual(requestLength(bytes.subarray(0, 3)), { need: 6 });
  t.deepEqual(requestLength(bytes.subarray(0, 6)), { need: 10 });
  t.deepEqual(requestLength(bytes.subarray(0, 10)), { need: 16 }, 'past self, to the length of type');
  t.deepEqual(requestLength(bytes.subarray(0, bytes.length - 2)), { total: bytes.length });
  t.deepEqual(requestLength(Buffer.concat([MAGIC, Buffer.from('S')])), { total: 6 });
  t.throws(() => requestLength(Buffer.from('CNKE\x03C')), { instanceOf: RequestError }, 'an unknown version');
});

test('bad requests throw RequestError; a declared length over the limit is "oversized" before the bytes come', (t) => {
  const bad = (b: Buffer) => t.throws(() => parseRequest(b), { instanceOf: RequestError });
  bad(Buffer.from('GET / HTTP/1.0'));
  bad(Buffer.concat([MAGIC, Buffer.from('Z')]));
  bad(Buffer.concat([encodeCall({ self: '', type: 'bridge', env: {}, stdin: Buffer.alloc(0) }), Buffer.from('x')]));
  bad(encodeCall({ self: '', type: '../bridge', env: {}, stdin: Buffer.alloc(0) }));
  bad(encodeCall({ self: '', type: 'bridge', env: { '': 'x' }, stdin: Buffer.alloc(0) }));
  const head = encodeCall({ self: '', type: 'bridge', env: {}, stdin: Buffer.alloc(0) });
  head.writeUInt32LE(9 << 20, head.length - 4);
  const err = t.throws(() => parseRequest(head), { instanceOf: RequestError });
  t.true(err.oversized);
});

test('reply frames decode in order; a reply cut short has no exit code', (t) => {
  const all = Buffer.concat([frame('a', 'ack\n'), frame('e', 'log\n'), frame('o', '{"a":'), frame('o', '1}\n'), frame('x', Buffer.from([3]))]);
  t.deepEqual(parseReply(all), { ack: 'ack\n', stdout: '{"a":1}\n', stderr: 'log\n', code: 3 });
  t.deepEqual(parseReply(all.subarray(0, all.length - 3)), { ack: 'ack\n', stdout: '{"a":1}\n', stderr: 'log\n', code: undefined });
});

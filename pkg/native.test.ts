/**
 * The errno helpers, and the native binding's argument checks, which refuse before anything is
 * opened (no root needed, nothing touched): sysctl keys that would leave /proc/sys, and calls of
 * the wrong shape. The addon's work itself is exercised by netns-tests.
 */
import test from 'ava';
import { CniCode, CniError, wrap } from './cni/errors.ts';
import { hasCode, native } from './native.ts';

test('hasCode finds an errno code anywhere in the cause chain, not in message text', (t) => {
  const busy = Object.assign(new Error('spawnSync /opt/cni/bin/bridge ETXTBSY'), { code: 'ETXTBSY' });
  t.true(hasCode(busy, 'ETXTBSY'));
  t.true(hasCode(wrap(new CniError(CniCode.Internal, 'failed to run plugin', undefined, { cause: busy }), 'ADD'), 'ETXTBSY'));
  t.true(hasCode(busy, 'EPERM', 'ETXTBSY'));
  t.false(hasCode(busy, 'EPERM'));
  t.false(hasCode(new CniError(CniCode.Internal, 'ETXTBSY'), 'ETXTBSY'));
  t.false(hasCode(undefined, 'ETXTBSY'));
  t.false(hasCode({ code: 'ETXTBSY' }, 'ETXTBSY'), 'only errors');
});

for (const key of ['/etc/passwd', '../../etc/passwd', 'net/../../etc/passwd', 'net/ipv4/..', 'net//ipv4', './net/ipv4/ip_forward', '', 'net/ipv4/\0x']) {
  test(`sysctl key ${JSON.stringify(key)} is refused before anything is opened`, (t) => {
    t.throws(() => native().sysctlRead(null, key), { instanceOf: TypeError, message: /^Usage: sysctlRead/ });
    t.throws(() => native().sysctlWrite(null, key, '1'), { instanceOf: TypeError, message: /^Usage: sysctlWrite/ });
  });
}

test('a sysctl key may hold dots inside a name (an interface called a..b)', (t) => {
  // A read of a file that does not exist: refused by the kernel's ENOENT, not by the key check.
  const err = t.throws(() => native().sysctlRead(null, 'net/ipv4/conf/no..such/forwarding')) as { code?: string };
  t.is(err.code, 'ENOENT');
});

test('calls of the wrong shape are usage errors', (t) => {
  const n = native() as unknown as Record<string, (...a: unknown[]) => unknown>;
  t.throws(() => n.flock!(3), { instanceOf: TypeError, message: /^Usage: flock\(fd: number, exclusive: boolean\)/ });
  t.throws(() => n.flockWait!('3', true), { instanceOf: TypeError, message: /^Usage: flockWait/ });
  t.throws(() => n.nlWatch!(3), { instanceOf: TypeError, message: /^Usage: nlWatch/ });
  t.throws(() => n.nlUnwatch!(), { instanceOf: TypeError, message: /^Usage: nlUnwatch/ });
  t.is(n.funlock, undefined, 'funlock is gone: closing the fd releases a lock');
});

test('randomFill fills a buffer of any length with fresh random bytes', (t) => {
  const a = Buffer.alloc(4099);
  const b = Buffer.alloc(4099);
  native().randomFill(a);
  native().randomFill(b);
  t.false(a.equals(b));
  // 4099 bytes all zero or one value repeated: the buffer was not filled.
  t.true(new Set(a).size > 200);
  native().randomFill(Buffer.alloc(0));
  t.throws(() => (native() as unknown as { randomFill: (x: unknown) => void }).randomFill('x'), { instanceOf: TypeError, message: /^Usage: randomFill/ });
});

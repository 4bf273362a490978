/**
 * The sysctl key rules (docs/cni-notes.md §10.2) and the allowlist semantics, without root: which
 * file a key names, what is refused and with which message, RE2 patterns as JavaScript sees them,
 * allowlist files read from a temp dir, duplicate keys found in the raw text.
 */
import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CniError } from '../../pkg/cni/errors.ts';
import { duplicateSysctlKey } from './json-keys.ts';
import { checkAllowed, compileRe2, parseAllowlist, readAllowlist, sameSysctlValue, sysctlPath } from './sysctl.ts';

const paths: [string, string, string][] = [
  ['net.ipv4.ip_forward', 'eth0', 'net/ipv4/ip_forward'],
  ['net.ipv4.conf.IFNAME.arp_filter', 'eth0', 'net/ipv4/conf/eth0/arp_filter'],
  ['net.ipv4.conf.IFNAME.arp_filter', 'eth0.100', 'net/ipv4/conf/eth0.100/arp_filter'],
  ['net/ipv4/conf/eth0/arp_ignore', 'eth0', 'net/ipv4/conf/eth0/arp_ignore'],
  ['net/ipv4/conf/eth0.100/rp_filter', 'eth0', 'net/ipv4/conf/eth0.100/rp_filter'],
  ['net/ipv4/conf/IFNAME/rp_filter', 'net1', 'net/ipv4/conf/net1/rp_filter'],
  ['net.ipv6.conf.IFNAME.IFNAME', 'eth1', 'net/ipv6/conf/eth1/IFNAME'],
  ['net//ipv4/./ip_forward', 'eth0', 'net/ipv4/ip_forward'],
  ['/net/core/somaxconn', 'eth0', 'net/core/somaxconn'],
  ['net/ipv4/../ipv6/conf/all/forwarding', 'eth0', 'net/ipv6/conf/all/forwarding'],
];
for (const [key, ifName, path] of paths) {
  test(`sysctlPath ${JSON.stringify(key)} with ifname ${ifName} is ${path}`, (t) => {
    t.is(sysctlPath(key, ifName), path);
  });
}

const refused: [string, string][] = [
  ['kernel.hostname', 'invalid net sysctl key: "kernel/hostname"'],
  ['vm/swappiness', 'invalid net sysctl key: "vm/swappiness"'],
  ['net', 'invalid net sysctl key: "net"'],
  ['net.', 'invalid net sysctl key: "net/"'],
  ['net/../kernel/hostname', 'invalid net sysctl key: "net/../kernel/hostname"'],
  ['netfilter.x', 'invalid net sysctl key: "netfilter/x"'],
];
for (const [key, msg] of refused) {
  test(`sysctlPath refuses ${JSON.stringify(key)}: code 7, the reference's message, the key named`, (t) => {
    const err = t.throws(() => sysctlPath(key, 'eth0'), { instanceOf: CniError })!;
    t.is(err.code, 7);
    t.is(err.message, msg);
    t.true(err.details!.includes(`sysctl[${JSON.stringify(key)}]`));
  });
}

test('an ifname of ".." cannot climb out of net/ (skel refuses it anyway)', (t) => {
  t.throws(() => sysctlPath('net/IFNAME/../../kernel/x', '..'), { instanceOf: CniError });
});

test('sameSysctlValue: tabs and spaces between fields and a trailing newline do not matter, the fields do', (t) => {
  t.true(sameSysctlValue('4096\t131072\t6291456', '4096 131072 6291456'));
  t.true(sameSysctlValue('1\n', '1'));
  t.false(sameSysctlValue('1', '0'));
  t.false(sameSysctlValue('4096 131072', '4096 131072 6291456'));
});

const re2: [string, string, boolean][] = [
  ['^net\\.ipv4\\.conf\\.other\\.[a-z_]*$', 'net.ipv4.conf.other.arp_filter', true],
  ['^net\\.ipv4\\.conf\\.other\\.[a-z_]*$', 'net.ipv4.conf.other2.arp_filter', false],
  ['ipv4', 'net.ipv4.ip_forward', true], // unanchored, as regexp.MatchString
  ['(?i)^NET\\.CORE\\.SOMAXCONN$', 'net.core.somaxconn', true],
  ['\\Anet\\.core\\.somaxconn\\z', 'net.core.somaxconn', true],
  ['\\Anet\\.core\\z', 'net.core.somaxconn', false],
  ['^\\Qnet.core.\\E[a-z]+$', 'net.core.somaxconn', true],
  ['^\\Qnet.core.\\E[a-z]+$', 'netxcore.somaxconn', false],
  ['^net\\.ipv4\\.conf\\.[[:alnum:]]+\\.rp_filter$', 'net.ipv4.conf.eth0.rp_filter', true],
  ['^net\\.ipv4\\.conf\\.[[:alpha:]]+\\.rp_filter$', 'net.ipv4.conf.eth0.rp_filter', false],
  ['^(?P<top>net)\\.', 'net.ipv4.ip_forward', true],
  ['^net\\.[]a]', 'net.]', true], // `]` first in a class is a literal in RE2
];
for (const [pattern, key, match] of re2) {
  test(`RE2 ${pattern} ${match ? 'matches' : 'does not match'} ${key}`, (t) => {
    t.is(compileRe2(pattern).test(key), match);
  });
}

for (const bad of ['(net', 'net[', '^(?=net)', 'net\\1', '(?U)net', 'net\\', '[[:nope:]]']) {
  test(`RE2 refuses ${JSON.stringify(bad)}`, (t) => {
    t.throws(() => compileRe2(bad));
  });
}

test('an allowlist: lines trimmed, empty ones skipped, the first that matches allows; none refuses with the reference\'s message', (t) => {
  const l = parseAllowlist('  ^net\\.ipv4\\.conf\\.all\\.[a-z_]*$ \n\n^net\\.core\\.x$\n', '/etc/cni/tuning/allowlist.conf');
  t.deepEqual(l.patterns, ['^net\\.ipv4\\.conf\\.all\\.[a-z_]*$', '^net\\.core\\.x$']);
  t.notThrows(() => checkAllowed('net.ipv4.conf.all.arp_filter', [l]));
  t.notThrows(() => checkAllowed('net.core.x', [l]));
  const err = t.throws(() => checkAllowed('net.core.somaxconn', [l]), { instanceOf: CniError })!;
  t.is(err.code, 7);
  t.is(err.message, 'Sysctl net.core.somaxconn is not allowed. Only the following sysctls are allowed: [^net\\.ipv4\\.conf\\.all\\.[a-z_]*$ ^net\\.core\\.x$]');
  t.regex(err.details!, /allowlist \/etc\/cni\/tuning\/allowlist\.conf/);
});

test('the allowlist matches the key as written, before IFNAME and dots are resolved', (t) => {
  const l = parseAllowlist('^net\\.ipv4\\.conf\\.IFNAME\\.', 'f');
  t.notThrows(() => checkAllowed('net.ipv4.conf.IFNAME.arp_filter', [l]));
  t.throws(() => checkAllowed('net/ipv4/conf/IFNAME/arp_filter', [l]));
});

test('every allowlist must allow a key: a second file can only narrow the first', (t) => {
  const wide = parseAllowlist('^net\\.', 'wide');
  const narrow = parseAllowlist('^net\\.core\\.', 'narrow');
  t.notThrows(() => checkAllowed('net.core.somaxconn', [wide, narrow]));
  t.throws(() => checkAllowed('net.ipv4.ip_forward', [wide, narrow]), { message: /\[\^net\\\.core\\\.\]/ });
  t.notThrows(() => checkAllowed('anything', []), 'no allowlist file: everything allowed');
});

test('a bad regexp in an allowlist is code 7 naming the file and line', (t) => {
  const err = t.throws(() => parseAllowlist('^net\\.\n(net\n', '/x/allow.conf'), { instanceOf: CniError })!;
  t.is(err.code, 7);
  t.regex(err.details!, /^sysctl allowlist \/x\/allow\.conf line 2: error parsing regexp "\(net"/);
});

test('readAllowlist: a missing file is undefined (everything allowed), a directory is an I/O error (5)', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cnikit-allow-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  t.is(readAllowlist(join(dir, 'none.conf')), undefined);
  writeFileSync(join(dir, 'a.conf'), '^net\\.core\\.\n');
  t.deepEqual(readAllowlist(join(dir, 'a.conf'))?.patterns, ['^net\\.core\\.']);
  const err = t.throws(() => readAllowlist(dir), { instanceOf: CniError })!;
  t.is(err.code, 5);
});

test('duplicateSysctlKey: a key twice in sysctl, in any case of "sysctl", escapes decoded; other objects do not count', (t) => {
  t.is(duplicateSysctlKey('{"sysctl":{"net.a":"1","net.b":"2","net.a":"3"}}'), 'net.a');
  t.is(duplicateSysctlKey('{"Sysctl":{"net.a":"1","net.\\u0061":"3"}}'), 'net.a');
  t.is(duplicateSysctlKey('{"sysctl":{"net.a":"1"},"SYSCTL":{"net.a":"2"}}'), 'net.a');
  t.is(duplicateSysctlKey('{"sysctl":{"net.a":"1","net.A":"1"}}'), undefined, 'map keys differ by case: two keys');
  t.is(duplicateSysctlKey('{"x":{"net.a":"1","net.a":"2"},"args":{"cni":{"sysctl":{"k":"1","k":"2"}}},"sysctl":{"net.a":"}\\"{"}}'), undefined);
  t.is(duplicateSysctlKey(' { "mtu" : 1400 , "list" : [ 1, {"a": [true, null]} ], "sysctl" : { "net.a" : "1" , "net.a" : "2" } } '), 'net.a');
  t.is(duplicateSysctlKey('[1,2]'), undefined);
});

/**
 * Attachment identity checks (docs/cni-notes.md §1.2), called directly: the codes and messages the
 * reference's ValidateContainerID / ValidateInterfaceName / ValidateNetworkName give.
 */
import test, { type ExecutionContext } from 'ava';
import { CniCode, CniError } from './errors.ts';
import { isValidId, validateContainerId, validateIfName, validateNetworkName } from './validate.ts';

/** A title-safe rendering: every character outside printable ASCII as \\uXXXX. */
const show = (s: string) => `"${[...s].map((c) => /[ -~]/.test(c) ? c : `\\u${c.codePointAt(0)!.toString(16).padStart(4, '0')}`).join('')}"`;

const rejects = (t: ExecutionContext, fn: () => void, code: number, msg: string) => {
  const err = t.throws(fn, { instanceOf: CniError });
  t.is(err?.code as number | undefined, code);
  t.is(err?.message, msg);
};

for (const name of ['eth0', 'e', 'net1', 'eth0.100', 'eth-0_a', 'eth0123456789ab', 'ééééééé', 'vethé', 'eth\ufeff0']) {
  test(`ifname ${show(name)} is accepted`, (t) => t.notThrows(() => validateIfName(name)));
}

const badIfNames: [string, string][] = [
  ['', 'interface name is empty'],
  ['eth0123456789abc', 'interface name is too long'],
  ['éééééééé', 'interface name is too long'],
  ['.', 'interface name is . or ..'],
  ['..', 'interface name is . or ..'],
  ['/', 'interface name contains / or : or whitespace characters'],
  ['a/b', 'interface name contains / or : or whitespace characters'],
  [':', 'interface name contains / or : or whitespace characters'],
  ['eth0:0', 'interface name contains / or : or whitespace characters'],
  ...[' ', '\t', '\n', '\v', '\f', '\r', '\u0085', '\u00a0', '\u1680', '\u2000', '\u200a', '\u2028', '\u2029', '\u202f', '\u205f', '\u3000']
    .map((c): [string, string] => [`eth${c}0`, 'interface name contains / or : or whitespace characters']),
];
for (const [name, msg] of badIfNames) {
  test(`ifname ${show(name)}: ${msg} (code 4)`, rejects, () => validateIfName(name), CniCode.InvalidEnv, msg);
}

for (const id of ['ctr1', '0', 'a.b-c_d', 'cnitool-0a1b2c3d4e5f60718293', 'A'.repeat(200)]) {
  test(`container id ${JSON.stringify(id.slice(0, 30))} is accepted`, (t) => t.notThrows(() => validateContainerId(id)));
}
for (const id of ['-ctr', '_ctr', '.ctr', 'ctr/1', 'ctr 1', 'ctr:1', 'ctr\n', 'ctré', 'ctr;rm']) {
  test(`container id ${show(id)} is invalid (code 4)`, rejects, () => validateContainerId(id), CniCode.InvalidEnv, 'invalid characters in containerID');
}
test('an empty container id is code 3', rejects, () => validateContainerId(''), CniCode.UnknownContainer, 'missing containerID');

for (const name of ['appnet', 'podman', 'net.1', 'a-b_c', '1net']) {
  test(`network name ${name} is accepted`, (t) => t.notThrows(() => validateNetworkName(name)));
}
for (const [name, msg] of [[undefined, 'missing network name'], ['', 'missing network name'], [42, 'missing network name'], ['app net', 'invalid network name'], ['-net', 'invalid network name'], ['net/1', 'invalid network name']] as const) {
  test(`network name ${JSON.stringify(name)}: ${msg} (code 7)`, rejects, () => validateNetworkName(name), CniCode.InvalidConfig, msg);
}

test('isValidId: a letter or digit first, then letters, digits, "_", "." and "-"', (t) => {
  for (const s of ['a', '0', 'ctr-1', 'web_2.x', '3f2a9c', 'A.b-C_d']) t.true(isValidId(s), s);
  for (const s of ['', '-a', '.a', '_a', 'a b', 'a/b', 'a:b', 'é', 'a\n']) t.false(isValidId(s), s);
});

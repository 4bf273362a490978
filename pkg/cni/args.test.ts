/**
 * CNI_ARGS as libcni's LoadArgs reads it (docs/cni-notes.md §1.8): every `;` piece is exactly one
 * KEY=VALUE, keys match case-sensitively, unknown keys fail unless IgnoreUnknown is 1/true.
 */
import test, { type ExecutionContext } from 'ava';
import { KNOWN_CNI_ARGS, parseCniArgs } from './args.ts';
import { CniCode, CniError } from './errors.ts';

const parses = (t: ExecutionContext, raw: string, known: readonly string[], expected: Record<string, string>) => {
  t.deepEqual(Object.fromEntries(parseCniArgs(raw, known)), expected);
};
const rejects = (t: ExecutionContext, raw: string, known: readonly string[], msg: string | RegExp) => {
  const err = t.throws(() => parseCniArgs(raw, known), { instanceOf: CniError });
  t.is(err?.code as number | undefined, CniCode.InvalidEnv);
  if (typeof msg === 'string') t.is(err?.message, msg);
  else t.regex(err!.message, msg);
};

test('empty CNI_ARGS is an empty map', parses, '', [], {});
test('known keys', parses, 'IP=10.0.0.5;MAC=c2:11:22:33:44:55', ['IP', 'MAC'], { IP: '10.0.0.5', MAC: 'c2:11:22:33:44:55' });
test('a value may be empty', parses, 'IP=', ['IP'], { IP: '' });
test('the last of a repeated key wins', parses, 'IP=10.0.0.5;IP=10.0.0.6', ['IP'], { IP: '10.0.0.6' });
test('what Kubernetes sends', parses,
  'IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc123;K8S_POD_UID=0f1e',
  KNOWN_CNI_ARGS,
  { IgnoreUnknown: '1', K8S_POD_NAMESPACE: 'ns', K8S_POD_NAME: 'web-0', K8S_POD_INFRA_CONTAINER_ID: 'abc123', K8S_POD_UID: '0f1e' });
for (const v of ['1', 'true', 'TRUE', 'True']) {
  test(`IgnoreUnknown=${v} lets unknown keys through`, parses, `IgnoreUnknown=${v};FOO=bar`, ['IP'], { IgnoreUnknown: v, FOO: 'bar' });
}

test('an unknown key fails', rejects, 'IP=10.0.0.5;FOO=bar', ['IP'], 'ARGS: unknown args [FOO]');
test('unknown keys are listed in order', rejects, 'FOO=bar;BAZ=1', ['IP'], 'ARGS: unknown args [FOO BAZ]');
test('keys are case-sensitive', rejects, 'ip=10.0.0.5', ['IP'], 'ARGS: unknown args [ip]');
test('ignoreunknown (wrong case) is itself unknown', rejects, 'ignoreunknown=1;FOO=bar', ['IP'], 'ARGS: unknown args [ignoreunknown FOO]');
for (const v of ['0', 'false', 'FALSE']) {
  test(`IgnoreUnknown=${v} still rejects unknown keys`, rejects, `IgnoreUnknown=${v};FOO=bar`, ['IP'], 'ARGS: unknown args [FOO]');
}
test('IgnoreUnknown with a non-bool value fails', rejects, 'IgnoreUnknown=yes', [], /^ARGS: IgnoreUnknown must be 1, true, 0 or false/);
test('a piece without = fails', rejects, 'IP=10.0.0.5;K8S_POD_NAME', KNOWN_CNI_ARGS, 'ARGS: invalid pair "K8S_POD_NAME"');
test('a piece with two = fails', rejects, 'IP=10.0.0.5=x', ['IP'], 'ARGS: invalid pair "IP=10.0.0.5=x"');
test('a trailing ; is an empty piece and fails', rejects, 'IP=10.0.0.5;', ['IP'], 'ARGS: invalid pair ""');
test('an empty piece in the middle fails', rejects, 'IP=10.0.0.5;;MAC=x', ['IP', 'MAC'], 'ARGS: invalid pair ""');
test('an empty key is unknown', rejects, '=x', ['IP'], /^ARGS: unknown args/);
test('an invalid pair wins over unknown keys before it', rejects, 'FOO=bar;oops', ['IP'], 'ARGS: invalid pair "oops"');

/**
 * The zod-issue formatter every config error goes through (plugin configs and the runtime's
 * conflists): one line per problem naming the field, type errors spelled out, the schema's own
 * messages kept.
 */
import test from 'ava';
import * as z from 'zod/mini';
import { CniError } from './errors.ts';
import { formatIssues, netConfBase, parseWith } from './schema.ts';

const schema = z.object({
  ...netConfBase,
  ipam: z.optional(z.object({ ranges: z.array(z.array(z.object({ subnet: z.string() }))) })),
  port: z.optional(z.number()),
  mode: z.optional(z.string({ error: 'expected a mode name' })),
});

const details = (data: unknown) => {
  try {
    parseWith(schema, data);
  } catch (err) {
    return (err as CniError).details;
  }
  return 'parsed';
};

test('a wrong type names the field, what was expected and what came', (t) => {
  t.is(details({ name: 'n', ipam: { ranges: [[{ subnet: 24 }]] } }), 'ipam.ranges[0][0].subnet: expected string, got number');
  t.is(details({ name: 'n', port: '53' }), 'port: expected number, got string');
  t.is(details({ name: 'n', port: null }), 'port: expected number, got null');
  t.is(details({ name: 'n', ipam: { ranges: {} } }), 'ipam.ranges: expected array, got object');
});

test('a missing field says missing', (t) => {
  t.is(details({}), 'name: missing (expected string)');
  t.is(details({ name: 'n', ipam: { ranges: [[{}]] } }), 'ipam.ranges[0][0].subnet: missing (expected string)');
});

test('the schema\'s own message is kept, and every problem gets its line', (t) => {
  t.is(details({ name: 'n', mode: 5 }), 'mode: expected a mode name');
  t.is(details({ name: 5, port: 'x' }), 'name: expected string, got number; port: expected number, got string');
});

test('a root-level problem is called (config); without the input, the type is still named', (t) => {
  t.is(details(7), '(config): expected object, got number');
  t.is(formatIssues([{ path: ['a'], code: 'invalid_type', expected: 'string', message: 'Invalid input' }]), 'a: missing (expected string)');
  t.is(formatIssues([{ path: ['a'], code: 'invalid_type', expected: 'string', message: 'Invalid input: expected string, received number', input: 5 }]), 'a: expected string, got number');
});

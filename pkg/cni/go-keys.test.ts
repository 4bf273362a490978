/**
 * The Go key-matching rule (go-keys.ts), tested once here for every plugin that parses through
 * parseWith: exact before folded, folding as Go's EqualFold (Kelvin sign, long s, sigma; not
 * dotless i), last key wins, records exact, nested objects and arrays, unknown keys, and no
 * copying when nothing changes. With Go installed, the same inputs are decoded by Go's
 * encoding/json (testdata/go-decode) and must come out the same.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as z from 'zod/mini';
import { equalFold, goKeys } from './go-keys.ts';
import { parseWith } from './schema.ts';

const mapping = z.object({
  hostPort: z.optional(z.number()),
  containerPort: z.optional(z.number()),
  protocol: z.optional(z.string()),
  hostIP: z.optional(z.string()),
});

/** The mirror of testdata/go-decode's Conf struct. */
const schema = z.object({
  k: z.optional(z.number()),
  s: z.optional(z.string()),
  kind: z.optional(z.string()),
  Name: z.optional(z.string()),
  σ: z.optional(z.string()),
  runtimeConfig: z.optional(z.object({
    portMappings: z.optional(z.array(mapping)),
    aliases: z.optional(z.record(z.string(), z.array(z.string()))),
  })),
  sysctl: z.optional(z.record(z.string(), z.string())),
  twin: z.optional(z.object({ hostPort: z.optional(z.number()), HostPort: z.optional(z.number()) })),
  ipam: z.optional(z.object({ type: z.optional(z.string()), ranges: z.optional(z.array(z.array(z.object({ subnet: z.optional(z.string()) })))) })),
});

const parse = (json: string) => parseWith(schema, JSON.parse(json));

/** [what, input JSON, what Go's encoding/json makes of it]. */
const CASES: [string, string, unknown][] = [
  ['containerd\'s Go field names', '{"runtimeConfig":{"portMappings":[{"HostPort":8081,"ContainerPort":80,"Protocol":"tcp","HostIP":""}]}}',
    { runtimeConfig: { portMappings: [{ hostPort: 8081, containerPort: 80, protocol: 'tcp', hostIP: '' }] } }],
  ['any case, at every level', '{"RUNTIMECONFIG":{"portmappings":[{"hostport":1,"CONTAINERport":2}]},"IPAM":{"Type":"host-local","RANGES":[[{"SubNet":"10.0.0.0/8"}]]}}',
    { runtimeConfig: { portMappings: [{ hostPort: 1, containerPort: 2 }] }, ipam: { type: 'host-local', ranges: [[{ subnet: '10.0.0.0/8' }]] } }],
  ['two keys reaching one field: the last wins', '{"k":1,"K":2}', { k: 2 }],
  ['the same, in the other order', '{"K":2,"k":1}', { k: 1 }],
  ['an exact key goes to its own field, a folded one to the first field', '{"twin":{"HostPort":5,"HOSTPORT":6}}', { twin: { HostPort: 5, hostPort: 6 } }],
  ['a field folded from both twins\' keys takes the last', '{"twin":{"hostport":1,"HOSTPORT":2}}', { twin: { hostPort: 2 } }],
  ['an untagged field answers its Go name, and folded', '{"name":"a"}', { Name: 'a' }],
  ['the Kelvin sign folds to k', '{"\u212a":7,"\u212aIND":"x"}', { k: 7, kind: 'x' }],
  ['the long s folds to s', '{"\u017f":"long"}', { s: 'long' }],
  ['a non-ASCII field: all three sigmas match', '{"Σ":"a"}', { σ: 'a' }],
  ['final sigma', '{"ς":"b"}', { σ: 'b' }],
  ['dotless i and dotted I fold to themselves only', '{"k\u0131nd":"x","K\u0130ND":"y"}', {}],
  ['a trailing space is another key', '{"kind ":"x"," k":1}', {}],
  ['map keys stay exact (sysctl, aliases)', '{"sysctl":{"net.ipv4.conf.IF.x":"1","net.ipv4.conf.if.x":"2"},"runtimeConfig":{"Aliases":{"Net":["a"],"net":["b"]}}}',
    { sysctl: { 'net.ipv4.conf.IF.x': '1', 'net.ipv4.conf.if.x': '2' }, runtimeConfig: { aliases: { Net: ['a'], net: ['b'] } } }],
  ['unknown keys are ignored', '{"bogus":1,"k":3,"runtimeConfig":{"bandwidth":{}}}', { k: 3, runtimeConfig: {} }],
];

for (const [what, input, want] of CASES) {
  test(`Go keys: ${what}`, (t) => {
    t.deepEqual(parse(input), want);
  });
}

const GO_DIR = fileURLToPath(new URL('testdata/go-decode', import.meta.url));
const haveGo = spawnSync('go', ['version']).status === 0;
(haveGo ? test : test.skip)(`Go's encoding/json decodes every case the same${haveGo ? '' : ' (skipped: needs go, apt-get install golang-go)'}`, (t) => {
  const tmp = mkdtempSync(join(tmpdir(), 'cnikit-go-decode-'));
  t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
  const bin = join(tmp, 'go-decode');
  const build = spawnSync('go', ['build', '-o', bin, join(GO_DIR, 'main.go')], {
    env: { ...process.env, GOCACHE: join(tmp, 'cache'), GO111MODULE: 'off', GOFLAGS: '', GOPATH: join(tmp, 'gopath') }, encoding: 'utf8',
  });
  t.is(build.status, 0, build.stderr);
  const run = spawnSync(bin, [], { input: CASES.map((c) => c[1]).join('\n') + '\n', encoding: 'utf8' });
  t.is(run.status, 0, run.stderr);
  const lines = run.stdout.trim().split('\n');
  CASES.forEach(([what, input, want], i) => {
    t.deepEqual(JSON.parse(lines[i]!), want, `Go: ${what}`);
    t.deepEqual(parse(input), JSON.parse(lines[i]!), `cnikit vs Go: ${what}`);
  });
});

test('goKeys copies nothing when every key is exact, and never modifies its input', (t) => {
  const exact = JSON.parse('{"k":1,"runtimeConfig":{"portMappings":[{"hostPort":1}]},"bogus":{"HostPort":1}}');
  t.is(goKeys(schema, exact), exact);
  const mixed = JSON.parse('{"k":1,"runtimeConfig":{"portMappings":[{"hostPort":1},{"HostPort":2}]}}');
  const before = structuredClone(mixed);
  const out = goKeys(schema, mixed) as typeof mixed;
  t.deepEqual(mixed, before);
  t.deepEqual(out.runtimeConfig.portMappings, [{ hostPort: 1 }, { hostPort: 2 }]);
  t.is(out.runtimeConfig.portMappings[0], mixed.runtimeConfig.portMappings[0]);
});

test('goKeys walks wrappers, unions, intersections, record values and loose objects', (t) => {
  const s = z.looseObject({
    a: z.nullable(z.optional(z._default(z.object({ inner: z.number() }), { inner: 0 }))),
    u: z.optional(z.union([z.object({ left: z.number() }), z.object({ right: z.number() }), z.array(z.object({ item: z.number() }))])),
    i: z.optional(z.intersection(z.object({ one: z.number() }), z.object({ two: z.number() }))),
    byName: z.optional(z.record(z.string(), z.object({ port: z.number() }))),
    p: z.optional(z.pipe(z.object({ raw: z.string() }), z.transform((o) => o.raw))),
  });
  const out = goKeys(s, { A: { INNER: 1 }, U: { Left: 1, RIGHT: 2 }, I: { ONE: 1, Two: 2 }, byname: { Web: { PORT: 80 } }, P: { Raw: 'x' }, Other: { INNER: 1 } });
  t.deepEqual(out, { a: { inner: 1 }, u: { left: 1, right: 2 }, i: { one: 1, two: 2 }, byName: { Web: { port: 80 } }, p: { raw: 'x' }, Other: { INNER: 1 } });
  t.deepEqual(goKeys(s, { u: [{ ITEM: 1 }] }), { u: [{ item: 1 }] });
  t.is(parseWith(s, { P: { RAW: 'abc' } }).p, 'abc');
});

test('a "__proto__" key stays a plain key and sets no prototype', (t) => {
  const out = goKeys(schema, JSON.parse('{"K":1,"__proto__":{"polluted":true}}')) as Record<string, unknown>;
  t.is(Object.getPrototypeOf(out), Object.prototype);
  t.is((out as { polluted?: boolean }).polluted, undefined);
  t.deepEqual(Object.keys(out), ['k', '__proto__']);
});

test('equalFold is Go\'s EqualFold', (t) => {
  for (const [a, b] of [['hostPort', 'HOSTPORT'], ['k', '\u212a'], ['s', '\u017f'], ['S', '\u017f'], ['σ', 'ς'], ['Σ', 'ς'], ['ß', 'ẞ'], ['Å', '\u212b'], ['µ', 'Μ']]) {
    t.true(equalFold(a!, b!), `${a} ~ ${b}`);
  }
  for (const [a, b] of [['i', '\u0131'], ['i', '\u0130'], ['ß', 'ss'], ['a', 'b'], ['[', '{'], ['@', '`'], ['ab', 'a'], ['hostPort', 'hostPort ']]) {
    t.false(equalFold(a!, b!), `${a} !~ ${b}`);
  }
});

test('parseWith reports a bad value by the schema\'s name for the field', (t) => {
  const err = t.throws(() => parse('{"runtimeConfig":{"portMappings":[{"HostPort":"8080"}]}}'));
  t.is((err as { details?: string }).details, 'runtimeConfig.portMappings[0].hostPort: expected number, got string');
});

/**
 * The CNI protocol as a runtime sees it (docs/cni-notes.md §1.1-§1.5): runPlugin with an injected
 * environment, stdin and stdout, and a fake plugin that records what it was called with. Each
 * case checks the exit status, the JSON printed on stdout and whether a handler ran.
 */
import test, { type ExecutionContext } from 'ava';
import { CniCode, CniError } from './errors.ts';
import type { Result } from './result.ts';
import { type Attachment, type CmdArgs, type Plugin, runPlugin } from './skel.ts';

const ALL_VERSIONS = ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'];

const RESULT: Result = {
  cniVersion: '1.1.0',
  interfaces: [{ name: 'eth0', mac: '0a:58:0a:4d:00:05', sandbox: '/run/netns/ctr1', mtu: 1400 }],
  ips: [{ address: '10.77.0.5/24', gateway: '10.77.0.1', interface: 0 }],
  routes: [{ dst: '0.0.0.0/0', gw: '10.77.0.1', priority: 10 }],
};

interface Call { verb: string; args: CmdArgs; valid?: Attachment[] }

interface Run { code: number; stdout: string; stderr: string; json: any; calls: Call[] }

interface Opts {
  env?: Record<string, string | undefined>;
  /** Config on stdin: an object is JSON-encoded, a string is sent as it is. */
  stdin?: unknown;
  /** Replaces the env entirely (for "missing variable" cases). */
  rawEnv?: Record<string, string>;
  /** What the fake ADD handler does. */
  add?: () => Promise<Result>;
  stdinThrows?: boolean;
  noOptional?: boolean;
}

const BASE_ENV = {
  CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'ctr1', CNI_NETNS: '/run/netns/ctr1', CNI_IFNAME: 'eth0',
  CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAME=web-0', CNI_PATH: '/opt/cni/bin:/usr/lib/cni',
};
const CONF = { cniVersion: '1.0.0', name: 'appnet', type: 'fake' };

async function run(o: Opts = {}): Promise<Run> {
  const calls: Call[] = [];
  const plugin: Plugin = {
    about: 'fake plugin v0',
    add: async (args) => { calls.push({ verb: 'ADD', args }); return o.add ? o.add() : structuredClone(RESULT); },
    del: async (args) => { calls.push({ verb: 'DEL', args }); },
    check: async (args) => { calls.push({ verb: 'CHECK', args }); },
  };
  if (!o.noOptional) {
    plugin.status = async (args) => { calls.push({ verb: 'STATUS', args }); };
    plugin.gc = async (args, valid) => { calls.push({ verb: 'GC', args, valid }); };
  }
  const env: NodeJS.ProcessEnv = o.rawEnv ? { ...o.rawEnv } : { ...BASE_ENV };
  for (const [k, v] of Object.entries(o.env ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  const stdin = o.stdin === undefined ? CONF : o.stdin;
  let stdout = '';
  let stderr = '';
  const code = await runPlugin(plugin, {
    env,
    self: '',
    readStdin: () => {
      if (o.stdinThrows) throw Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' });
      return Buffer.from(typeof stdin === 'string' ? stdin : JSON.stringify(stdin));
    },
    stdout: (s) => { stdout += s; },
    stderr: (s) => { stderr += s; },
  });
  let json: unknown;
  try { json = JSON.parse(stdout); } catch { json = undefined; }
  return { code, stdout, stderr, json, calls };
}

/** Asserts a failure with `code` and that no handler ran; returns the printed error. */
async function fails(t: ExecutionContext, o: Opts, code: number, msg?: string | RegExp): Promise<any> {
  const r = await run(o);
  t.is(r.code, 1, 'exit status');
  t.is(r.json?.code, code, r.stdout);
  t.is(typeof r.json?.msg, 'string');
  if (typeof msg === 'string') t.is(r.json.msg, msg);
  else if (msg) t.regex(r.json.msg, msg);
  t.deepEqual(r.calls.map((c) => c.verb), [], 'no handler runs');
  t.true(r.stdout.endsWith('\n') && r.stdout.indexOf('\n') === r.stdout.length - 1, 'one JSON line on stdout');
  return r.json;
}

// ---- VERSION and the empty command ----

for (const asked of ['0.3.1', '1.0.0', '1.1.0']) {
  test(`VERSION echoes the asked version ${asked} and lists all seven`, async (t) => {
    const r = await run({ rawEnv: { CNI_COMMAND: 'VERSION' }, stdin: { cniVersion: asked } });
    t.is(r.code, 0);
    t.deepEqual(r.json, { cniVersion: asked, supportedVersions: ALL_VERSIONS });
  });
}

test('VERSION with an empty or unreadable stdin answers with the latest version', async (t) => {
  for (const stdin of ['', 'not json', '{}']) {
    const r = await run({ rawEnv: { CNI_COMMAND: 'VERSION' }, stdin });
    t.is(r.code, 0, stdin);
    t.deepEqual(r.json, { cniVersion: '1.1.0', supportedVersions: ALL_VERSIONS }, stdin);
  }
});

test('VERSION as libcni calls it (dummy netns/ifname/path, no name in the config)', async (t) => {
  const r = await run({ env: { CNI_COMMAND: 'VERSION', CNI_NETNS: 'dummy', CNI_IFNAME: 'dummy', CNI_PATH: 'dummy' }, stdin: { cniVersion: '1.0.0' } });
  t.is(r.code, 0);
  t.deepEqual(r.json, { cniVersion: '1.0.0', supportedVersions: ALL_VERSIONS });
});

for (const command of [undefined, '']) {
  test(`CNI_COMMAND ${command === undefined ? 'unset' : 'empty'}: about text on stderr, exit 0`, async (t) => {
    const r = await run({ rawEnv: command === undefined ? {} : { CNI_COMMAND: command } });
    t.is(r.code, 0);
    t.is(r.stdout, '');
    t.regex(r.stderr, /^fake plugin v0\n/);
    t.regex(r.stderr, /0\.1\.0, 0\.2\.0, 0\.3\.0, 0\.3\.1, 0\.4\.0, 1\.0\.0, 1\.1\.0/);
  });
}

test('an unknown CNI_COMMAND fails with code 4', fails, { env: { CNI_COMMAND: 'add' } }, CniCode.InvalidEnv, 'unknown CNI_COMMAND: add');
test('CNI_COMMAND FOO fails with code 4', fails, { env: { CNI_COMMAND: 'FOO' } }, CniCode.InvalidEnv, 'unknown CNI_COMMAND: FOO');
for (const command of ['toString', 'constructor', '__proto__', 'hasOwnProperty']) {
  test(`CNI_COMMAND ${command} (an Object.prototype key) fails with code 4`, fails, { env: { CNI_COMMAND: command } }, CniCode.InvalidEnv, `unknown CNI_COMMAND: ${command}`);
}

// ---- Required environment (docs/cni-notes.md §1.1) ----

const missingCases: [string, string[], string][] = [
  ['ADD', ['CNI_NETNS', 'CNI_PATH'], 'required env variables [CNI_NETNS,CNI_PATH] missing'],
  ['ADD', ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH'], 'required env variables [CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME,CNI_PATH] missing'],
  ['ADD', ['CNI_CONTAINERID'], 'required env variables [CNI_CONTAINERID] missing'],
  ['ADD', ['CNI_IFNAME'], 'required env variables [CNI_IFNAME] missing'],
  ['DEL', ['CNI_CONTAINERID', 'CNI_NETNS'], 'required env variables [CNI_CONTAINERID] missing'],
  ['DEL', ['CNI_IFNAME', 'CNI_PATH'], 'required env variables [CNI_IFNAME,CNI_PATH] missing'],
  ['CHECK', ['CNI_NETNS'], 'required env variables [CNI_NETNS] missing'],
  ['CHECK', ['CNI_CONTAINERID', 'CNI_PATH'], 'required env variables [CNI_CONTAINERID,CNI_PATH] missing'],
  ['GC', ['CNI_PATH'], 'required env variables [CNI_PATH] missing'],
  ['STATUS', ['CNI_PATH'], 'required env variables [CNI_PATH] missing'],
];
for (const [command, unset, msg] of missingCases) {
  for (const how of ['unset', 'empty'] as const) {
    test(`${command} with ${unset.join(',')} ${how}: ${msg}`, async (t) => {
      const env: Record<string, string | undefined> = { CNI_COMMAND: command };
      for (const k of unset) env[k] = how === 'unset' ? undefined : '';
      const err = await fails(t, { env, stdin: { ...CONF, cniVersion: '1.1.0' } }, CniCode.InvalidEnv, msg);
      t.is(err.details, undefined);
    });
  }
}

test('DEL without CNI_NETNS is fine and the handler sees an empty netns', async (t) => {
  const r = await run({ env: { CNI_COMMAND: 'DEL', CNI_NETNS: undefined } });
  t.is(r.code, 0);
  t.is(r.stdout, '');
  t.is(r.calls.length, 1);
  t.is(r.calls[0]!.args.netns, '');
});

test('GC and STATUS need no attachment variables', async (t) => {
  for (const command of ['GC', 'STATUS']) {
    const r = await run({ rawEnv: { CNI_COMMAND: command, CNI_PATH: '/opt/cni/bin' }, stdin: { ...CONF, cniVersion: '1.1.0' } });
    t.is(r.code, 0, r.stdout);
    t.deepEqual(r.calls.map((c) => c.verb), [command]);
  }
});

// ---- Attachment identity (docs/cni-notes.md §1.2) ----

for (const id of ['-ctr', '.ctr', 'ctr/1', 'ctr 1', 'ctr:1', 'ctr\n', 'ctré']) {
  for (const command of ['ADD', 'DEL', 'CHECK']) {
    test(`${command} with container id ${JSON.stringify(id)} fails with code 4`, fails,
      { env: { CNI_COMMAND: command, CNI_CONTAINERID: id }, stdin: { ...CONF, cniVersion: '0.4.0' } }, CniCode.InvalidEnv, 'invalid characters in containerID');
  }
}

const badIfNames: [string, string, string][] = [
  ['empty', '', 'required env variables [CNI_IFNAME] missing'],
  ['16 bytes', 'eth0123456789abc', 'interface name is too long'],
  ['16 bytes in 8 characters', 'éééééééé', 'interface name is too long'],
  ['.', '.', 'interface name is . or ..'],
  ['..', '..', 'interface name is . or ..'],
  ['/', 'eth/0', 'interface name contains / or : or whitespace characters'],
  [':', 'eth0:1', 'interface name contains / or : or whitespace characters'],
  ['space', 'eth 0', 'interface name contains / or : or whitespace characters'],
  ['tab', 'eth\t0', 'interface name contains / or : or whitespace characters'],
  ['newline', 'eth0\n', 'interface name contains / or : or whitespace characters'],
  ['no-break space', 'eth\u00a00', 'interface name contains / or : or whitespace characters'],
  ['next line (U+0085)', 'eth\u00850', 'interface name contains / or : or whitespace characters'],
];
for (const [what, ifName, msg] of badIfNames) {
  for (const command of ['ADD', 'DEL', 'CHECK']) {
    test(`${command} with ifname ${what} fails with code 4`, fails,
      { env: { CNI_COMMAND: command, CNI_IFNAME: ifName }, stdin: { ...CONF, cniVersion: '0.4.0' } }, CniCode.InvalidEnv, msg);
  }
}

test('an ifname of exactly 15 bytes is accepted', async (t) => {
  const r = await run({ env: { CNI_IFNAME: 'eth0123456789ab' } });
  t.is(r.code, 0, r.stdout);
  t.is(r.calls[0]!.args.ifName, 'eth0123456789ab');
});

// ---- stdin (docs/cni-notes.md §1.3) ----

test('unreadable stdin fails with code 5', fails, { stdinThrows: true }, CniCode.IoFailure);
for (const [what, stdin] of [['not JSON', '{"name": "appnet",'], ['empty', ''], ['a list', '[]'], ['null', 'null'], ['a string', '"appnet"']] as const) {
  test(`stdin ${what} fails with code 6`, fails, { stdin }, CniCode.DecodingFailure);
}
test('a config without name fails with code 7', fails, { stdin: { cniVersion: '1.0.0', type: 'fake' } }, CniCode.InvalidConfig);
test('a config with an empty name fails with code 7', fails, { stdin: { ...CONF, name: '' } }, CniCode.InvalidConfig);
test('a config with a bad name fails with code 7', fails, { stdin: { ...CONF, name: 'app net' } }, CniCode.InvalidConfig);
test('a config with a numeric name fails with code 7', fails, { stdin: { ...CONF, name: 42 } }, CniCode.InvalidConfig);
test('a malformed cniVersion fails with code 6', fails, { stdin: { ...CONF, cniVersion: 'one' } }, CniCode.DecodingFailure);
test('a numeric cniVersion fails with code 6', fails, { stdin: { ...CONF, cniVersion: 1 } }, CniCode.DecodingFailure);

for (const v of ['0.5.0', '1.2.0', '2.0.0']) {
  test(`cniVersion ${v} fails with code 1 and lists what is supported`, async (t) => {
    const err = await fails(t, { stdin: { ...CONF, cniVersion: v } }, CniCode.IncompatibleVersion, 'incompatible CNI versions');
    t.is(err.details, `config is "${v}", plugin supports ["0.1.0" "0.2.0" "0.3.0" "0.3.1" "0.4.0" "1.0.0" "1.1.0"]`);
  });
}

test('CHECK with cniVersion 0.3.1 fails with code 1', fails, { env: { CNI_COMMAND: 'CHECK' }, stdin: { ...CONF, cniVersion: '0.3.1' } }, CniCode.IncompatibleVersion, /CHECK/);
for (const command of ['GC', 'STATUS']) {
  test(`${command} with cniVersion 1.0.0 fails with code 1`, fails, { env: { CNI_COMMAND: command }, stdin: CONF }, CniCode.IncompatibleVersion, new RegExp(command));
}

test('the error object carries the config\'s cniVersion once the config is read', async (t) => {
  const err = await fails(t, { env: { CNI_COMMAND: 'CHECK' }, stdin: { ...CONF, cniVersion: '0.3.1' } }, CniCode.IncompatibleVersion);
  t.is(err.cniVersion, '0.3.1');
});

// ---- Dispatch ----

for (const [version, ips] of [
  ['0.2.0', undefined],
  ['0.3.1', [{ version: '4', address: '10.77.0.5/24', gateway: '10.77.0.1', interface: 0 }]],
  ['0.4.0', [{ version: '4', address: '10.77.0.5/24', gateway: '10.77.0.1', interface: 0 }]],
  ['1.0.0', [{ address: '10.77.0.5/24', gateway: '10.77.0.1', interface: 0 }]],
] as const) {
  test(`ADD prints the result in the config's version ${version}`, async (t) => {
    const r = await run({ stdin: { ...CONF, cniVersion: version } });
    t.is(r.code, 0, r.stdout);
    if (version === '0.2.0') {
      t.deepEqual(r.json, { cniVersion: '0.2.0', ip4: { ip: '10.77.0.5/24', gateway: '10.77.0.1', routes: [{ dst: '0.0.0.0/0', gw: '10.77.0.1' }] } });
    } else {
      t.deepEqual(r.json, {
        cniVersion: version,
        interfaces: [{ name: 'eth0', mac: '0a:58:0a:4d:00:05', sandbox: '/run/netns/ctr1' }],
        ips, routes: [{ dst: '0.0.0.0/0', gw: '10.77.0.1' }],
      });
    }
  });
}

test('ADD in 1.1.0 keeps the 1.1.0 fields', async (t) => {
  const r = await run({ stdin: { ...CONF, cniVersion: '1.1.0' } });
  t.deepEqual(r.json, { ...RESULT, cniVersion: '1.1.0' });
});

test('a config without cniVersion is 0.1.0: the ADD result comes out in 0.1.0', async (t) => {
  const r = await run({ stdin: { name: 'appnet', type: 'fake' } });
  t.is(r.code, 0, r.stdout);
  t.is(r.calls[0]!.args.conf.cniVersion, '0.1.0');
  t.deepEqual(r.json, { cniVersion: '0.1.0', ip4: { ip: '10.77.0.5/24', gateway: '10.77.0.1', routes: [{ dst: '0.0.0.0/0', gw: '10.77.0.1' }] } });
});

test('an empty cniVersion is 0.1.0 too, as libcni reads it', async (t) => {
  const r = await run({ stdin: { ...CONF, cniVersion: '' } });
  t.is(r.code, 0, r.stdout);
  t.is(r.calls[0]!.args.conf.cniVersion, '0.1.0');
  t.is(r.json.cniVersion, '0.1.0');
});

test('ADD whose result cannot be expressed in 0.2.0 fails with code 1', async (t) => {
  const r = await run({ stdin: { ...CONF, cniVersion: '0.2.0' }, add: async () => ({ cniVersion: '1.1.0', interfaces: [{ name: 'eth0' }] }) });
  t.is(r.code, 1);
  t.is(r.json.code, CniCode.IncompatibleVersion);
  t.is(r.json.cniVersion, '0.2.0');
});

test('the handler gets the parsed environment, the raw stdin and the config', async (t) => {
  const stdin = JSON.stringify({ ...CONF, extra: { a: 1 } });
  const r = await run({ stdin });
  const a = r.calls[0]!.args;
  t.like(a, { command: 'ADD', containerId: 'ctr1', netns: '/run/netns/ctr1', ifName: 'eth0', args: 'IgnoreUnknown=1;K8S_POD_NAME=web-0' });
  t.deepEqual(a.path, ['/opt/cni/bin', '/usr/lib/cni']);
  t.is(a.stdinData.toString(), stdin);
  t.deepEqual(a.conf, { ...CONF, extra: { a: 1 } });
  t.is(a.env.CNI_PATH, '/opt/cni/bin:/usr/lib/cni');
});

test('DEL and CHECK print nothing on success', async (t) => {
  for (const command of ['DEL', 'CHECK']) {
    const r = await run({ env: { CNI_COMMAND: command } });
    t.is(r.code, 0);
    t.is(r.stdout, '');
    t.deepEqual(r.calls.map((c) => c.verb), [command]);
  }
});

test('GC and STATUS without a handler succeed and print nothing', async (t) => {
  for (const command of ['GC', 'STATUS']) {
    const r = await run({ env: { CNI_COMMAND: command }, stdin: { ...CONF, cniVersion: '1.1.0' }, noOptional: true });
    t.is(r.code, 0, command);
    t.is(r.stdout, '');
  }
});

test('a CniError from a handler is printed with its code, message, details and the config version', async (t) => {
  const r = await run({ stdin: { ...CONF, cniVersion: '0.4.0' }, add: async () => { throw new CniError(CniCode.TryAgainLater, 'pool busy', 'try later'); } });
  t.is(r.code, 1);
  t.deepEqual(r.json, { cniVersion: '0.4.0', code: 11, msg: 'pool busy', details: 'try later' });
});

test('a plain Error from a handler becomes code 999 with its cause chain in details', async (t) => {
  const cause = Object.assign(new Error('RTM_NEWLINK: EEXIST'), { code: 'EEXIST', extack: 'File exists' });
  const r = await run({ add: async () => { throw new Error('failed to create veth "veth1"', { cause }); } });
  t.is(r.code, 1);
  t.deepEqual(r.json, { cniVersion: '1.0.0', code: 999, msg: 'failed to create veth "veth1"', details: 'RTM_NEWLINK: EEXIST (File exists)' });
});

test('a plain Error without cause becomes code 999 without details', async (t) => {
  const r = await run({ add: async () => { throw new TypeError('x is undefined'); } });
  t.deepEqual(r.json, { cniVersion: '1.0.0', code: 999, msg: 'x is undefined' });
});

test('a thrown non-Error becomes code 999', async (t) => {
  const r = await run({ add: async () => { throw 'boom'; } });
  t.is(r.code, 1);
  t.like(r.json, { code: 999, msg: 'boom' });
});

const attachments = [{ containerID: 'ctr1', ifname: 'eth0' }, { containerID: 'ctr2', ifname: 'net1' }];
for (const key of ['cni.dev/valid-attachments', 'cni.dev/attachments']) {
  test(`GC receives the attachments in ${key}`, async (t) => {
    const r = await run({ rawEnv: { CNI_COMMAND: 'GC', CNI_PATH: '/opt/cni/bin' }, stdin: { ...CONF, cniVersion: '1.1.0', [key]: attachments } });
    t.is(r.code, 0, r.stdout);
    t.deepEqual(r.calls[0]?.valid, attachments);
  });
}

test('GC prefers cni.dev/valid-attachments when both keys are sent', async (t) => {
  const r = await run({ env: { CNI_COMMAND: 'GC' }, stdin: { ...CONF, cniVersion: '1.1.0', 'cni.dev/valid-attachments': attachments, 'cni.dev/attachments': [] } });
  t.deepEqual(r.calls[0]?.valid, attachments);
});

test('GC without an attachment list gets an empty one (clean everything)', async (t) => {
  const r = await run({ env: { CNI_COMMAND: 'GC' }, stdin: { ...CONF, cniVersion: '1.1.0' } });
  t.is(r.code, 0);
  t.deepEqual(r.calls[0]?.valid, []);
});

test('GC with a malformed attachment list fails with code 7', async (t) => {
  for (const list of [{}, [{ containerID: 'ctr1' }], ['ctr1']]) {
    const r = await run({ env: { CNI_COMMAND: 'GC' }, stdin: { ...CONF, cniVersion: '1.1.0', 'cni.dev/valid-attachments': list } });
    t.is(r.code, 1);
    t.is(r.json.code, CniCode.InvalidConfig, JSON.stringify(list));
  }
});

test('the config\'s top-level keys are matched as Go\'s skel matches them (case-insensitively)', async (t) => {
  const r = await run({ stdin: { CNIVersion: '0.4.0', Name: 'appnet', Type: 'fake', PrevResult: { cniVersion: '0.4.0' }, RuntimeConfig: { x: 1 } } });
  t.is(r.code, 0, r.stdout);
  t.is(r.json.cniVersion, '0.4.0');
  const conf = r.calls[0]!.args.conf;
  t.like(conf, { cniVersion: '0.4.0', name: 'appnet', type: 'fake', prevResult: { cniVersion: '0.4.0' }, runtimeConfig: { x: 1 } });
  await fails(t, { stdin: { CNIVersion: '9.9.9', Name: 'appnet' } }, 1);
});

test('GC reads valid attachments with Go\'s key matching too', async (t) => {
  const r = await run({ env: { CNI_COMMAND: 'GC' }, stdin: { ...CONF, cniVersion: '1.1.0', 'CNI.dev/Valid-Attachments': [{ ContainerID: 'c1', IfName: 'eth0' }] } });
  t.is(r.code, 0, r.stdout);
  t.deepEqual(r.calls[0]?.valid, [{ containerID: 'c1', ifname: 'eth0' }]);
});

/**
 * Delegation as the reference's pkg/invoke does it: lookup in CNI_PATH, then a real child
 * process (small /bin/sh scripts in a temp dir stand in for an IPAM plugin) that gets the
 * caller's env with CNI_COMMAND replaced and the same stdin, and whose result or error is read back.
 */
import test from 'ava';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CniCode, CniError } from './errors.ts';
import { decodePluginError, delegate, execPlugin, execPluginAsync, findInPath } from './invoke.ts';
import { hasCode } from '../native.ts';
import type { CmdArgs } from './skel.ts';
import { silentLogger } from '../log.ts';
import { noKernel } from '../kernel.ts';

const dir = mkdtempSync(join(tmpdir(), 'cnikit-invoke-'));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));

function script(sub: string, name: string, body: string): string {
  mkdirSync(join(dir, sub), { recursive: true });
  const p = join(dir, sub, name);
  writeFileSync(p, `#!/bin/sh\n${body}\n`);
  chmodSync(p, 0o755);
  return p;
}

// An IPAM stand-in that records its env and stdin, then prints a 0.4.0 result.
const record = join(dir, 'record');
const ipam = script('a', 'fake-ipam', `env | grep '^CNI_' | sort > ${record}.env; cat > ${record}.stdin
printf '%s' '{"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.77.0.9/24","gateway":"10.77.0.1"}],"routes":[{"dst":"0.0.0.0/0"}]}'`);
script('b', 'fake-ipam', 'echo wrong one; exit 1');
mkdirSync(join(dir, 'c', 'dir-ipam'), { recursive: true });
script('b', 'dir-ipam', 'echo found; exit 0');

test('findInPath returns the first regular file, skipping directories and missing dirs', (t) => {
  t.is(findInPath('fake-ipam', [join(dir, 'nope'), join(dir, 'a'), join(dir, 'b')]), ipam);
  t.is(findInPath('dir-ipam', [join(dir, 'c'), join(dir, 'b')]), join(dir, 'b', 'dir-ipam'));
});

test('findInPath: not found names the plugin and the path', (t) => {
  const err = t.throws(() => findInPath('host-local', [join(dir, 'a'), '/nonexistent']), { instanceOf: CniError });
  t.is(err?.message, `failed to find plugin "host-local" in path [${join(dir, 'a')} /nonexistent]`);
});

test('findInPath: a type with / is an invalid config (7)', (t) => {
  const err = t.throws(() => findInPath('../a/fake-ipam', [join(dir, 'b')]), { instanceOf: CniError });
  t.is(err?.code as number | undefined, CniCode.InvalidConfig);
});

test.serial('execPlugin passes env (CNI_COMMAND replaced) and stdin, and reads the result in the caller\'s version', (t) => {
  const env = { PATH: '/usr/bin:/bin', CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'ctr1', CNI_NETNS: '/run/netns/x', CNI_IFNAME: 'eth0', CNI_ARGS: 'IgnoreUnknown=1', CNI_PATH: join(dir, 'a') };
  const stdin = Buffer.from('{"cniVersion":"1.0.0","name":"n","type":"bridge","ipam":{"type":"fake-ipam"}}');
  const r = execPlugin(ipam, 'ADD', env, stdin, '1.0.0');
  t.deepEqual(r, { cniVersion: '0.4.0', ips: [{ address: '10.77.0.9/24', gateway: '10.77.0.1' }], routes: [{ dst: '0.0.0.0/0' }] });
  t.is(readFileSync(`${record}.stdin`, 'utf8'), stdin.toString());
  t.deepEqual(readFileSync(`${record}.env`, 'utf8').trim().split('\n'),
    ['CNI_ARGS=IgnoreUnknown=1', 'CNI_COMMAND=ADD', 'CNI_CONTAINERID=ctr1', 'CNI_IFNAME=eth0', `CNI_NETNS=/run/netns/x`, `CNI_PATH=${join(dir, 'a')}`]);
  t.is(execPlugin(ipam, 'DEL', env, stdin, '1.0.0'), undefined, 'DEL output is not a result');
  t.true(readFileSync(`${record}.env`, 'utf8').includes('CNI_COMMAND=DEL'));
});

test('execPlugin: the delegate\'s error object comes back with its code, message and details', (t) => {
  const p = script('e', 'fails', `printf '%s' '{"cniVersion":"1.0.0","code":11,"msg":"pool busy","details":"try later"}'; exit 1`);
  const err = t.throws(() => execPlugin(p, 'ADD', {}, Buffer.from('{}'), '1.0.0'), { instanceOf: CniError });
  t.like(err, { code: 11, message: 'pool busy', details: 'try later' });
});

test('execPlugin: a failure without an error object is 999 with the output as details', (t) => {
  const p = script('e', 'crashes', 'echo segfault; exit 2');
  const err = t.throws(() => execPlugin(p, 'ADD', {}, Buffer.from('{}'), '1.0.0'), { instanceOf: CniError });
  t.is(err?.code as number | undefined, CniCode.Internal);
  t.regex(err!.message, /exited with 2/, err?.details);
  t.is(err?.details, 'segfault');
});

test('execPlugin: a plugin that fails before reading stdin still reports its error (no EPIPE)', (t) => {
  // What the Go skel does on a missing env var; a large stdin makes the early exit certain to
  // interrupt the write.
  const p = script('e', 'early', `printf '%s' '{"code":4,"msg":"required env variables [CNI_PATH] missing"}'; exit 1`);
  for (let i = 0; i < 3; i++) {
    const err = t.throws(() => execPlugin(p, 'ADD', {}, Buffer.alloc(1 << 20, 0x20), '1.0.0'), { instanceOf: CniError });
    t.like(err, { code: 4, message: 'required env variables [CNI_PATH] missing' });
  }
});

test('execPlugin: an ADD that prints no JSON is a decoding failure (6)', (t) => {
  const p = script('e', 'garbage', 'echo not-json');
  const err = t.throws(() => execPlugin(p, 'ADD', {}, Buffer.from('{}'), '1.0.0'), { instanceOf: CniError });
  t.is(err?.code as number | undefined, CniCode.DecodingFailure);
});

test('execPlugin: a result without cniVersion is read in the caller\'s version', (t) => {
  const p = script('e', 'noversion', `printf '%s' '{"ip4":{"ip":"10.0.0.2/24"}}'`);
  t.deepEqual(execPlugin(p, 'ADD', {}, Buffer.from('{}'), '0.2.0')?.ips, [{ address: '10.0.0.2/24' }]);
});

test.serial('delegate execs a plugin that is not ours, found through CmdArgs.path', async (t) => {
  const a: CmdArgs = {
    command: 'ADD', containerId: 'ctr2', netns: '/run/netns/y', ifName: 'net1', args: '', path: [join(dir, 'nope'), join(dir, 'a')],
    stdinData: Buffer.from('{"cniVersion":"0.4.0","name":"n"}'), conf: { cniVersion: '0.4.0', name: 'n' },
    env: { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'ctr2', CNI_IFNAME: 'net1', CNI_PATH: join(dir, 'a') },
    self: '', log: silentLogger, kernel: noKernel,
  };
  const r = await delegate('fake-ipam', 'CHECK', a);
  t.is(r, undefined);
  t.true(readFileSync(`${record}.env`, 'utf8').includes('CNI_COMMAND=CHECK'));
  t.like(await delegate('fake-ipam', 'ADD', a), { cniVersion: '0.4.0' });
});

test('execPluginAsync decodes results and errors as execPlugin does, and hands the stderr to the caller', async (t) => {
  const chatty = script('f', 'chatty', `echo 'warning: pool über 90%' >&2; cat > /dev/null; echo done >&2
printf '%s' '{"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.77.0.9/24"}]}'`);
  let err = '';
  const r = await execPluginAsync(chatty, 'ADD', {}, Buffer.from('{}'), '1.0.0', (s) => { err += s; });
  t.deepEqual(r, { cniVersion: '0.4.0', ips: [{ address: '10.77.0.9/24' }] });
  t.is(err, 'warning: pool über 90%\ndone\n');
  t.is(await execPluginAsync(chatty, 'DEL', {}, Buffer.from('{}'), '1.0.0', () => {}), undefined);

  const early = script('f', 'early', `printf '%s' '{"code":4,"msg":"required env variables [CNI_PATH] missing"}'; exit 1`);
  await t.throwsAsync(execPluginAsync(early, 'ADD', {}, Buffer.alloc(1 << 20, 0x20), '1.0.0', () => {}), { instanceOf: CniError, message: 'required env variables [CNI_PATH] missing' });
  const crash = script('f', 'crashes', 'echo segfault; exit 2');
  t.like(await t.throwsAsync(execPluginAsync(crash, 'ADD', {}, Buffer.from('{}'), '1.0.0', () => {}), { instanceOf: CniError }), { code: CniCode.Internal, details: 'segfault' });
  const garbage = script('f', 'garbage', 'echo not-json');
  t.like(await t.throwsAsync(execPluginAsync(garbage, 'ADD', {}, Buffer.from('{}'), '1.0.0', () => {}), { instanceOf: CniError }), { code: CniCode.DecodingFailure });
  const missing = await t.throwsAsync(execPluginAsync(join(dir, 'f', 'missing'), 'ADD', {}, Buffer.from('{}'), '1.0.0', () => {}), { instanceOf: CniError });
  t.regex(missing!.message, /^failed to run plugin /);
  t.true(hasCode(missing, 'ENOENT'));
});

test.serial('delegate: an exec\'d plugin\'s stderr goes to the call\'s stderr', async (t) => {
  const p = script('g', 'noisy-ipam', `echo "ipam says hi" >&2; cat > /dev/null`);
  let err = '';
  const a: CmdArgs = {
    command: 'DEL', containerId: 'ctr3', netns: '', ifName: 'eth0', args: '', path: [join(dir, 'g')],
    stdinData: Buffer.from('{"cniVersion":"1.0.0","name":"n"}'), conf: { cniVersion: '1.0.0', name: 'n' },
    env: { CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'ctr3', CNI_IFNAME: 'eth0', CNI_PATH: join(dir, 'g') },
    self: '', log: silentLogger, stderr: (s) => { err += s; }, kernel: noKernel,
  };
  t.is(await delegate('noisy-ipam', 'DEL', a), undefined);
  t.is(err, 'ipam says hi\n');
  t.truthy(p);
});

test('decodePluginError reads the error object a plugin printed, and nothing else', (t) => {
  const e = decodePluginError('{"cniVersion":"1.0.0","code":7,"msg":"invalid network config","details":"subnet: missing"}\n');
  t.true(e instanceof CniError);
  t.is(e!.code, CniCode.InvalidConfig);
  t.is(e!.message, 'invalid network config');
  t.is(e!.details, 'subnet: missing');
  t.is(decodePluginError('{"code":11,"msg":"later"}')!.details, undefined);
  for (const out of ['', 'not json', 'null', '[1]', '{"code":"7","msg":"x"}', '{"code":7}']) t.is(decodePluginError(out), undefined, out);
});

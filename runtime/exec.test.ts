/**
 * ProcessExec against real child processes (small /bin/sh plugins in a temp dir; no root): the
 * VERSION probe and how its answers and errors are read, the "text file busy" retry, and the
 * answers remembered on disk between runtimes (VersionStore).
 */
import test from 'ava';
import { chmodSync, closeSync, mkdtempSync, openSync, rmSync, utimesSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CniCode, CniError } from '../pkg/cni/errors.ts';
import { hasCode } from '../pkg/native.ts';
import { parseConfList } from './conf.ts';
import { ProcessExec, retryBusy } from './exec.ts';
import { CniRuntime } from './runtime.ts';
import { VersionStore } from './version-store.ts';

const dir = mkdtempSync(join(tmpdir(), 'cnikit-exec-'));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));

function plugin(name: string, body: string): string {
  const p = join(dir, name);
  writeFileSync(p, `#!/bin/sh\n${body}\n`);
  chmodSync(p, 0o755);
  return p;
}

const fast = new ProcessExec({ retries: 5, delayMs: 20 });

function busy(): Error {
  return Object.assign(new Error('spawnSync /x ETXTBSY'), { code: 'ETXTBSY' });
}

test('retryBusy retries while ETXTBSY is anywhere in the cause chain, and gives up after the retries', async (t) => {
  let n = 0;
  t.is(await retryBusy(() => {
    if (++n < 3) throw new CniError(CniCode.Internal, 'failed to run plugin /x', 'ETXTBSY', { cause: busy() });
    return 'ran';
  }, { delayMs: 1 }), 'ran');
  t.is(n, 3);

  n = 0;
  await t.throwsAsync(retryBusy(() => { n++; throw busy(); }, { retries: 2, delayMs: 1 }), { message: /ETXTBSY/ });
  t.is(n, 3, 'the first attempt and 2 retries');

  n = 0;
  await t.throwsAsync(retryBusy(() => { n++; throw new CniError(CniCode.Internal, 'mentions ETXTBSY in its text only'); }, { delayMs: 1 }));
  t.is(n, 1, 'message text is not an errno: no retry');
});

test.serial('exec and VERSION of a plugin that is still being written are retried until it can run', async (t) => {
  const file = join(dir, 'being-written');
  // An executable held open for writing cannot be exec'd (ETXTBSY) until it is closed.
  const fd = openSync(file, 'w', 0o755);
  writeSync(fd, '#!/bin/sh\nif [ "$CNI_COMMAND" = VERSION ]; then echo \'{"cniVersion":"1.0.0","supportedVersions":["1.0.0"]}\'; fi\n');
  const impatient = new ProcessExec({ retries: 0 });
  const err = await t.throwsAsync(impatient.version(file, { PATH: '/usr/bin:/bin' }, '1.0.0'));
  t.true(hasCode(err, 'ETXTBSY'), String(err));
  await t.throwsAsync(impatient.exec(file, 'DEL', { CNI_COMMAND: 'DEL' }, Buffer.from('{}'), '1.0.0'), { message: /failed to run plugin/ });
  setTimeout(() => closeSync(fd), 50);
  t.deepEqual(await fast.version(file, { PATH: '/usr/bin:/bin' }, '1.0.0'), ['1.0.0']);

  const fd2 = openSync(file, 'r+');
  setTimeout(() => closeSync(fd2), 50);
  t.is(await fast.exec(file, 'DEL', { PATH: '/usr/bin:/bin', CNI_COMMAND: 'DEL' }, Buffer.from('{}'), '1.0.0'), undefined);
});

test('VERSION: supportedVersions is read; 0.2.0 may omit it; the env is the caller\'s with libcni\'s dummies', async (t) => {
  const env = join(dir, 'version-env');
  const p = plugin('versioned', `env | grep -E '^(CNI_|FROM_CALLER)' | sort > ${env}; cat > ${env}.stdin; echo '{"cniVersion":"1.1.0","supportedVersions":["0.4.0","1.0.0",7]}'`);
  t.deepEqual(await fast.version(p, { PATH: '/usr/bin:/bin', FROM_CALLER: 'yes', CNI_ARGS: 'A=1' }, '1.1.0'), ['0.4.0', '1.0.0']);
  const { readFileSync } = await import('node:fs');
  t.deepEqual(readFileSync(env, 'utf8').trim().split('\n'), ['CNI_ARGS=A=1', 'CNI_COMMAND=VERSION', 'CNI_CONTAINERID=dummy', 'CNI_IFNAME=dummy', 'CNI_NETNS=dummy', 'CNI_PATH=dummy', 'FROM_CALLER=yes']);
  t.deepEqual(JSON.parse(readFileSync(`${env}.stdin`, 'utf8')), { cniVersion: '1.1.0' });
  t.deepEqual(await fast.version(plugin('old', `echo '{"cniVersion":"0.2.0"}'`), {}, '0.2.0'), ['0.1.0', '0.2.0']);
});

test('VERSION failures: the plugin\'s error object, a bare exit status, output that is not a VERSION reply', async (t) => {
  const coded = await t.throwsAsync(fast.version(plugin('refuses', `echo '{"code":1,"msg":"incompatible CNI versions","details":"wants 9.9.9"}'; exit 1`), {}, '1.0.0'), { instanceOf: CniError });
  t.is(coded!.code, CniCode.IncompatibleVersion);
  t.is(coded!.message, `${join(dir, 'refuses')} VERSION: incompatible CNI versions`);
  t.is(coded!.details, 'wants 9.9.9');

  const bare = await t.throwsAsync(fast.version(plugin('exits', 'echo oops; exit 3'), {}, '1.0.0'), { instanceOf: CniError });
  t.is(bare!.message, `${join(dir, 'exits')} VERSION exited with 3`);
  t.is(bare!.details, 'oops');

  const garbage = await t.throwsAsync(fast.version(plugin('garbage', 'echo hello'), {}, '1.0.0'), { instanceOf: CniError });
  t.is(garbage!.code, CniCode.DecodingFailure);
  t.regex(garbage!.message, /cannot read the VERSION output of/);

  const missing = await t.throwsAsync(fast.version(join(dir, 'nope'), {}, '1.0.0'), { instanceOf: CniError });
  t.regex(missing!.message, /failed to run plugin/);
});

test('VersionStore: an answer is kept per real path and dropped when the file changes; an unwritable store is harmless', (t) => {
  const store = new VersionStore(join(dir, 'store', 'plugin-versions.json'));
  const p = plugin('stored', 'true');
  t.is(store.get(p), undefined);
  store.set(p, ['1.0.0']);
  t.deepEqual(new VersionStore(join(dir, 'store', 'plugin-versions.json')).get(p), ['1.0.0'], 'read back by another instance');
  utimesSync(p, new Date(), new Date(Date.now() + 5000));
  t.is(new VersionStore(join(dir, 'store', 'plugin-versions.json')).get(p), undefined, 'a rebuilt plugin is asked again');
  t.is(store.get(join(dir, 'no-such-plugin')), undefined);

  writeFileSync(join(dir, 'a-file'), '');
  const unwritable = new VersionStore(join(dir, 'a-file', 'sub', 'plugin-versions.json'));
  t.notThrows(() => unwritable.set(p, ['1.0.0']));
});

test('negotiation through real plugins remembers their answers on disk: a second runtime execs no VERSION', async (t) => {
  const log = join(dir, 'version-calls');
  const body = `if [ "$CNI_COMMAND" = VERSION ]; then echo x >> ${log}; echo '{"cniVersion":"1.1.0","supportedVersions":["1.0.0","1.1.0"]}'; fi`;
  const bin = join(dir, 'bin');
  const { mkdirSync, readFileSync } = await import('node:fs');
  mkdirSync(bin);
  for (const name of ['one', 'two']) {
    writeFileSync(join(bin, name), `#!/bin/sh\n${body}\n`);
    chmodSync(join(bin, name), 0o755);
  }
  const list = parseConfList(Buffer.from(JSON.stringify({ cniVersion: '1.0.0', cniVersions: ['1.1.0'], name: 'net', plugins: [{ type: 'one' }, { type: 'two' }] })));
  const cacheDir = join(dir, 'cache');
  t.is(await new CniRuntime({ path: [bin], cacheDir, env: { PATH: '/usr/bin:/bin' } }).negotiate(list), '1.1.0');
  t.is(readFileSync(log, 'utf8'), 'x\nx\n');
  t.is(await new CniRuntime({ path: [bin], cacheDir, env: { PATH: '/usr/bin:/bin' } }).negotiate(list), '1.1.0');
  t.is(readFileSync(log, 'utf8'), 'x\nx\n', 'asked once, ever');
});

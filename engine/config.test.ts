import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_IDLE_SECONDS, loadConfig, parseConfigText, parseMode } from './config.ts';

test('key = value lines, comments and blanks', (t) => {
  t.deepEqual([...parseConfigText('# settings\nengine = nostart\n\n  idle=60 # a minute\nlog = /var/log/cnikit-engine.log\nbroken\n')],
    [['engine', 'nostart'], ['idle', '60'], ['log', '/var/log/cnikit-engine.log']]);
});

test('modes read as the launcher reads them', (t) => {
  for (const v of ['off', '0', 'no', 'false']) t.is(parseMode(v), 'off');
  t.is(parseMode('nostart'), 'nostart');
  for (const v of ['on', '1', 'yes', 'anything']) t.is(parseMode(v), 'on');
});

test('defaults; the file; the environment over the file', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cnikit-conf-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'engine.conf');
  t.deepEqual(loadConfig({ CNIKIT_ENGINE_CONF: join(dir, 'none') }), { mode: 'on', idleSeconds: DEFAULT_IDLE_SECONDS, log: undefined, profileDir: undefined });
  writeFileSync(file, 'engine = off\nidle = 0\nlog = /tmp/x.log\n');
  t.deepEqual(loadConfig({ CNIKIT_ENGINE_CONF: file }), { mode: 'off', idleSeconds: 0, log: '/tmp/x.log', profileDir: undefined });
  t.deepEqual(loadConfig({ CNIKIT_ENGINE_CONF: file, CNIKIT_ENGINE: 'on', CNIKIT_ENGINE_IDLE: '30', CNIKIT_ENGINE_LOG: '/tmp/y.log' }), { mode: 'on', idleSeconds: 30, log: '/tmp/y.log', profileDir: undefined });
  t.is(loadConfig({ CNIKIT_ENGINE_CONF: file, CNIKIT_ENGINE_IDLE: 'soon' }).idleSeconds, DEFAULT_IDLE_SECONDS);
});

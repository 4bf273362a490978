/**
 * dist/bin/.lib/engine.cjs: the warm engine's process. A launcher starts it (detached, stdio on
 * /dev/null, only CNIKIT_ENGINE* variables in its environment) as
 * `node launch.cjs engine <self> --starting-fd N`, where fd N holds the abstract "starting" name
 * that keeps other launchers from starting a second engine; it is closed once the engine listens
 * (or has found another engine listening, in which case this one exits at once).
 *
 * Run without --starting-fd it is the same engine in the foreground, for a service manager
 * (`cnikit engine unit` prints a systemd unit that runs it so, with its events on stderr).
 */
import { closeSync, readlinkSync, realpathSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bundleDir } from '../pkg/bundle.ts';
import { loadConfig } from './config.ts';
import { loadPlugins } from './plugins.ts';
import { engineSocketName } from './protocol.ts';
import { Engine } from './server.ts';

declare const __CNIKIT_ADDON__: string | undefined;

/**
 * The --starting-fd number when it is a socket this process was started with; otherwise
 * undefined, so that a number given by hand never closes a file of Node's own (fd 3 may be
 * libuv's epoll fd in a process that did not inherit one).
 */
function inheritedSocket(fd: number): number | undefined {
  if (!Number.isInteger(fd) || fd < 3) return undefined;
  try {
    return readlinkSync(`/proc/self/fd/${fd}`).startsWith('socket:') ? fd : undefined;
  } catch {
    return undefined;
  }
}

/** Starts a CPU profile; the function returned writes it to `dir` (engine-PID.cpuprofile). */
async function startProfile(dir: string): Promise<() => Promise<void>> {
  const { Session } = await import('node:inspector/promises');
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  // 100 µs between samples (the default is 1 ms): a call costs about a millisecond.
  await session.post('Profiler.setSamplingInterval', { interval: 100 });
  await session.post('Profiler.start');
  // SIGUSR2 starts it over, so that the profile covers what follows (a bench's measured part).
  process.on('SIGUSR2', () => { void session.post('Profiler.stop').then(() => session.post('Profiler.start')); });
  return async () => {
    const { profile } = await session.post('Profiler.stop');
    writeFileSync(join(dir, `engine-${process.pid}.cpuprofile`), JSON.stringify(profile));
    session.disconnect();
  };
}

async function main(argv: string[]): Promise<number> {
  const i = argv.indexOf('--starting-fd');
  const startingFd = i >= 0 ? inheritedSocket(Number(argv[i + 1])) : undefined;
  const lib = bundleDir();
  if (!lib) throw new Error('the engine runs from its bundle (dist/bin/.lib/engine.cjs)');
  const real = realpathSync(lib);
  // Why: a long-lived process must not keep the directory it was started from busy.
  process.chdir('/');
  const cfg = loadConfig(process.env);
  const writeProfile = cfg.profileDir ? await startProfile(cfg.profileDir) : undefined;
  const engine = new Engine({
    name: engineSocketName(real), lib: real, plugins: await loadPlugins(), idleSeconds: cfg.idleSeconds,
    buildFiles: [join(real, 'engine.cjs'), ...(typeof __CNIKIT_ADDON__ === 'string' ? [__CNIKIT_ADDON__] : [])],
    logFile: cfg.log,
  });
  process.on('uncaughtException', (err) => {
    engine.log('uncaught exception', { error: err.stack ?? String(err) });
    engine.stop('internal error');
  });
  // SIGTERM (a service manager, `kill PID`): finish the calls taken on, then exit.
  process.on('SIGTERM', () => engine.stop('SIGTERM'));
  // SIGHUP (as to a responder process, whose pid file may name the engine): reload hosted DNS.
  process.on('SIGHUP', () => { void engine.responders.reloadAll('SIGHUP'); });
  process.on('unhandledRejection', (err) => engine.log('unhandled rejection', { error: String(err) }));
  try {
    await engine.listen();
  } catch (err) {
    engine.log('not started', { error: String(err) });
    return 0;
  } finally {
    if (startingFd !== undefined) {
      try { closeSync(startingFd); } catch { /* closed already */ }
    }
  }
  const reason = await engine.stopped;
  engine.log('exit', { reason, ...engine.status() });
  await writeProfile?.().catch((err: unknown) => engine.log('cannot write the profile', { error: String(err) }));
  return 0;
}

main(process.argv.slice(2)).then((code) => process.exit(code), (err: unknown) => {
  process.stderr.write(`cnikit engine: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(1);
});

/**
 * The responder process's main, run by the dnsname executable when its first argument is a
 * responder flag (plugins/dnsname/main.ts): `dnsname --responder --records DIR --run-dir DIR`
 * is the per-host daemon the plugin starts (ensure.ts), `dnsname --serve --records DIR --listen
 * ADDR:PORT...` the standalone resolver. It reads argv and the environment (the logger comes
 * from it: CNIKIT_DEBUG turns on debug lines), starts `serveDns` and turns signals into calls:
 * SIGHUP reloads, SIGTERM and SIGINT stop. The process exits when the responder has stopped.
 */
import { type Logger, stderrLogger } from '../pkg/log.ts';
import { type ServeOptions, parseListen, serveDns } from './serve.ts';

/**
 * Parses the responder's command line: `--responder --records DIR --run-dir DIR` (started by the
 * plugin) or `--serve --records DIR --listen ADDR:PORT...` (standalone; follows the directory).
 */
export function parseServeArgs(argv: string[]): ServeOptions {
  const o: ServeOptions = { recordsDir: '' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const val = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    switch (a) {
      case '--responder': o.exitWhenEmpty = true; break;
      case '--serve': o.exitWhenEmpty = false; o.watch = true; break;
      case '--records': o.recordsDir = val(); break;
      case '--run-dir': o.runDir = val(); break;
      case '--listen': (o.listen ??= []).push(parseListen(val())); break;
      case '--forward-timeout-ms': o.forwardTimeoutMs = Number(val()); break;
      case '--resolv-conf': o.resolvConf = val(); break;
      case '--watch': o.watch = true; break;
      default: throw new Error(`unknown argument "${a}"`);
    }
  }
  if (!o.recordsDir) throw new Error('--records DIR is required');
  return o;
}

/** Runs the responder until it stops; `argv` without node and script, `env` the process's. */
export function responderMain(argv: string[], env: NodeJS.ProcessEnv): void {
  const log: Logger = stderrLogger(env);
  let opts: ServeOptions;
  try {
    opts = parseServeArgs(argv);
  } catch (err) {
    log.error('bad responder arguments', { error: (err as Error).message });
    process.exitCode = 2;
    return;
  }
  // The per-host responder yields to a warm engine; a standalone resolver (--listen) does not.
  serveDns({ ...opts, log, fullGcAfterReload: true, yields: !opts.listen }).then((svc) => {
    process.on('SIGHUP', () => { void svc.reload('SIGHUP'); });
    process.on('SIGTERM', () => { void svc.close(); });
    process.on('SIGINT', () => { void svc.close(); });
    svc.done.then(() => process.exit(0), () => process.exit(1));
  }, (err: Error) => {
    log.error('responder failed to start', { error: err.message });
    process.exitCode = 1;
  });
}

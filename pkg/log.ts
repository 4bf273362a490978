/**
 * Structured logging to stderr (a runtime forwards a plugin's stderr to its log; the DNS
 * responder's stderr goes to its log file or the journal). One JSON object per line.
 *
 * A logger is made for each call (skel builds one from the call's environment and stderr and
 * hands it to the handlers as `CmdArgs.log`), so that a long-lived process serving many calls
 * logs each to its own caller, with that caller's CNIKIT_DEBUG. Nothing here reads process.env.
 */
export type Level = 'debug' | 'info' | 'warn' | 'error';

export interface Logger {
  /** True when debug lines are written (a caller skips gathering fields nobody will see). */
  readonly debugging: boolean;
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/**
 * `ms` (default now) as Date#toISOString writes it, from the UTC fields alone. Why not
 * toISOString: V8 looks up the local time zone's display name for it, which maps ~1 MiB of
 * ICU's zone data into a process that logs once (the engine keeps it for its lifetime).
 */
export function isoTime(ms = Date.now()): string {
  const d = new Date(ms);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}T${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}.${pad(d.getUTCMilliseconds(), 3)}Z`;
}

/** Makes a logger that writes JSON lines with `write`; debug lines only when `debug` is set. */
export function createLogger(o: { debug: boolean; write: (line: string) => void }): Logger {
  const emit = (level: Level, msg: string, fields?: Record<string, unknown>) => {
    if (level === 'debug' && !o.debug) return;
    o.write(JSON.stringify({ time: isoTime(), level, msg, ...fields }) + '\n');
  };
  return {
    debugging: o.debug,
    debug: (msg, fields) => emit('debug', msg, fields),
    info: (msg, fields) => emit('info', msg, fields),
    warn: (msg, fields) => emit('warn', msg, fields),
    error: (msg, fields) => emit('error', msg, fields),
  };
}

/** True when `env` asks for debug output (CNIKIT_DEBUG set and not empty). */
export function debugEnabled(env: NodeJS.ProcessEnv): boolean {
  return !!env.CNIKIT_DEBUG;
}

/** A logger that drops everything (unit tests, and callers that have nowhere to log). */
export const silentLogger: Logger = createLogger({ debug: false, write: () => {} });

/** A logger to this process's own stderr, for a daemon's entry (`env` is the daemon's environment). */
export function stderrLogger(env: NodeJS.ProcessEnv): Logger {
  return createLogger({ debug: debugEnabled(env), write: (line) => { process.stderr.write(line); } });
}

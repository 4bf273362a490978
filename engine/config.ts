/**
 * The engine's settings: a small `key = value` file and environment variables that override it.
 * The launcher (native/launcher.c) reads the `engine` key and CNIKIT_ENGINE itself; the engine
 * reads the rest when it starts. The engine gets only CNIKIT_ENGINE* variables from the call that
 * started it (launcher.c), so a call's CNI_* environment never leaks into it.
 *
 * File: /etc/cnikit/engine.conf, or the path in CNIKIT_ENGINE_CONF. `#` starts a comment.
 *   engine = on | nostart | off   on (default): calls use the engine and a call that finds none
 *                                 starts one; nostart: use a running engine, never start one
 *                                 (for hosts that start it themselves); off: every call is a
 *                                 fresh Node process.                      env: CNIKIT_ENGINE
 *   idle = SECONDS                exit after this long without a call (default 900, 0 = never)
 *                                                                          env: CNIKIT_ENGINE_IDLE
 *   log = PATH | -                append the engine's own events (start, exit and why) as JSON
 *                                 lines to PATH, or stderr; default: none  env: CNIKIT_ENGINE_LOG
 * Only in the environment: CNIKIT_ENGINE_PROFILE=DIR takes a V8 CPU profile of the engine from
 * start (or the last SIGUSR2) to exit into DIR/engine-PID.cpuprofile (for `npm run build` with
 * CNIKIT_BUILD_NAMES=1, whose bundles keep their function names).
 */
import { readFileSync } from 'node:fs';

export const DEFAULT_CONFIG_FILE = '/etc/cnikit/engine.conf';
export const DEFAULT_IDLE_SECONDS = 900;

export type EngineMode = 'on' | 'nostart' | 'off';

export interface EngineConfig {
  mode: EngineMode;
  idleSeconds: number;
  log: string | undefined;
  /** Where a CPU profile of this run goes (CNIKIT_ENGINE_PROFILE), if anywhere. */
  profileDir: string | undefined;
}

/** Reads `key = value` lines (the launcher's parser accepts the same). */
export function parseConfigText(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^\s*([^=\s#]+)\s*=\s*([^\s#]+)/.exec(line);
    if (m) out.set(m[1]!, m[2]!);
  }
  return out;
}

/** Returns the mode a value names, as the launcher reads it. */
export function parseMode(v: string): EngineMode {
  if (['off', '0', 'no', 'false'].includes(v)) return 'off';
  return v === 'nostart' ? 'nostart' : 'on';
}

/** Returns the settings for `env` (the engine's own environment). */
export function loadConfig(env: NodeJS.ProcessEnv): EngineConfig {
  let file = new Map<string, string>();
  try {
    file = parseConfigText(readFileSync(env.CNIKIT_ENGINE_CONF || DEFAULT_CONFIG_FILE, 'utf8'));
  } catch { /* no file: defaults */ }
  const pick = (envKey: string, key: string) => env[envKey] || file.get(key);
  const idle = Number(pick('CNIKIT_ENGINE_IDLE', 'idle') ?? DEFAULT_IDLE_SECONDS);
  return {
    mode: parseMode(pick('CNIKIT_ENGINE', 'engine') ?? 'on'),
    idleSeconds: Number.isFinite(idle) && idle >= 0 ? idle : DEFAULT_IDLE_SECONDS,
    log: pick('CNIKIT_ENGINE_LOG', 'log'),
    profileDir: env.CNIKIT_ENGINE_PROFILE || undefined,
  };
}

/**
 * FakeExec: an Exec that runs no process, for unit tests of the runtime (what cni's
 * pkg/invoke/fakes are to libcni). Each fake plugin is a function of the call it receives; every
 * call is recorded with its environment and its stdin decoded, so a test can assert the order of
 * the chain, the prevResult each plugin got and the variables it was given.
 *
 * Results go through the same decoding as a real plugin's stdout (parseResult at the call's
 * version), and a plugin fails by throwing, like a plugin printing its error object.
 */
import { join } from 'node:path';
import { CniCode, CniError } from '../pkg/cni/errors.ts';
import { type Result, parseResult } from '../pkg/cni/result.ts';
import { SUPPORTED_VERSIONS } from '../pkg/cni/version.ts';
import type { Exec, PluginCommand } from './exec.ts';

/** One call a fake plugin received. */
export interface FakeCall {
  type: string;
  file: string;
  command: PluginCommand;
  env: NodeJS.ProcessEnv;
  /** stdin, decoded. */
  conf: Record<string, unknown>;
  /** The version its result is decoded at. */
  version: string;
}

export interface FakePlugin {
  /** Its VERSION answer, or the error VERSION fails with. Default: every version cnikit implements. */
  versions?: string[] | Error;
  /**
   * Answers a call: for ADD the result as the plugin would print it (JSON-shaped), nothing for
   * the other verbs; throws to fail. Default: ADD prints its prevResult (or an empty result of
   * its version), as a chained plugin that changes nothing; the other verbs succeed.
   */
  handle?: (call: FakeCall) => unknown;
}

/** The fake's executables appear to live here. */
export const FAKE_BIN = '/fake/cni/bin';

export class FakeExec implements Exec {
  /** Every chain call, in order. */
  readonly calls: FakeCall[] = [];
  /** Every VERSION call: the plugin type and the cniVersion asked with. */
  readonly versionCalls: { type: string; cniVersion: string; env: NodeJS.ProcessEnv }[] = [];
  private readonly plugins: Record<string, FakePlugin>;

  constructor(plugins: Record<string, FakePlugin>) {
    this.plugins = plugins;
  }

  /** The calls of one command, as `type` strings (`['bridge', 'portmap']`). */
  order(command: PluginCommand): string[] {
    return this.calls.filter((c) => c.command === command).map((c) => c.type);
  }

  find(type: string, paths: string[]): string {
    if (!Object.hasOwn(this.plugins, type)) throw new CniError(CniCode.Internal, `failed to find plugin "${type}" in path [${paths.join(' ')}]`);
    return join(FAKE_BIN, type);
  }

  async exec(file: string, command: PluginCommand, env: NodeJS.ProcessEnv, stdin: Buffer, version: string): Promise<Result | undefined> {
    const type = this.typeOf(file);
    const call: FakeCall = { type, file, command, env, conf: JSON.parse(stdin.toString('utf8')) as Record<string, unknown>, version };
    this.calls.push(call);
    const handle = this.plugins[type]!.handle ?? passThrough;
    const out = await handle(call);
    if (command !== 'ADD') return undefined;
    if (out === undefined) throw new Error(`FakeExec: plugin "${type}" returned no result for ADD`);
    return parseResult(out, version, `result of ${file}`);
  }

  async version(file: string, env: NodeJS.ProcessEnv, cniVersion: string): Promise<string[]> {
    const type = this.typeOf(file);
    this.versionCalls.push({ type, cniVersion, env });
    const v = this.plugins[type]!.versions ?? [...SUPPORTED_VERSIONS];
    if (v instanceof Error) throw v;
    return v;
  }

  private typeOf(file: string): string {
    const type = file.slice(FAKE_BIN.length + 1);
    if (!file.startsWith(`${FAKE_BIN}/`) || !Object.hasOwn(this.plugins, type)) throw new Error(`FakeExec: ${file} was not found by this fake`);
    return type;
  }
}

function passThrough(call: FakeCall): unknown {
  if (call.command !== 'ADD') return undefined;
  return call.conf.prevResult ?? { cniVersion: call.conf.cniVersion };
}

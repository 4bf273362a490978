/**
 * The CNI protocol in one place: read CNI_* from the environment and the config from stdin,
 * check them as the Go skel does, dispatch to the plugin's handler, and print the result or the
 * error object. Plugins export handlers and never touch process.env, stdin or the exit code.
 *
 * Exit status: 0 on success; 1 with `{cniVersion, code, msg, details}` on stdout on failure.
 *
 * Everything a call reads, writes and talks to comes through its `Io`: the environment, stdin,
 * stdout/stderr and the kernel handles (`Io.kernel`: a fresh process's blocking sockets from its
 * entry, or a daemon's shared ones; released when the call ends). A daemon runs calls
 * concurrently with one Io each, and may offer services a fresh process does not have
 * (`Io.responders`: the engine hosts DNS responders).
 */
import { readFileSync, writeSync } from 'node:fs';
import { CniCode, CniError, describe } from './errors.ts';
import { type Result, formatResult } from './result.ts';
import { foldNetConfKeys } from './schema.ts';
import { goFieldNames } from './go-keys.ts';
import { LATEST_VERSION, SUPPORTED_VERSIONS, aboutText, atLeast, isSupported, parseVersion, versionReply } from './version.ts';
import { validateContainerId, validateIfName, validateNetworkName } from './validate.ts';
import { type Logger, createLogger, debugEnabled } from '../log.ts';
import { type CallKernel, type Kernel, noKernel } from '../kernel.ts';
import type { Attachment } from './attachment.ts';
import type { ResponderHost } from '../../responder/host.ts';

export type { Attachment } from './attachment.ts';

export type Command = 'ADD' | 'DEL' | 'CHECK' | 'STATUS' | 'GC' | 'VERSION';

/** The base of every config: what skel guarantees before a handler runs. */
export interface RawConf { cniVersion: string; name: string; [key: string]: unknown }

export interface CmdArgs {
  command: Command;
  containerId: string;
  /** Netns path; may be empty on DEL. */
  netns: string;
  ifName: string;
  /** Raw CNI_ARGS. */
  args: string;
  /** CNI_PATH split on ':'. */
  path: string[];
  stdinData: Buffer;
  /** stdin as parsed JSON; `cniVersion` defaulted to 0.1.0 when absent, as libcni does. */
  conf: RawConf;
  /** The environment to pass on to delegated plugins unchanged (but CNI_COMMAND). */
  env: NodeJS.ProcessEnv;
  /**
   * The executable this call came in through (dist/bin/<type> or an installed copy), after
   * nothing: '' when unknown. Delegation compares CNI_PATH lookups with it to run our own
   * plugins in-process.
   */
  self: string;
  /** This call's logger (stderr of the caller, debug per the caller's CNIKIT_DEBUG). */
  log: Logger;
  /**
   * Writes to the caller's stderr as it is (what an exec'd delegate prints there); omitted: this
   * process's stderr.
   */
  stderr?: (s: string) => void;
  /** This call's kernel handles (netlink per namespace, nftables, sysctls); see pkg/kernel.ts. */
  kernel: Kernel;
  /**
   * The process's offer to host DNS responders in-process (the warm engine's); absent in a
   * fresh plugin process, where dnsname starts a responder process (responder/host.ts).
   */
  responders?: ResponderHost;
}

export interface Plugin {
  /** One line shown when CNI_COMMAND is empty. */
  about: string;
  add(a: CmdArgs): Promise<Result>;
  del(a: CmdArgs): Promise<void>;
  check(a: CmdArgs): Promise<void>;
  status?(a: CmdArgs): Promise<void>;
  gc?(a: CmdArgs, valid: Attachment[]): Promise<void>;
}

/** Everything a call reads and writes: the process's own in a fresh process, a request's in a daemon. */
export interface Io {
  env: NodeJS.ProcessEnv;
  /** The executable the call came in through ('' when unknown); see CmdArgs.self. */
  self: string;
  readStdin(): Buffer;
  stdout(s: string): void;
  stderr(s: string): void;
  /**
   * The call's kernel handles, released by runPlugin when the call ends: processKernel() in a
   * fresh process of an executable that talks to the kernel (its entry passes it), a daemon's
   * own otherwise. Omitted: a kernel that refuses every request (host-local and dnsname need none).
   */
  kernel?: CallKernel;
  /** Passed to the call as CmdArgs.responders (a daemon that hosts DNS responders); omitted in a fresh process. */
  responders?: ResponderHost;
}

/** The Io of a fresh plugin process: its environment, argv[1], fds 0-2. */
export const processIo: Io = {
  env: process.env,
  self: process.argv[1] ?? '',
  readStdin: () => readFileSync(0),
  // Why writeSync: process.stdout builds a stream on first use, a few ms of start-up for one line.
  stdout: (s) => { writeSync(1, s); },
  stderr: (s) => { writeSync(2, s); },
};

const REQUIRED: Record<Exclude<Command, 'VERSION'>, string[]> = {
  ADD: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH'],
  DEL: ['CNI_CONTAINERID', 'CNI_IFNAME', 'CNI_PATH'],
  CHECK: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH'],
  STATUS: ['CNI_PATH'],
  GC: ['CNI_PATH'],
};

/**
 * Parses stdin into a RawConf, with the Go skel's codes: 6 for JSON, 7 for name, 1 for version.
 * Top-level keys are matched as Go matches them to types.NetConf (`"CNIVersion"`, `"Name"` work).
 */
export function parseStdinConf(data: Buffer): RawConf {
  let obj: unknown;
  try {
    obj = JSON.parse(data.toString('utf8'));
  } catch (err) {
    throw new CniError(CniCode.DecodingFailure, 'failed to parse network config', `stdin is not JSON: ${(err as Error).message}`);
  }
  if (!obj || typeof obj !== 'object' || Array.isArray(obj)) {
    throw new CniError(CniCode.DecodingFailure, 'failed to parse network config', 'stdin must be a JSON object');
  }
  const conf = foldNetConfKeys(obj as Record<string, unknown>);
  validateNetworkName(conf.name);
  // libcni's ConfigDecoder: a missing or empty cniVersion means 0.1.0.
  if (conf.cniVersion === undefined || conf.cniVersion === '') conf.cniVersion = '0.1.0';
  if (typeof conf.cniVersion !== 'string') throw new CniError(CniCode.DecodingFailure, 'invalid cniVersion', 'cniVersion must be a string like "1.0.0"');
  parseVersion(conf.cniVersion);
  if (!isSupported(conf.cniVersion)) {
    throw new CniError(CniCode.IncompatibleVersion, 'incompatible CNI versions', `config is ${JSON.stringify(conf.cniVersion)}, plugin supports [${SUPPORTED_VERSIONS.map((v) => `"${v}"`).join(' ')}]`);
  }
  return conf as RawConf;
}

/** An attachment's keys (Go's GCAttachment struct). */
const ATTACHMENT_KEYS = ['containerID', 'ifname'] as const;

/** Reads `cni.dev/valid-attachments` (or the spec 1.1.0 draft's `cni.dev/attachments`); absent = none. */
export function validAttachments(conf: RawConf): Attachment[] {
  const list = conf['cni.dev/valid-attachments'] ?? conf['cni.dev/attachments'];
  if (list === undefined) return [];
  if (!Array.isArray(list)) throw new CniError(CniCode.InvalidConfig, 'invalid network config', 'cni.dev/valid-attachments must be a list');
  return list.map((a, i) => {
    const o = (a && typeof a === 'object' && !Array.isArray(a) ? goFieldNames(ATTACHMENT_KEYS, a as Record<string, unknown>) : a) as Partial<Attachment>;
    if (typeof o?.containerID !== 'string' || typeof o.ifname !== 'string') {
      throw new CniError(CniCode.InvalidConfig, 'invalid network config', `cni.dev/valid-attachments[${i}] needs containerID and ifname`);
    }
    return { containerID: o.containerID, ifname: o.ifname };
  });
}

/** Runs one CNI command for `plugin` and returns the process exit code; releases the call's kernel handles at the end. */
export async function runPlugin(plugin: Plugin, io: Io = processIo): Promise<number> {
  const kernel: CallKernel = io.kernel ?? { ...noKernel, release: () => {} };
  try {
    return await run(plugin, io, kernel);
  } finally {
    kernel.release();
  }
}

async function run(plugin: Plugin, io: Io, kernel: Kernel): Promise<number> {
  const env = io.env;
  const command = env.CNI_COMMAND ?? '';
  let version = LATEST_VERSION;
  try {
    if (command === '') {
      io.stderr(aboutText(plugin.about));
      return 0;
    }
    if (command === 'VERSION') {
      io.stdout(versionReply(io.readStdin().toString('utf8')));
      return 0;
    }
    if (!Object.hasOwn(REQUIRED, command)) {
      throw new CniError(CniCode.InvalidEnv, `unknown CNI_COMMAND: ${command}`, 'CNI_COMMAND must be ADD, DEL, CHECK, STATUS, GC or VERSION');
    }
    const cmd = command as Exclude<Command, 'VERSION'>;
    const missing = REQUIRED[cmd].filter((k) => !env[k]);
    if (missing.length) throw new CniError(CniCode.InvalidEnv, `required env variables [${missing.join(',')}] missing`);
    const containerId = env.CNI_CONTAINERID ?? '';
    const ifName = env.CNI_IFNAME ?? '';
    if (cmd === 'ADD' || cmd === 'DEL' || cmd === 'CHECK') {
      validateContainerId(containerId);
      validateIfName(ifName);
    }
    let stdinData: Buffer;
    try {
      stdinData = io.readStdin();
    } catch (err) {
      throw new CniError(CniCode.IoFailure, 'error reading from stdin', describe(err));
    }
    const conf = parseStdinConf(stdinData);
    version = conf.cniVersion;
    if (cmd === 'CHECK' && !atLeast(version, '0.4.0')) {
      throw new CniError(CniCode.IncompatibleVersion, `config version "${version}" does not allow CHECK`, 'CHECK needs cniVersion 0.4.0 or later');
    }
    if ((cmd === 'GC' || cmd === 'STATUS') && !atLeast(version, '1.1.0')) {
      throw new CniError(CniCode.IncompatibleVersion, `config version "${version}" does not allow ${cmd}`, `${cmd} needs cniVersion 1.1.0 or later`);
    }
    const a: CmdArgs = {
      command: cmd, containerId, netns: env.CNI_NETNS ?? '', ifName, args: env.CNI_ARGS ?? '',
      path: (env.CNI_PATH ?? '').split(':').filter(Boolean), stdinData, conf, env,
      self: io.self, log: createLogger({ debug: debugEnabled(env), write: io.stderr }), stderr: io.stderr, kernel,
    };
    if (io.responders) a.responders = io.responders;
    switch (cmd) {
      case 'ADD': {
        const result = await plugin.add(a);
        io.stdout(JSON.stringify(formatResult(result, version)) + '\n');
        break;
      }
      case 'DEL': await plugin.del(a); break;
      case 'CHECK': await plugin.check(a); break;
      case 'STATUS': if (plugin.status) await plugin.status(a); break;
      case 'GC': if (plugin.gc) await plugin.gc(a, validAttachments(conf)); break;
    }
    return 0;
  } catch (err) {
    const e = err instanceof CniError ? err : new CniError(CniCode.Internal, err instanceof Error ? err.message : String(err), describe((err as Error)?.cause ?? undefined) || undefined);
    io.stdout(JSON.stringify(e.toJSON(version)) + '\n');
    if (!(err instanceof CniError) && env.CNIKIT_DEBUG) io.stderr(`${(err as Error)?.stack ?? String(err)}\n`);
    return 1;
  }
}


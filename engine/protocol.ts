/**
 * The wire protocol between a launcher (native/launcher.c) and the engine, both ends' names,
 * and a small client for status and stop requests (tests, and `cnikit engine status` to come).
 * The C side must match this file; nothing here depends on a plugin.
 *
 * Names (abstract unix sockets, so the kernel scopes them to the network namespace and they
 * vanish with the process that holds them):
 *   `\0cnikit/engine/<id>`           the engine of this netns and this build
 *   `\0cnikit/engine/<id>/starting`  held by the one launcher starting an engine, then by that
 *                                    engine until it listens
 * `<id>` is the FNV-1a 64 hash (16 hex digits) of the real path of the bundle directory
 * (dist/bin/.lib), so two checkouts in one namespace never serve each other's calls.
 *
 * Request (launcher -> engine):
 *   "CNKE" version kind; version 0x02 (0x01: the launchers of an earlier build, below)
 *   kind 'C' (a call): four fields, each u32 little-endian length + bytes:
 *       self (the path the call came in through), type, env ("K=V\0" entries), stdin
 *   kind 'S' (status) and 'Q' (stop: drain and exit): nothing more
 * The engine reads a request as far as its lengths say, and answers at once.
 * Reply (engine -> launcher): frames of u8 type + u32 LE length + payload:
 *   'a'  the engine will take the call on; payload: the CNI error line to print if the engine
 *        goes away before 'x'. Before an 'a' the launcher may still run the call itself.
 *   'o'  bytes for stdout      'e'  bytes for stderr      'x'  1 byte: the exit code
 * Confirmation (launcher -> engine, version 2): after the 'a', the one byte 'g', then the
 * launcher shuts its side down. The engine starts the call only when the 'g' has come: a
 * launcher that has given up waiting for the 'a' (an engine that is stopped or wedged) closes
 * instead, runs the call fresh itself, and the engine, whenever it gets to it, drops the call.
 * So a call never runs twice. A version 1 request (no confirmation: its launcher shuts its side
 * down after the request and waits without a limit) is started with its 'a'.
 * A request that is malformed or larger than MAX_REQUEST_BYTES, or from a caller that is not
 * root, gets a CNI error object on 'o' and exit code 1.
 */

/** The largest request the engine reads (launcher.c MAX_REQUEST); bigger calls run fresh. */
export const MAX_REQUEST_BYTES = 8 << 20;

/** The start of a request of this version (launcher.c sends the same). */
export const MAGIC = Buffer.from('CNKE\x02', 'latin1');
/** The confirmation a launcher sends after the 'a' (version 2). */
export const CONFIRM = 0x67; // 'g'

export type RequestKind = 'C' | 'S' | 'Q';
export type FrameType = 'a' | 'o' | 'e' | 'x';

/** Returns the engine id of a bundle directory (its real path): FNV-1a 64, hex. */
export function engineId(realLibDir: string): string {
  let h = 0xcbf29ce484222325n;
  for (const b of Buffer.from(realLibDir, 'utf8')) h = BigInt.asUintN(64, (h ^ BigInt(b)) * 0x100000001b3n);
  return h.toString(16).padStart(16, '0');
}

/** Returns the abstract socket name (with its leading NUL) that Node's net module takes as a path. */
export function engineSocketName(realLibDir: string, suffix: '' | '/starting' = ''): string {
  return `\0cnikit/engine/${engineId(realLibDir)}${suffix}`;
}

/** Encodes one reply frame. */
export function frame(type: FrameType, payload: Buffer | string): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
  const head = Buffer.alloc(5);
  head.write(type, 0, 'latin1');
  head.writeUInt32LE(body.length, 1);
  return Buffer.concat([head, body]);
}

/** A call as the engine receives it. */
export interface CallRequest {
  kind: 'C';
  /** 2: the launcher confirms after the ack; 1: an earlier launcher, started with the ack. */
  version: 1 | 2;
  self: string;
  type: string;
  env: Record<string, string>;
  stdin: Buffer;
}
export type Request = CallRequest | { kind: 'S' | 'Q' };

/** Why a request could not be read: the CNI error the engine answers with. */
export class RequestError extends Error {
  readonly oversized: boolean;
  constructor(msg: string, oversized = false) {
    super(msg);
    this.name = 'RequestError';
    this.oversized = oversized;
  }
}

/** Checks the magic and version as far as `buf` goes; returns the version once it is there. */
function checkMagic(buf: Buffer): 1 | 2 | undefined {
  const head = Math.min(buf.length, 4);
  const version = buf[4];
  if (!buf.subarray(0, head).equals(MAGIC.subarray(0, head)) || (version !== undefined && version !== 1 && version !== 2)) {
    throw new RequestError('not a cnikit engine request (bad magic or protocol version)');
  }
  return version as 1 | 2 | undefined;
}

/**
 * Returns how long the request starting `buf` is, once its lengths show it ({ total }), else how
 * many bytes it takes to learn more ({ need }). Throws a RequestError when the bytes cannot
 * start a valid request (bad magic, version or kind; over the size limit, known from the lengths
 * before the bytes arrive). Lets a reader wait for the whole request without parsing it twice.
 */
export function requestLength(buf: Buffer, limit = MAX_REQUEST_BYTES): { total: number } | { need: number } {
  checkMagic(buf);
  if (buf.length < 6) return { need: 6 };
  const kind = String.fromCharCode(buf[5]!);
  if (kind === 'S' || kind === 'Q') return { total: 6 };
  if (kind !== 'C') throw new RequestError(`unknown request kind ${JSON.stringify(kind)}`);
  let off = 6;
  for (let field = 0; field < 4; field++) {
    if (buf.length < off + 4) return { need: off + 4 };
    const len = buf.readUInt32LE(off);
    if (off + 4 + len > limit) throw new RequestError(`request larger than ${limit} bytes`, true);
    off += 4 + len;
  }
  return { total: off };
}

/**
 * Parses a request from the bytes received so far: undefined while it is incomplete, throws a
 * RequestError when it cannot become valid (bad magic, kind or env; over the size limit, which
 * is known from the lengths before the bytes arrive; bytes after its end).
 */
export function parseRequest(buf: Buffer, limit = MAX_REQUEST_BYTES): Request | undefined {
  const version = checkMagic(buf);
  const len = requestLength(buf, limit);
  if (!('total' in len) || buf.length < len.total) return undefined;
  if (buf.length > len.total) throw new RequestError('trailing bytes after the request');
  const kind = String.fromCharCode(buf[5]!);
  if (kind === 'S' || kind === 'Q') return { kind };
  const fields: Buffer[] = [];
  for (let off = 6; fields.length < 4;) {
    const n = buf.readUInt32LE(off);
    fields.push(buf.subarray(off + 4, off + 4 + n));
    off += 4 + n;
  }
  const [self, type, envBlock, stdin] = fields as [Buffer, Buffer, Buffer, Buffer];
  const env: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const entry of envBlock.toString('utf8').split('\0')) {
    if (!entry) continue;
    const eq = entry.indexOf('=');
    if (eq <= 0) throw new RequestError(`malformed environment entry ${JSON.stringify(entry.slice(0, 40))}`);
    env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  const t = type.toString('utf8');
  if (!/^[a-z0-9][a-z0-9._-]*$/.test(t)) throw new RequestError(`invalid plugin type ${JSON.stringify(t.slice(0, 40))}`);
  return { kind: 'C', version: version!, self: self.toString('utf8'), type: t, env, stdin: Buffer.from(stdin) };
}

/** Encodes a call request as a launcher does (tests use it to speak for a launcher). */
export function encodeCall(c: Omit<CallRequest, 'kind' | 'version'>, version: 1 | 2 = 2): Buffer {
  const env = Buffer.from(Object.entries(c.env).map(([k, v]) => `${k}=${v}\0`).join(''), 'utf8');
  const parts: Buffer[] = [MAGIC.subarray(0, 4), Buffer.from([version]), Buffer.from('C', 'latin1')];
  for (const f of [Buffer.from(c.self, 'utf8'), Buffer.from(c.type, 'utf8'), env, c.stdin]) {
    const len = Buffer.alloc(4);
    len.writeUInt32LE(f.length);
    parts.push(len, f);
  }
  return Buffer.concat(parts);
}

/** What a reply carried: the frames in order, decoded. */
export interface Reply {
  ack?: string;
  stdout: string;
  stderr: string;
  /** The exit code, or undefined when the engine closed before sending one. */
  code: number | undefined;
}

/** Decodes the frames of a complete reply (trailing partial frames are ignored). */
export function parseReply(buf: Buffer): Reply {
  const r: Reply = { stdout: '', stderr: '', code: undefined };
  let off = 0;
  while (off + 5 <= buf.length) {
    const type = String.fromCharCode(buf[off]!);
    const len = buf.readUInt32LE(off + 1);
    if (off + 5 + len > buf.length) break;
    const body = buf.subarray(off + 5, off + 5 + len);
    off += 5 + len;
    if (type === 'a') r.ack = body.toString('utf8');
    else if (type === 'o') r.stdout += body.toString('utf8');
    else if (type === 'e') r.stderr += body.toString('utf8');
    else if (type === 'x') r.code = body[0] ?? 1;
  }
  return r;
}

/**
 * Sends raw request bytes to the engine named `name` and resolves with its reply; undefined
 * when no engine listens or it does not answer within `timeoutMs`. A whole version 2 call is
 * confirmed after the ack, as a launcher does; anything else is sent and the side shut down.
 */
export async function engineExchange(name: string, request: Buffer, timeoutMs = 5000): Promise<Reply | undefined> {
  const net = await import('node:net');
  let confirm = false;
  try {
    const len = requestLength(request);
    confirm = request[4] === 2 && request[5] === 0x43 /* C */ && 'total' in len && len.total === request.length;
  } catch { /* malformed on purpose: sent as it is */ }
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let done = false;
    let size = 0;
    const finish = (r: Reply | undefined) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      resolve(r);
    };
    const s = net.connect({ path: name });
    const timer = setTimeout(() => finish(undefined), timeoutMs);
    s.on('connect', () => (confirm ? s.write(request) : s.end(request)));
    s.on('data', (d: Buffer) => {
      chunks.push(d);
      size += d.length;
      // The 'a' frame is the first: confirm once it is whole.
      if (confirm && size >= 5 && chunks[0]![0] === 0x61) {
        const all = Buffer.concat(chunks);
        if (all.length >= 5 + all.readUInt32LE(1)) {
          confirm = false;
          s.end(Buffer.from([CONFIRM]));
        }
      }
    });
    s.on('error', () => finish(chunks.length ? parseReply(Buffer.concat(chunks)) : undefined));
    s.on('close', () => finish(chunks.length ? parseReply(Buffer.concat(chunks)) : undefined));
  });
}

/** The engine's answer to a status request. */
export interface EngineStatus {
  pid: number;
  /** Seconds since the engine started. */
  uptime: number;
  /** Calls served since start (status and stop requests not counted). */
  calls: number;
  inFlight: number;
  /** Calls handed back to their launchers to run fresh (the caller sees other files: server.ts). */
  declined: number;
  /** Calls acknowledged but never confirmed: their launchers gave up waiting and ran them fresh. */
  dropped: number;
  /** Per `<type> <CNI_COMMAND>`: how many, and the median and 99th percentile in ms. */
  perCall: Record<string, { count: number; p50: number; p99: number }>;
  rss: number;
  /** The V8 heap: used and committed bytes, and memory outside it held by JS objects (buffers). */
  heap?: { used: number; total: number; external: number };
  /** Seconds of idleness after which it exits (0 = never). */
  idle: number;
  /** The bundle directory it serves. */
  lib: string;
  netns: string;
  /** The DNS responders it hosts (responder/in-process.ts): run and records directory, networks, names. */
  dns?: { runDir: string; recordsDir: string; networks: number; names: number; uptime: number }[];
}

/** Asks the engine named `name` for its status; undefined when none answers. */
export async function engineStatus(name: string, timeoutMs = 5000): Promise<EngineStatus | undefined> {
  const r = await engineExchange(name, Buffer.concat([MAGIC, Buffer.from('S', 'latin1')]), timeoutMs);
  if (r?.code !== 0) return undefined;
  try {
    return JSON.parse(r.stdout) as EngineStatus;
  } catch {
    return undefined;
  }
}

/**
 * CniError: the only error shape a plugin prints, with the spec's well-known codes.
 * `runPlugin()` (skel.ts) turns a CniError into `{cniVersion, code, msg, details}` on stdout and
 * anything else into code 999 with the cause chain in `details`.
 */

export const CniCode = {
  IncompatibleVersion: 1,
  UnsupportedField: 2,
  UnknownContainer: 3,
  InvalidEnv: 4,
  IoFailure: 5,
  DecodingFailure: 6,
  InvalidConfig: 7,
  InvalidNetns: 8,
  TryAgainLater: 11,
  NotAvailable: 50,
  NotAvailableLosingConnectivity: 51,
  Internal: 999,
} as const;
export type CniCode = (typeof CniCode)[keyof typeof CniCode];

/**
 * Why an error happened, for callers that act on it (the cnikit command picks its exit code and
 * hint from it). Set where the error is thrown; nothing ever derives it from message text, so
 * messages can be reworded freely. Plugins print no reason: it does not cross the CNI protocol.
 * - `config-not-found`: no network config of that name, or its file or directory cannot be read.
 * - `config-invalid`: a network config exists but cannot be used (JSON, shape, versions).
 * - `not-cached`: the attachment has no cached ADD result (nothing was added, or the cache is elsewhere).
 * - `permission`: the operation needs privileges the caller lacks (EPERM/EACCES).
 * - `plugin-not-found`: a plugin type is not in CNI_PATH.
 * - `conflict`: what was asked for is taken or in use (a network name, bridge, subnet or host
 *   port that exists; a network that still has attachments).
 * - `not-found`: the thing named does not exist (a container of `cnikit run`, an attachment of it).
 */
export type CniErrorReason = 'config-not-found' | 'config-invalid' | 'not-cached' | 'permission' | 'plugin-not-found' | 'conflict' | 'not-found';

export interface CniErrorOptions extends ErrorOptions {
  reason?: CniErrorReason;
}

export class CniError extends Error {
  readonly code: CniCode;
  readonly details: string | undefined;
  readonly reason: CniErrorReason | undefined;
  constructor(code: CniCode, msg: string, details?: string, options?: CniErrorOptions) {
    super(msg, options);
    this.name = 'CniError';
    this.code = code;
    this.details = details;
    this.reason = options?.reason;
  }

  /** The spec's error object. */
  toJSON(cniVersion: string): { cniVersion: string; code: number; msg: string; details?: string } {
    const out: { cniVersion: string; code: number; msg: string; details?: string } = { cniVersion, code: this.code, msg: this.message };
    if (this.details) out.details = this.details;
    return out;
  }
}

/** Shortcut for the most common failure: a config the plugin cannot use. */
export function invalidConfig(details: string): CniError {
  return new CniError(CniCode.InvalidConfig, 'invalid network config', details);
}

/** Renders an error and its `cause` chain as `a: b: c`. */
export function describe(err: unknown): string {
  const parts: string[] = [];
  let cur: unknown = err;
  for (let depth = 0; cur !== undefined && depth < 8; depth++) {
    if (cur instanceof CniError) parts.push(cur.details ? `${cur.message}: ${cur.details}` : cur.message);
    else if (cur instanceof Error) {
      const ext = (cur as { extack?: string }).extack;
      parts.push(ext ? `${cur.message} (${ext})` : cur.message);
    } else parts.push(String(cur));
    cur = cur instanceof Error ? cur.cause : undefined;
  }
  return parts.join(': ');
}

/** Renders an error in one line: a CniError's message and details (its cause chain is already in them), else describe(). */
export function errorText(err: unknown): string {
  if (err instanceof CniError) return err.details ? `${err.message}: ${err.details}` : err.message;
  return describe(err);
}

/**
 * Adds context the way bridge.go and netavark do: `failed to create bridge "cni0": <cause>`.
 * A CniError keeps its code and reason (the context goes in front of its details); anything
 * else becomes code 999 with the cause chain in details.
 */
export function wrap(err: unknown, context: string): CniError {
  if (err instanceof CniError) {
    return new CniError(err.code, context, err.details ? `${err.message}: ${err.details}` : err.message, { cause: err, reason: err.reason });
  }
  return new CniError(CniCode.Internal, context, describe(err), { cause: err });
}

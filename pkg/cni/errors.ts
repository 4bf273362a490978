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

export class CniError extends Error {
  readonly code: CniCode;
  readonly details: string | undefined;
  constructor(code: CniCode, msg: string, details?: string, options?: ErrorOptions) {
    super(msg, options);
    this.name = 'CniError';
    this.code = code;
    this.details = details;
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

/**
 * Adds context the way bridge.go and netavark do: `failed to create bridge "cni0": <cause>`.
 * A CniError keeps its code (the context goes in front of its details); anything else becomes
 * code 999 with the cause chain in details.
 */
export function wrap(err: unknown, context: string): CniError {
  if (err instanceof CniError) {
    return new CniError(err.code, context, err.details ? `${err.message}: ${err.details}` : err.message, { cause: err });
  }
  return new CniError(CniCode.Internal, context, describe(err), { cause: err });
}

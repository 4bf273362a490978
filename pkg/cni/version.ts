/** CNI spec versions: what we support and how they compare. */
import { CniCode, CniError } from './errors.ts';

export const SUPPORTED_VERSIONS = ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
export const LATEST_VERSION = '1.1.0';

/** Parses `major.minor.micro`; "" means 0.1.0, as libcni treats it. */
export function parseVersion(v: string): [number, number, number] {
  if (v === '') return [0, 1, 0];
  const m = /^(\d+)\.(\d+)\.(\d+)$/.exec(v);
  if (!m) throw new CniError(CniCode.DecodingFailure, `invalid version "${v}"`, 'a version has the form major.minor.micro');
  return [Number(m[1]), Number(m[2]), Number(m[3])];
}

/** Returns <0, 0, >0 as a is lower than, equal to, or higher than b. */
export function compareVersions(a: string, b: string): number {
  const x = parseVersion(a);
  const y = parseVersion(b);
  for (let i = 0; i < 3; i++) if (x[i]! !== y[i]!) return x[i]! - y[i]!;
  return 0;
}

export function atLeast(v: string, min: string): boolean {
  return compareVersions(v, min) >= 0;
}

export function isSupported(v: string): boolean {
  return (SUPPORTED_VERSIONS as readonly string[]).includes(v);
}

/** The VERSION reply: echoes the asked version (spec) and lists every version we speak. */
export function versionReply(stdin: string): string {
  let asked: string = LATEST_VERSION;
  try {
    const v = (JSON.parse(stdin || '{}') as { cniVersion?: unknown }).cniVersion;
    if (typeof v === 'string' && v !== '') asked = v;
  } catch { /* VERSION takes no config; an unreadable one just means "latest" */ }
  return JSON.stringify({ cniVersion: asked, supportedVersions: SUPPORTED_VERSIONS }) + '\n';
}

/** What a plugin prints on stderr when run with an empty CNI_COMMAND (by hand). */
export function aboutText(about: string): string {
  return `${about}\nCNI protocol versions supported: ${SUPPORTED_VERSIONS.join(', ')}\n`;
}

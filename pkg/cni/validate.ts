/** Checks on the attachment identity that the spec and libcni make before any work. */
import { CniCode, CniError } from './errors.ts';

const ID_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/**
 * Returns true when `s` is a valid container id or network name: a letter or digit, then
 * letters, digits, `_`, `.` and `-` (libcni's ValidateContainerID / ValidateNetworkName pattern).
 */
export function isValidId(s: string): boolean {
  return ID_RE.test(s);
}

/**
 * '/', ':' and exactly what Go's unicode.IsSpace calls space (the reference checks that):
 * JavaScript's \s differs, it lacks U+0085 (NEL) and includes U+FEFF.
 */
const BAD_IFNAME_CHAR = /[/:\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/;

/** Throws code 4 unless ifname is a usable Linux interface name (1-15 bytes, no / : or space, not . or ..). */
export function validateIfName(name: string): void {
  if (name === '') throw new CniError(CniCode.InvalidEnv, 'interface name is empty', 'set CNI_IFNAME, e.g. eth0');
  if (Buffer.byteLength(name) > 15) throw new CniError(CniCode.InvalidEnv, `interface name is too long`, `"${name}" has more than 15 bytes`);
  if (name === '.' || name === '..') throw new CniError(CniCode.InvalidEnv, 'interface name is . or ..', `CNI_IFNAME="${name}"`);
  if (BAD_IFNAME_CHAR.test(name)) throw new CniError(CniCode.InvalidEnv, 'interface name contains / or : or whitespace characters', `CNI_IFNAME="${name}"`);
}

/**
 * Throws code 4 unless id is a valid container id (`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`); an empty id
 * is code 3 (`missing containerID`), as libcni's ValidateContainerID has it.
 */
export function validateContainerId(id: string): void {
  if (id === '') throw new CniError(CniCode.UnknownContainer, 'missing containerID', 'set CNI_CONTAINERID');
  if (!isValidId(id)) throw new CniError(CniCode.InvalidEnv, 'invalid characters in containerID', `CNI_CONTAINERID="${id}" must match ${ID_RE.source}`);
}

/** Throws code 7 unless name is a valid network name. */
export function validateNetworkName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || name === '') throw new CniError(CniCode.InvalidConfig, 'missing network name', 'the config needs a "name"');
  if (!isValidId(name)) throw new CniError(CniCode.InvalidConfig, 'invalid network name', `"${name}" must match ${ID_RE.source}`);
}

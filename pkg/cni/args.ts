/**
 * CNI_ARGS (`K=V;K2=V2`) as libcni's LoadArgs reads it: each piece must split into exactly two
 * on `=`, keys are case-sensitive, and a key the plugin does not know is an error unless
 * `IgnoreUnknown` is 1/true.
 */
import { CniCode, CniError } from './errors.ts';

/** Parses CNI_ARGS into a map; `known` lists the keys this plugin understands. */
export function parseCniArgs(raw: string, known: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  if (!raw) return out;
  // An empty piece (`a=b;`, `a=b;;c=d`) is an invalid pair, as in LoadArgs.
  for (const pair of raw.split(';')) {
    const kv = pair.split('=');
    if (kv.length !== 2) throw new CniError(CniCode.InvalidEnv, `ARGS: invalid pair "${pair}"`, 'CNI_ARGS must be KEY=VALUE pairs separated by ";"');
    out.set(kv[0]!, kv[1]!);
  }
  const ignore = out.get('IgnoreUnknown');
  if (ignore !== undefined && !['1', 'true', '0', 'false'].includes(ignore.toLowerCase())) {
    throw new CniError(CniCode.InvalidEnv, `ARGS: IgnoreUnknown must be 1, true, 0 or false, not "${ignore}"`);
  }
  const ignoreUnknown = ignore === '1' || ignore?.toLowerCase() === 'true';
  if (!ignoreUnknown) {
    const unknown = [...out.keys()].filter((k) => k !== 'IgnoreUnknown' && !known.includes(k));
    if (unknown.length) throw new CniError(CniCode.InvalidEnv, `ARGS: unknown args [${unknown.join(' ')}]`, 'set IgnoreUnknown=1 in CNI_ARGS to pass keys this plugin does not use');
  }
  return out;
}

/** Keys the plugins of this suite read from CNI_ARGS, plus the ones Kubernetes always sends. */
export const KNOWN_CNI_ARGS = ['IP', 'MAC', 'K8S_POD_NAME', 'K8S_POD_NAMESPACE', 'K8S_POD_INFRA_CONTAINER_ID', 'K8S_POD_UID'] as const;

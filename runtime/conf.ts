/**
 * Network configuration loading for the runtime side, as libcni's conf.go does it: a network is
 * found by name in a directory (NETCONFPATH, default /etc/cni/net.d), first among `*.conflist`
 * files (sorted by name, first match wins), then among single-plugin `*.conf`/`*.json` files,
 * which are wrapped into a one-plugin list. A file that does not parse aborts the search, as in
 * libcni, and the error names the file and the field.
 *
 * Validation is zod (its /mini build: the same checks and messages as full zod, but full zod
 * with its locales tripled the cnikit bundle and cost ~40 ms per start). It checks the shape of
 * the list only; each plugin validates its own keys when it runs. It does not read libcni 1.3's
 * `<dir>/<network>/*.conf` side directories.
 *
 * Keys are matched as libcni matches them: the list's own keys (`name`, `cniVersion`,
 * `cniVersions`, `plugins`, `disableCheck`, `disableGC`) exactly, since libcni reads them from a
 * map; each plugin object, and a single-plugin file, case-insensitively as Go decodes them into
 * types.NetConf (`"Type"`, `"Capabilities"`; the capability names inside stay exact).
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { extname, join, resolve } from 'node:path';
import * as z from 'zod/mini';
import { CniCode, CniError } from '../pkg/cni/errors.ts';
import { foldNetConfKeys, formatIssues } from '../pkg/cni/schema.ts';
import { isValidId } from '../pkg/cni/validate.ts';
import { SUPPORTED_VERSIONS, compareVersions, isSupported } from '../pkg/cni/version.ts';

/** One plugin object of a list, with every key the admin wrote (passed on verbatim). */
export interface PluginConf {
  type: string;
  capabilities?: Record<string, boolean>;
  [key: string]: unknown;
}

/** A loaded network configuration list (libcni's NetworkConfigList). */
export interface NetworkConfigList {
  name: string;
  /** The version the list is run at before negotiation: the highest we implement of cniVersion ∪ cniVersions. */
  cniVersion: string;
  /** Every version the list declares that cnikit implements, highest first. */
  candidateVersions: string[];
  disableCheck: boolean;
  disableGC: boolean;
  plugins: PluginConf[];
  /** The raw bytes, cached base64 in the results cache as libcni does. */
  bytes: Buffer;
  /** The file it came from, for messages. */
  file: string;
}

const version = z.string().check(z.regex(/^\d+\.\d+\.\d+$/, 'expected a version like "1.0.0"'));
// libcni accepts the disable* flags as JSON booleans or as the strings "true"/"false".
const boolish = z.optional(z.union([z.boolean(), z.enum(['true', 'false'])], {
  error: 'expected true or false',
}));

const pluginSchema = z.looseObject({
  type: z.string({ error: (i) => (i.input === undefined ? 'missing: every plugin needs a "type"' : 'expected a string') })
    .check(z.minLength(1, 'must not be empty'), z.refine((t) => !t.includes('/'), 'must be a plugin name, not a path (no "/")')),
  capabilities: z.optional(z.record(z.string(), z.boolean({ error: 'capability values must be true or false' }))),
}, { error: 'expected a plugin object' });

const nameSchema = z.string({ error: (i) => (i.input === undefined ? 'missing: the network needs a "name"' : 'expected a string') })
  .check(z.refine(isValidId, 'must start with a letter or digit and hold only letters, digits, "_", "." and "-"'));

const listSchema = z.looseObject({
  cniVersion: z.optional(version),
  cniVersions: z.optional(z.array(version)),
  name: nameSchema,
  disableCheck: boolish,
  disableGC: boolish,
  plugins: z.array(pluginSchema, { error: (i) => (i.input === undefined ? 'missing: a conflist needs a "plugins" list' : 'expected a list') })
    .check(z.minLength(1, 'needs at least one plugin')),
});

const singleSchema = z.looseObject({
  cniVersion: z.optional(version),
  name: nameSchema,
  type: pluginSchema.shape.type,
  capabilities: pluginSchema.shape.capabilities,
});

function invalid(file: string, details: string, code: CniCode = CniCode.InvalidConfig): CniError {
  return new CniError(code, `invalid network config in ${file}`, details, { reason: 'config-invalid' });
}

function parseJson(file: string, bytes: Buffer): Record<string, unknown> {
  let obj: unknown;
  try {
    obj = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw invalid(file, `not valid JSON: ${(err as Error).message}`, CniCode.DecodingFailure);
  }
  if (!obj || typeof obj !== 'object' || Array.isArray(obj)) throw invalid(file, 'expected a JSON object at the top level', CniCode.DecodingFailure);
  return obj as Record<string, unknown>;
}

function asBool(v: boolean | 'true' | 'false' | undefined): boolean {
  return v === true || v === 'true';
}

/** Picks the versions we implement, highest first; explains when there is none. */
function candidates(file: string, declared: string[]): string[] {
  if (declared.length === 0) throw invalid(file, 'cniVersion: missing: add e.g. "cniVersion": "1.0.0"');
  const ok = [...new Set(declared.filter(isSupported))].sort((a, b) => compareVersions(b, a));
  if (ok.length === 0) {
    throw new CniError(CniCode.IncompatibleVersion, `incompatible CNI versions in ${file}`,
      `the config asks for [${declared.join(' ')}]; cnikit implements [${SUPPORTED_VERSIONS.join(' ')}]`, { reason: 'config-invalid' });
  }
  return ok;
}

/** Parses a conflist's bytes. `file` is used in messages only. */
export function parseConfList(bytes: Buffer, file = '<conflist>'): NetworkConfigList {
  const raw = parseJson(file, bytes);
  if (Array.isArray(raw.plugins)) raw.plugins = raw.plugins.map((p: unknown) => (p && typeof p === 'object' && !Array.isArray(p) ? foldNetConfKeys(p as Record<string, unknown>) : p));
  const r = listSchema.safeParse(raw);
  if (!r.success) throw invalid(file, formatIssues(r.error.issues, raw));
  const d = r.data;
  const declared = [...(d.cniVersions ?? []), ...(d.cniVersion ? [d.cniVersion] : [])];
  const cand = candidates(file, declared);
  return {
    name: d.name, cniVersion: cand[0]!, candidateVersions: cand,
    disableCheck: asBool(d.disableCheck), disableGC: asBool(d.disableGC),
    plugins: d.plugins as PluginConf[], bytes, file,
  };
}

/** Parses a single-plugin `.conf`/`.json` as a one-plugin network configuration list (libcni ConfListFromConf). */
export function parseConfAsList(bytes: Buffer, file = '<conf>'): NetworkConfigList {
  const raw = foldNetConfKeys(parseJson(file, bytes));
  const r = singleSchema.safeParse(raw);
  if (!r.success) throw invalid(file, formatIssues(r.error.issues, raw));
  const cand = candidates(file, r.data.cniVersion ? [r.data.cniVersion] : []);
  const list = { cniVersion: r.data.cniVersion, name: r.data.name, plugins: [raw] };
  return {
    name: r.data.name, cniVersion: cand[0]!, candidateVersions: cand, disableCheck: false, disableGC: false,
    plugins: [raw as PluginConf], bytes: Buffer.from(JSON.stringify(list)), file,
  };
}

/** Loads one file: a conflist when it has a `plugins` key (or the .conflist extension), else a single plugin config. */
export function loadConfFile(path: string): NetworkConfigList {
  const file = resolve(path);
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    throw new CniError(CniCode.IoFailure, `cannot read network config ${file}`, (err as Error).message, { cause: err, reason: 'config-not-found' });
  }
  if (extname(file) === '.conflist') return parseConfList(bytes, file);
  const raw = parseJson(file, bytes);
  return 'plugins' in raw ? parseConfList(bytes, file) : parseConfAsList(bytes, file);
}

function filesWith(dir: string, exts: string[]): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'ENOENT') return [];
    throw new CniError(CniCode.IoFailure, `cannot read network config directory ${dir}`, (err as Error).message, { cause: err, reason: 'config-not-found' });
  }
  return names.filter((n) => exts.includes(extname(n))).sort().map((n) => join(dir, n))
    .filter((p) => { try { return statSync(p).isFile(); } catch { return false; } });
}

/**
 * Finds network `name` in `dir` the way libcni's LoadConfList does. Throws CniError 7 naming
 * the file and field when a file is malformed, and a "not found" error listing what exists.
 */
export function loadNetwork(dir: string, name: string): NetworkConfigList {
  for (const file of filesWith(dir, ['.conflist'])) {
    const list = parseConfList(readFileSync(file), file);
    if (list.name === name) return list;
  }
  for (const file of filesWith(dir, ['.conf', '.json'])) {
    const list = parseConfAsList(readFileSync(file), file);
    if (list.name === name) return list;
  }
  const known = listNetworks(dir).map((l) => l.name);
  if (known.length === 0) {
    throw new CniError(CniCode.InvalidConfig, `no net configurations found in ${dir}`,
      'put a .conflist there (see conf/ in cnikit), or point NETCONFPATH / --netconf-path at a directory that has one', { reason: 'config-not-found' });
  }
  throw new CniError(CniCode.InvalidConfig, `no net configuration with name "${name}" in ${dir}`, `networks there: ${known.join(', ')}`, { reason: 'config-not-found' });
}

/**
 * Resolves what a user typed as the network: a name looked up in `dir`, or, when it contains a
 * "/" or ends in .conflist/.conf/.json, a path to a config file.
 */
export function resolveNetwork(dir: string, nameOrPath: string): NetworkConfigList {
  if (nameOrPath.includes('/') || ['.conflist', '.conf', '.json'].includes(extname(nameOrPath))) return loadConfFile(nameOrPath);
  return loadNetwork(dir, nameOrPath);
}

/** Lists every network in `dir` (conflists first, then single configs; first of a name wins). */
export function listNetworks(dir: string): NetworkConfigList[] {
  const out: NetworkConfigList[] = [];
  const seen = new Set<string>();
  for (const [exts, parse] of [[['.conflist'], parseConfList], [['.conf', '.json'], parseConfAsList]] as const) {
    for (const file of filesWith(dir, [...exts])) {
      const list = parse(readFileSync(file), file);
      if (!seen.has(list.name)) {
        seen.add(list.name);
        out.push(list);
      }
    }
  }
  return out;
}

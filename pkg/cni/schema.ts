/**
 * zod/mini helpers shared by every config schema: parse-or-CniError with messages that name the
 * field, and the pieces every plugin config has (cniVersion, name, type, prevResult, runtimeConfig).
 * zod/mini rather than full zod: it costs ~4 ms per exec instead of ~14 (docs/toolchain.md §3).
 *
 * `parseWith` reads its input as the reference plugins' Go encoding/json would (go-keys.ts:
 * object keys matched to the schema's fields exactly, else case-insensitively; records exact;
 * unknown keys ignored), so every plugin that parses through it is a drop-in for input written
 * for the Go plugins, such as containerd's `{"HostPort":8081}`.
 *
 * Import `* as z from 'zod/mini'` directly in each module and never re-export the namespace:
 * a re-exported namespace defeats esbuild's tree shaking and drags all of zod (430 KB, every
 * locale) into each plugin bundle, tripling its start-up time.
 */
import * as z from 'zod/mini';
import { CniCode, CniError } from './errors.ts';
import { goFieldNames, goKeys } from './go-keys.ts';

type Issue = { path: PropertyKey[]; code: string; message: string; expected?: unknown; input?: unknown; keys?: string[] };

function pathOf(path: PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out ? `.${String(p)}` : String(p);
  return out || '(config)';
}

/**
 * Turns zod issues into one readable line per problem: `ipam.ranges[0][0].subnet: expected
 * string, got number`. zod/mini carries no English messages (its default is "Invalid input"), so
 * a type error is spelled here from the issue's expected type and the value found at its path in
 * `input` (the data that was parsed); a message the schema gives itself (`{ error: ... }`) is kept.
 */
export function formatIssues(issues: readonly Issue[], input?: unknown): string {
  return issues.map((i) => {
    let why = i.message;
    if (i.code === 'invalid_type' && DEFAULT_MESSAGE.test(i.message)) {
      const v = 'input' in i ? i.input : valueAt(input, i.path);
      why = v === undefined ? `missing (expected ${String(i.expected)})` : `expected ${String(i.expected)}, got ${describeValue(v)}`;
    }
    else if (i.code === 'unrecognized_keys' && i.keys) why = `unknown keys ${i.keys.join(', ')}`;
    return `${pathOf(i.path)}: ${why}`;
  }).join('; ');
}

/** zod's own wording of a type error: "Invalid input" (zod/mini), with the types when a locale is loaded. */
const DEFAULT_MESSAGE = /^Invalid input(: expected \w+, received \w+)?$/;

function valueAt(data: unknown, path: readonly PropertyKey[]): unknown {
  let v = data;
  for (const p of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<PropertyKey, unknown>)[p];
  }
  return v;
}

function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

/**
 * Parses `data` with `schema`, its keys matched to the schema's fields as Go's encoding/json
 * matches them (go-keys.ts); on failure throws CniError(code, msg) naming each bad field (by the
 * schema's name for it). `data` itself is not modified.
 */
export function parseWith<T extends z.ZodMiniType>(schema: T, data: unknown, msg = 'invalid network config', code: CniCode = CniCode.InvalidConfig): z.infer<T> {
  const input = goKeys(schema, data);
  const r = schema.safeParse(input);
  if (!r.success) throw new CniError(code, msg, formatIssues(r.error.issues as unknown as Issue[], input));
  return r.data as z.infer<T>;
}

/** Keys every network config may carry; plugins extend this with their own. */
export const netConfBase = {
  cniVersion: z.optional(z.string()),
  name: z.string(),
  type: z.optional(z.string()),
  // A map in Go's types.NetConf: an object (or null), whose keys each plugin reads with parsePrevResult.
  prevResult: z.optional(z.nullable(z.record(z.string(), z.unknown()))),
  runtimeConfig: z.optional(z.record(z.string(), z.unknown())),
  args: z.optional(z.record(z.string(), z.unknown())),
  dns: z.optional(z.object({
    nameservers: z.optional(z.array(z.string())),
    domain: z.optional(z.string()),
    search: z.optional(z.array(z.string())),
    options: z.optional(z.array(z.string())),
  })),
};

const NETCONF_KEYS = ['cniVersion', 'name', 'type', 'capabilities', 'ipam', 'dns', 'prevResult', 'runtimeConfig', 'args', 'cni.dev/valid-attachments', 'cni.dev/attachments'] as const;

/**
 * Returns `conf` with its top-level keys matched as Go matches them to types.NetConf and the
 * fields every plugin declares beside it (cniVersion, name, type, capabilities, ipam, dns,
 * prevResult, runtimeConfig, args, cni.dev/valid-attachments): `{"Name":"n","CNIVersion":"1.0.0"}`
 * is read as the reference's skel reads it. Values are left as they are; each plugin's
 * parseWith matches the keys inside them against its own schema.
 */
export function foldNetConfKeys(conf: Record<string, unknown>): Record<string, unknown> {
  return goFieldNames(NETCONF_KEYS, conf);
}

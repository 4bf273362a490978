/**
 * zod/mini helpers shared by every config schema: parse-or-CniError with messages that name the
 * field, and the pieces every plugin config has (cniVersion, name, type, prevResult, runtimeConfig).
 * zod/mini rather than full zod: it costs ~4 ms per exec instead of ~14 (docs/toolchain.md §3).
 *
 * Import `* as z from 'zod/mini'` directly in each module and never re-export the namespace:
 * a re-exported namespace defeats esbuild's tree shaking and drags all of zod (430 KB, every
 * locale) into each plugin bundle, tripling its start-up time.
 */
import * as z from 'zod/mini';
import { CniCode, CniError } from './errors.ts';

type Issue = { path: PropertyKey[]; code: string; message: string; expected?: unknown; input?: unknown; keys?: string[] };

function pathOf(path: PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out ? `.${String(p)}` : String(p);
  return out || '(config)';
}

/** Turns zod issues into one readable line per problem: `ipam.ranges[0][0].subnet: expected string`. */
export function formatIssues(issues: readonly Issue[]): string {
  return issues.map((i) => {
    let why = i.message;
    if (i.code === 'invalid_type') {
      // zod reports `input` only with reportInput; otherwise its message says "received <type>".
      const got = 'input' in i ? describeValue(i.input) : (/received (\w+)/.exec(i.message)?.[1] ?? 'something else');
      why = `expected ${String(i.expected)}, got ${got === 'undefined' ? 'nothing' : got}`;
    }
    else if (i.code === 'unrecognized_keys' && i.keys) why = `unknown keys ${i.keys.join(', ')}`;
    return `${pathOf(i.path)}: ${why}`;
  }).join('; ');
}

function describeValue(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

/** Parses `data` with `schema`; on failure throws CniError(code, msg) naming each bad field. */
export function parseWith<T extends z.ZodMiniType>(schema: T, data: unknown, msg = 'invalid network config', code: CniCode = CniCode.InvalidConfig): z.infer<T> {
  const r = schema.safeParse(data);
  if (!r.success) throw new CniError(code, msg, formatIssues(r.error.issues as unknown as Issue[]));
  return r.data as z.infer<T>;
}

/** Keys every network config may carry; plugins extend this with their own. */
export const netConfBase = {
  cniVersion: z.optional(z.string()),
  name: z.string(),
  type: z.optional(z.string()),
  prevResult: z.optional(z.unknown()),
  runtimeConfig: z.optional(z.record(z.string(), z.unknown())),
  args: z.optional(z.record(z.string(), z.unknown())),
  dns: z.optional(z.object({
    nameservers: z.optional(z.array(z.string())),
    domain: z.optional(z.string()),
    search: z.optional(z.array(z.string())),
    options: z.optional(z.array(z.string())),
  })),
};


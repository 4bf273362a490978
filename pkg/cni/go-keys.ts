/**
 * Go's encoding/json key matching, applied to parsed JSON before a zod/mini schema checks it, so
 * that every input the reference plugins decode into Go structs is read the way they read it
 * (docs/cni-notes.md §13). containerd, for one, sends `{"HostPort":8081,"ContainerPort":80}`
 * (Go field names, no JSON tags) where the portmap config says `hostPort`.
 *
 * The rule, for each JSON object the schema describes as an object (a Go struct):
 * - a key equal to a field's name goes to that field;
 * - else a key equal to a field's name under Unicode simple case folding (Go's `bytes.EqualFold`:
 *   `HOSTPORT`, `hostport`, `ho\u017ftPort` with the long s, `\u212a` the Kelvin sign for `k`)
 *   goes to the first such field in declaration order;
 * - keys are taken in document order, so when two keys reach one field the last one wins;
 * - a key that matches no field is left as it is (the schema ignores it, or keeps it when loose).
 * A record (a Go map: tuning's `sysctl`, `capabilities`, dnsname's aliases by network) keeps its
 * keys exactly; its values, array elements, optional/nullable/default wrappers, pipes, unions and
 * intersections are walked through to the objects inside.
 *
 * The walk copies only the objects and arrays it changes and returns the input itself when
 * nothing needs renaming (the common case: every key exact). It does not check types (the schema
 * does) and does not model Go's handling of `null` or of embedded structs. One difference from Go
 * it cannot see: a key written twice in one object (`{"a":1,"A":2,"a":3}`) reaches it once,
 * JSON.parse having kept the last value at the first position.
 */
import type * as z from 'zod/mini';

/** The parts of a zod/mini schema definition the walk reads (`schema._zod.def`). */
interface Def {
  type: string;
  shape?: Record<string, z.ZodMiniType>;
  catchall?: z.ZodMiniType;
  innerType?: z.ZodMiniType;
  element?: z.ZodMiniType;
  items?: z.ZodMiniType[];
  rest?: z.ZodMiniType | null;
  valueType?: z.ZodMiniType;
  options?: z.ZodMiniType[];
  in?: z.ZodMiniType;
  left?: z.ZodMiniType;
  right?: z.ZodMiniType;
  getter?: () => z.ZodMiniType;
}

const defOf = (s: z.ZodMiniType): Def => (s as unknown as { _zod: { def: Def } })._zod.def;

/** The fields of an object schema (or of the object options of a union, or both sides of an intersection). */
interface Fields {
  /** Field name -> its schema (undefined: only the name matters, the value is not walked). */
  shape: Record<string, z.ZodMiniType | undefined>;
  catchall: z.ZodMiniType | undefined;
  /** ASCII-upper-cased name -> first field in declaration order, when every name is ASCII. */
  folded: Map<string, string> | undefined;
  /** Field names in declaration order (for the general comparison when some name is not ASCII). */
  names: string[];
}

const fieldsCache = new WeakMap<object, Fields | null>();

const isAscii = (s: string): boolean => !/[^\x00-\x7f]/.test(s);

/** Collects the object fields a schema describes, through wrappers; null when it is no object. */
function fieldsOf(s: z.ZodMiniType): Fields | null {
  const def = defOf(s);
  const cached = fieldsCache.get(def);
  if (cached !== undefined) return cached;
  let shape: Record<string, z.ZodMiniType | undefined> | undefined;
  let catchall: z.ZodMiniType | undefined;
  const merge = (f: Fields | null) => {
    if (!f) return;
    shape ??= {};
    for (const [k, v] of Object.entries(f.shape)) if (!Object.hasOwn(shape, k)) shape[k] = v;
    catchall ??= f.catchall;
  };
  switch (def.type) {
    case 'object': shape = { ...def.shape }; catchall = def.catchall; break;
    case 'union': for (const o of def.options ?? []) merge(fieldsOf(o)); break;
    case 'intersection': merge(fieldsOf(def.left!)); merge(fieldsOf(def.right!)); break;
    default: {
      const inner = innerOf(def);
      if (inner) merge(fieldsOf(inner));
    }
  }
  const out = shape ? fieldsFrom(shape, catchall) : null;
  fieldsCache.set(def, out);
  return out;
}

function fieldsFrom(shape: Record<string, z.ZodMiniType | undefined>, catchall: z.ZodMiniType | undefined): Fields {
  const names = Object.keys(shape);
  let folded: Map<string, string> | undefined;
  if (names.every(isAscii)) {
    folded = new Map();
    for (const n of names) {
      const k = n.toUpperCase();
      if (!folded.has(k)) folded.set(k, n);
    }
  }
  return { shape, catchall, folded, names };
}

/** The schema a wrapper applies to the same value (optional, nullable, default, pipe input, lazy...). */
function innerOf(def: Def): z.ZodMiniType | undefined {
  switch (def.type) {
    case 'optional': case 'nullable': case 'default': case 'prefault': case 'nonoptional':
    case 'catch': case 'readonly': case 'success':
      return def.innerType;
    case 'pipe': return def.in;
    case 'lazy': return def.getter?.();
    default: return undefined;
  }
}

/** The first schema of kind `type` (array, record, tuple) a schema describes, through wrappers and unions. */
function findKind(s: z.ZodMiniType, type: string, depth = 0): z.ZodMiniType | undefined {
  const def = defOf(s);
  if (def.type === type) return s;
  if (depth > 16) return undefined;
  if (def.type === 'union') {
    for (const o of def.options ?? []) {
      const f = findKind(o, type, depth + 1);
      if (f) return f;
    }
    return undefined;
  }
  if (def.type === 'intersection') return findKind(def.left!, type, depth + 1) ?? findKind(def.right!, type, depth + 1);
  const inner = innerOf(def);
  return inner ? findKind(inner, type, depth + 1) : undefined;
}

/**
 * Folds a key for comparison with ASCII field names: ASCII upper-cased, and the only two other
 * runes whose fold orbit holds an ASCII letter (U+017F ſ -> S, U+212A Kelvin sign -> K) mapped to
 * it; undefined when the key holds any other non-ASCII rune (it can equal no ASCII name).
 */
function foldForAscii(key: string): string | undefined {
  if (isAscii(key)) return key.toUpperCase();
  let out = '';
  for (const ch of key) {
    if (ch === '\u017f') out += 'S';
    else if (ch === '\u212a') out += 'K';
    else if (ch.charCodeAt(0) < 0x80) out += ch.toUpperCase();
    else return undefined;
  }
  return out;
}

/**
 * Returns true when `a` and `b` are equal under Unicode simple case folding, as Go's
 * `bytes.EqualFold` (and encoding/json's key matching) decides. The non-ASCII comparison is a
 * regular expression with the `iu` flags, which ECMAScript defines by the same simple case
 * folding (CaseFolding.txt, statuses C and S); checked against Go 1.19 for every code point of
 * Unicode 13 (characters added later fold as in Node's Unicode).
 */
export function equalFold(a: string, b: string): boolean {
  if (a === b) return true;
  const x = [...a];
  const y = [...b];
  if (x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) {
    const p = x[i]!;
    const q = y[i]!;
    if (p === q) continue;
    if (p.charCodeAt(0) < 0x80 && q.charCodeAt(0) < 0x80) {
      if (p.toUpperCase() !== q.toUpperCase()) return false;
      continue;
    }
    if (!new RegExp(`^\\u{${p.codePointAt(0)!.toString(16)}}$`, 'iu').test(q)) return false;
  }
  return true;
}

function fieldFor(f: Fields, key: string): string | undefined {
  if (Object.hasOwn(f.shape, key)) return key;
  if (f.folded) {
    const k = foldForAscii(key);
    return k === undefined ? undefined : f.folded.get(k);
  }
  return f.names.find((n) => equalFold(n, key));
}

function setKey(o: Record<string, unknown>, k: string, v: unknown): void {
  // A JSON key "__proto__" is an own property after JSON.parse; assignment would set the prototype.
  if (k === '__proto__') Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
  else o[k] = v;
}

function walkObject(f: Fields, v: Record<string, unknown>, depth: number): Record<string, unknown> {
  const keys = Object.keys(v);
  const targets: string[] = new Array(keys.length);
  const values: unknown[] = new Array(keys.length);
  let changed = false;
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i]!;
    const field = fieldFor(f, k);
    const sub = field !== undefined ? f.shape[field] : f.catchall;
    const val = v[k];
    const nv = sub ? walk(sub, val, depth + 1) : val;
    targets[i] = field ?? k;
    values[i] = nv;
    if (targets[i] !== k || nv !== val) changed = true;
  }
  if (!changed) return v;
  const out: Record<string, unknown> = {};
  for (let i = 0; i < keys.length; i++) setKey(out, targets[i]!, values[i]);
  return out;
}

function walkArray(element: (i: number) => z.ZodMiniType | undefined, v: unknown[], depth: number): unknown[] {
  let out: unknown[] | undefined;
  for (let i = 0; i < v.length; i++) {
    const s = element(i);
    if (!s) continue;
    const nv = walk(s, v[i], depth + 1);
    if (nv !== v[i]) (out ??= [...v])[i] = nv;
  }
  return out ?? v;
}

function walk(s: z.ZodMiniType, v: unknown, depth: number): unknown {
  // Deeper than any config; JSON.parse output has no cycles, this only bounds the work.
  if (depth > 64 || v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) {
    const arr = findKind(s, 'array');
    if (arr) {
      const el = defOf(arr).element!;
      return walkArray(() => el, v, depth);
    }
    const tup = findKind(s, 'tuple');
    if (tup) {
      const d = defOf(tup);
      return walkArray((i) => d.items?.[i] ?? d.rest ?? undefined, v, depth);
    }
    return v;
  }
  const f = fieldsOf(s);
  if (f) return walkObject(f, v as Record<string, unknown>, depth);
  const rec = findKind(s, 'record');
  if (rec) {
    const vt = defOf(rec).valueType!;
    const o = v as Record<string, unknown>;
    let out: Record<string, unknown> | undefined;
    for (const k of Object.keys(o)) {
      const nv = walk(vt, o[k], depth + 1);
      if (nv !== o[k]) {
        if (!out) {
          out = {};
          for (const j of Object.keys(o)) setKey(out, j, o[j]);
        }
        setKey(out, k, nv);
      }
    }
    return out ?? o;
  }
  return v;
}

/**
 * Returns `obj` with its own keys renamed to `names` as Go matches keys to struct fields, its
 * values untouched: for the few places that only need a struct's key names (skel's top level),
 * without building a schema. `obj` is never modified.
 */
export function goFieldNames(names: readonly string[], obj: Record<string, unknown>): Record<string, unknown> {
  let f = namesCache.get(names);
  if (!f) namesCache.set(names, f = fieldsFrom(Object.fromEntries(names.map((n) => [n, undefined])), undefined));
  return walkObject(f, obj, 0);
}

const namesCache = new WeakMap<readonly string[], Fields>();

/**
 * Returns `data` with its object keys renamed to the fields of `schema` the way Go's
 * encoding/json matches keys to struct fields (exact, else case-folded; see the top of this
 * file). Objects and arrays are copied only where something changes; `data` is never modified.
 */
export function goKeys(schema: z.ZodMiniType, data: unknown): unknown {
  return walk(schema, data, 0);
}

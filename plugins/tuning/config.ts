/**
 * The tuning plugin's config (docs/cni-notes.md §10.1): the reference's keys in a zod/mini
 * schema, their overrides resolved with the reference's precedence, and every check made before
 * anything is touched. What comes out is what ADD or CHECK applies: each setting with the key it
 * came from, so that an error can name it.
 *
 * Precedence (observed in the reference): `args.cni.X` overrides the top-level `X`; for the MAC,
 * `args.cni.mac` > `runtimeConfig.mac` (capability `mac`) > CNI_ARGS `MAC` > `mac`;
 * `args.cni.sysctl` is merged into `sysctl`, replacing the entries that name the same file.
 *
 * Where the reference fails badly, this refuses clearly (code 7, naming the key, nothing changed):
 * sysctl values that are not strings, a key written twice in `sysctl` (as main does), two keys of
 * one map naming the same file, `args.cni.sysctl` without a top-level `sysctl` (the reference
 * panics: it merges into a nil map), a MAC no interface can take (multicast, zero), an MTU or
 * txQLen that is not a non-negative integer, a relative `dataDir`.
 *
 * Our one extra key, `sysctlAllowlist`, names an allowlist file honoured on top of the
 * reference's fixed /etc/cni/tuning/allowlist.conf (see sysctl.ts): it can only narrow what the
 * admin's file allows, never widen it, since a network config must not be able to lift the
 * policy written to restrict network configs.
 *
 * DEL takes only `dataDir` from the config (delDataDir), so that no config it cannot use makes
 * it fail.
 */
import { isAbsolute } from 'node:path';
import * as z from 'zod/mini';
import { KNOWN_CNI_ARGS, parseCniArgs } from '../../pkg/cni/args.ts';
import { invalidConfig } from '../../pkg/cni/errors.ts';
import { type Result, parsePrevResult } from '../../pkg/cni/result.ts';
import { netConfBase, parseWith } from '../../pkg/cni/schema.ts';
import type { CmdArgs } from '../../pkg/cni/skel.ts';
import { duplicateSysctlKey } from './json-keys.ts';
import { type Allowlist, DEFAULT_ALLOWLIST, checkAllowed, readAllowlist, sysctlPath } from './sysctl.ts';

/** Where restore files live unless `dataDir` says otherwise (the reference's default). */
export const DEFAULT_DATA_DIR = '/run/cni/tuning';

/** Go's pointer fields: absent and null both mean "not set". */
const opt = <T extends z.ZodMiniType>(s: T) => z.optional(z.nullable(s));
const sysctlMap = z.record(z.string(), z.string());

const linkKeys = {
  mac: opt(z.string()),
  promisc: opt(z.boolean()),
  mtu: opt(z.number()),
  allmulti: opt(z.boolean()),
  txQLen: opt(z.number()),
};

const schema = z.object({
  ...netConfBase,
  dataDir: opt(z.string()),
  sysctl: opt(sysctlMap),
  sysctlAllowlist: opt(z.string()),
  ...linkKeys,
  runtimeConfig: opt(z.looseObject({ mac: opt(z.string()) })),
  args: opt(z.looseObject({ cni: opt(z.looseObject({ sysctl: opt(sysctlMap), ...linkKeys })) })),
});

/** DEL's view of the config: `dataDir`, whatever else is there. */
const delSchema = z.looseObject({ dataDir: z.optional(z.unknown()) });

/** A setting and the key it came from (`mtu`, `args.cni.mtu`, `sysctl["net.ipv4.ip_forward"]`, `CNI_ARGS MAC`). */
export interface Setting<T> {
  value: T;
  key: string;
}

/** One sysctl to set: the key as written, the file it names under /proc/sys, the value. */
export interface SysctlSetting {
  key: string;
  /** `sysctl["…"]` or `args.cni.sysctl["…"]`. */
  source: string;
  path: string;
  value: string;
}

export interface TuningConf {
  name: string;
  cniVersion: string;
  dataDir: string;
  /** In the order written (config, then args.cni additions). */
  sysctls: SysctlSetting[];
  /** Lowercase, colon-separated. */
  mac?: Setting<string>;
  /** Only true acts: false never turns promiscuous mode off (as the reference). */
  promisc?: Setting<true>;
  mtu?: Setting<number>;
  allmulti?: Setting<boolean>;
  txQLen?: Setting<number>;
  /** Required on ADD and CHECK (a chained plugin). */
  prevResult: Result;
}

/** Tells whether the config asks for a change of the link itself (not only sysctls). */
export function changesLink(c: TuningConf): boolean {
  return Boolean(c.mac || c.promisc || c.mtu || c.allmulti || c.txQLen);
}

/**
 * Parses a MAC address in the forms Go's net.ParseMAC takes (`0a:58:…`, `0a-58-…`,
 * `0a58.0a4d.0005`; 6, 8 or 20 octets) into lowercase colon form; undefined when it is none.
 */
export function parseMac(s: string): string | undefined {
  let octets: string[];
  if (/^([0-9a-fA-F]{4}\.)+[0-9a-fA-F]{4}$/.test(s)) octets = s.split('.').flatMap((g) => [g.slice(0, 2), g.slice(2)]);
  else if (/^[0-9a-fA-F]{2}([:-][0-9a-fA-F]{2})+$/.test(s) && !(s.includes(':') && s.includes('-'))) octets = s.split(/[:-]/);
  else return undefined;
  return [6, 8, 20].includes(octets.length) ? octets.join(':').toLowerCase() : undefined;
}

function macSetting(raw: string, key: string): Setting<string> {
  const mac = parseMac(raw);
  if (!mac) throw invalidConfig(`${key}: ${JSON.stringify(raw)} is not a MAC address (like 0a:58:0a:4d:00:05)`);
  const octets = mac.split(':').map((h) => parseInt(h, 16));
  // An Ethernet interface takes only a unicast, non-zero address (the kernel's is_valid_ether_addr).
  if (octets.length === 6 && (octets[0]! & 1)) throw invalidConfig(`${key}: ${mac} is a multicast address; an interface needs a unicast one`);
  if (octets.every((o) => o === 0)) throw invalidConfig(`${key}: ${mac} is the zero address`);
  return { value: mac, key };
}

function u32Setting(v: number, key: string): Setting<number> {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw invalidConfig(`${key}: must be a non-negative integer, got ${v}`);
  return { value: v, key };
}

function sysctlSettings(map: Record<string, string>, where: string, ifName: string): SysctlSetting[] {
  const out: SysctlSetting[] = [];
  for (const [key, value] of Object.entries(map)) {
    const s: SysctlSetting = { key, source: `${where}[${JSON.stringify(key)}]`, path: sysctlPath(key, ifName, where), value };
    const twin = out.find((o) => o.path === s.path);
    if (twin) throw invalidConfig(`${twin.source} and ${s.source} both name /proc/sys/${s.path}`);
    out.push(s);
  }
  return out;
}

/** What parseTuningConf checks beyond the config itself. */
export interface ParseOptions {
  /** Check the sysctls against the allowlists (ADD only, as the reference). */
  allowlist: boolean;
}

/**
 * Parses and checks the config of an ADD or CHECK call, CNI_ARGS included; throws CniError 7
 * naming the key (4 for CNI_ARGS, 5 for an unreadable allowlist). Reads the allowlist files
 * when asked, touches nothing.
 */
export function parseTuningConf(a: CmdArgs, o: ParseOptions): TuningConf {
  const dup = duplicateSysctlKey(a.stdinData.toString('utf8'));
  if (dup !== undefined) throw invalidConfig(`sysctl: duplicated sysctl keys are not allowed (${JSON.stringify(dup)} is written twice)`);
  const c = parseWith(schema, a.conf);
  const cniVersion = c.cniVersion ?? '0.1.0';
  const cni = c.args?.cni ?? undefined;
  const env = parseCniArgs(a.args, KNOWN_CNI_ARGS);

  const dataDir = c.dataDir || DEFAULT_DATA_DIR;
  if (!isAbsolute(dataDir)) throw invalidConfig(`dataDir: "${dataDir}" must be an absolute path`);
  if (cni?.sysctl && !c.sysctl) {
    throw invalidConfig('args.cni.sysctl: needs a top-level "sysctl" to merge into (an empty {} will do)');
  }
  const sysctls = sysctlSettings(c.sysctl ?? {}, 'sysctl', a.ifName);
  for (const s of sysctlSettings(cni?.sysctl ?? {}, 'args.cni.sysctl', a.ifName)) {
    const i = sysctls.findIndex((x) => x.path === s.path);
    if (i >= 0) sysctls[i] = s;
    else sysctls.push(s);
  }

  const out: TuningConf = { name: c.name, cniVersion, dataDir, sysctls, prevResult: { cniVersion } };
  const envMac = env.get('MAC');
  const mac = cni?.mac ? ['args.cni.mac', cni.mac] : c.runtimeConfig?.mac ? ['runtimeConfig.mac', c.runtimeConfig.mac]
    : envMac ? ['CNI_ARGS MAC', envMac] : c.mac ? ['mac', c.mac] : undefined;
  if (mac) out.mac = macSetting(mac[1]!, mac[0]!);
  const pick = <K extends keyof typeof linkKeys>(k: K) => (cni?.[k] ?? undefined) !== undefined ? { v: cni![k], key: `args.cni.${k}` } : { v: c[k], key: k };
  const promisc = pick('promisc');
  if (promisc.v === true) out.promisc = { value: true, key: promisc.key };
  const mtu = pick('mtu');
  // mtu 0 is "not set" (Go's omitempty int); txQLen is a pointer, so 0 is a length.
  if (typeof mtu.v === 'number' && mtu.v !== 0) out.mtu = u32Setting(mtu.v, mtu.key);
  const allmulti = pick('allmulti');
  if (typeof allmulti.v === 'boolean') out.allmulti = { value: allmulti.v, key: allmulti.key };
  const txQLen = pick('txQLen');
  if (typeof txQLen.v === 'number') out.txQLen = u32Setting(txQLen.v, txQLen.key);

  if (c.sysctlAllowlist && !isAbsolute(c.sysctlAllowlist)) throw invalidConfig(`sysctlAllowlist: "${c.sysctlAllowlist}" must be an absolute path`);
  if (o.allowlist && sysctls.length) {
    const lists = [DEFAULT_ALLOWLIST, c.sysctlAllowlist].filter((f): f is string => Boolean(f)).map(readAllowlist).filter((l): l is Allowlist => l !== undefined);
    for (const s of sysctls) checkAllowed(s.key, lists);
  }

  const prev = parsePrevResult(c.prevResult, cniVersion);
  if (!prev) throw invalidConfig('Required prevResult missing: tuning is a chained plugin, it runs after the plugin that made the interface');
  out.prevResult = prev;
  return out;
}

/**
 * Returns the directory of DEL's restore files: `dataDir` when the config has a usable one, the
 * default when it has none, undefined when it has one ADD would have refused (so nothing of ours
 * can be there). Never throws: DEL must not fail on a config it cannot use.
 */
export function delDataDir(conf: Record<string, unknown>): string | undefined {
  // Through parseWith for its Go-compatible key matching; this schema accepts any object.
  const d = parseWith(delSchema, conf).dataDir;
  if (d === undefined || d === null || d === '') return DEFAULT_DATA_DIR;
  return typeof d === 'string' && isAbsolute(d) ? d : undefined;
}

/**
 * The bridge plugin's config: the reference plugin's keys (docs/cni-notes.md §3.1) in a zod/mini schema,
 * with every check done here, before anything is touched. Keys that the reference defines but
 * cnikit does not implement are rejected when set to a non-default value (code 2, naming the
 * key), never silently ignored; keys that no plugin defines are ignored, as the reference does.
 */
import { CniCode, CniError, invalidConfig } from '../../pkg/cni/errors.ts';
import { parseCniArgs, KNOWN_CNI_ARGS } from '../../pkg/cni/args.ts';
import * as z from 'zod/mini';
import { goKeys } from '../../pkg/cni/go-keys.ts';
import { netConfBase, parseWith } from '../../pkg/cni/schema.ts';
import type { CmdArgs } from '../../pkg/cni/skel.ts';

const MAC_RE = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;

const schema = z.object({
  ...netConfBase,
  bridge: z.optional(z.string()),
  isGateway: z.optional(z.boolean()),
  isDefaultGateway: z.optional(z.boolean()),
  forceAddress: z.optional(z.boolean()),
  ipMasq: z.optional(z.boolean()),
  ipMasqBackend: z.optional(z.string()),
  mtu: z.optional(z.number()),
  hairpinMode: z.optional(z.boolean()),
  promiscMode: z.optional(z.boolean()),
  vlan: z.optional(z.number()),
  preserveDefaultVlan: z.optional(z.boolean()),
  vlanTrunk: z.optional(z.array(z.unknown())),
  enabledad: z.optional(z.boolean()),
  macspoofchk: z.optional(z.boolean()),
  disableContainerInterface: z.optional(z.boolean()),
  portIsolation: z.optional(z.boolean()),
  ipam: z.optional(z.looseObject({ type: z.optional(z.string()) })),
  // Go structs in the reference (their keys match case-insensitively, a mac must be a string).
  runtimeConfig: z.optional(z.looseObject({ mac: z.optional(z.string()) })),
  args: z.optional(z.looseObject({ cni: z.optional(z.looseObject({ mac: z.optional(z.string()) })) })),
});

/**
 * What DEL, GC and STATUS read: only the keys that say what to undo, matched as Go matches them
 * and then taken one by one, so that a key they cannot use never fails them (toUndoConf).
 */
const undoKeys = z.looseObject({
  bridge: z.unknown(),
  ipMasq: z.unknown(),
  ipam: z.optional(z.looseObject({ type: z.unknown() })),
});

export interface BridgeConf {
  name: string;
  cniVersion: string;
  bridge: string;
  isGateway: boolean;
  isDefaultGateway: boolean;
  forceAddress: boolean;
  ipMasq: boolean;
  mtu: number | undefined;
  hairpinMode: boolean;
  promiscMode: boolean;
  vlan: number;
  preserveDefaultVlan: boolean;
  /** IPAM plugin type; undefined = layer 2 only. */
  ipamType: string | undefined;
  /** MAC for the container interface (runtimeConfig.mac > args.cni.mac > CNI_ARGS MAC). */
  mac: string | undefined;
  /** `dns` from the config: when any field is set it replaces IPAM's in the result. */
  dns: { nameservers?: string[]; domain?: string; search?: string[]; options?: string[] } | undefined;
}

function unsupported(key: string, value: unknown): CniError {
  return new CniError(CniCode.UnsupportedField, `unsupported config field "${key}"`, `cnikit bridge does not implement ${key}=${JSON.stringify(value)} yet; remove it or set it to its default`);
}

/**
 * Parses and checks the bridge config of a command; throws CniError before any side effect.
 * With `forAdd` false (DEL, GC, STATUS) nothing is checked and only the keys that say what to
 * undo are read (toUndoConf): the checks that stop an ADD (unsupported keys, types, ranges,
 * CNI_ARGS) must not stop the DEL that a runtime sends after that failed ADD, which has nothing
 * to undo and must succeed (SPEC: DEL is idempotent).
 */
export function parseBridgeConf(a: CmdArgs, forAdd = true): BridgeConf {
  if (!forAdd) return toUndoConf(a);
  const c = parseWith(schema, a.conf);
  if (c.mtu !== undefined && (!Number.isInteger(c.mtu) || c.mtu < 68 || c.mtu > 65535)) throw invalidConfig(`mtu ${c.mtu} is not an integer between 68 and 65535`);
  if (c.vlan !== undefined && (!Number.isInteger(c.vlan) || c.vlan < 0 || c.vlan > 4094)) throw invalidConfig(`invalid VLAN ID ${c.vlan} (must be between 0 and 4094)`);
  if (c.promiscMode && c.hairpinMode) throw invalidConfig('cannot set hairpin mode and promiscuous mode at the same time');
  if (c.bridge !== undefined && (c.bridge === '' || Buffer.byteLength(c.bridge) > 15 || /[/:\s]/.test(c.bridge))) {
    throw invalidConfig(`bridge name "${c.bridge}" is not a valid interface name (1-15 bytes, no "/", ":" or whitespace)`);
  }
  if (c.macspoofchk) throw unsupported('macspoofchk', c.macspoofchk);
  if (c.vlanTrunk && c.vlanTrunk.length) throw unsupported('vlanTrunk', c.vlanTrunk);
  if (c.enabledad) throw unsupported('enabledad', c.enabledad);
  if (c.disableContainerInterface) throw unsupported('disableContainerInterface', c.disableContainerInterface);
  if (c.portIsolation) throw unsupported('portIsolation', c.portIsolation);
  if (c.ipMasqBackend !== undefined && c.ipMasqBackend !== 'nftables') {
    throw new CniError(CniCode.UnsupportedField, `unsupported ipMasqBackend "${c.ipMasqBackend}"`, 'cnikit masquerades with nftables only; set ipMasqBackend to "nftables" or remove it');
  }

  const args = parseCniArgs(a.args, KNOWN_CNI_ARGS);
  // An empty mac is unset, as in the reference (`if n.RuntimeConfig.Mac != ""`).
  const mac = c.runtimeConfig?.mac || c.args?.cni?.mac || args.get('MAC') || undefined;
  if (mac !== undefined && !MAC_RE.test(mac)) throw invalidConfig(`invalid MAC address "${mac}": use the form 0a:58:0a:00:00:05`);
  if (mac !== undefined && (parseInt(mac.slice(0, 2), 16) & 1)) throw invalidConfig(`MAC address "${mac}" is a multicast address`);

  return toBridgeConf(a, c, mac?.toLowerCase());
}

/**
 * The keys DEL, GC and STATUS need, each used only when it has the right type: an unusable
 * `ipam.type` means no IPAM was reached by an ADD (nothing to release), an unusable `ipMasq` may
 * have been true (tearing down by owner is idempotent, so it is done), an unusable `bridge` is
 * the default. A runtime DELs after every failed ADD and retries a failing DEL forever.
 */
function toUndoConf(a: CmdArgs): BridgeConf {
  const c = goKeys(undoKeys, a.conf) as { bridge?: unknown; ipMasq?: unknown; ipam?: unknown };
  const ipamType = c.ipam && typeof c.ipam === 'object' ? (c.ipam as { type?: unknown }).type : undefined;
  return toBridgeConf(a, {
    name: a.conf.name,
    bridge: typeof c.bridge === 'string' && c.bridge ? c.bridge : undefined,
    ipMasq: typeof c.ipMasq === 'boolean' ? c.ipMasq : c.ipMasq !== undefined,
    ipam: typeof ipamType === 'string' ? { type: ipamType } : undefined,
  }, undefined);
}

function toBridgeConf(a: CmdArgs, c: Partial<z.infer<typeof schema>> & { name: string }, mac: string | undefined): BridgeConf {
  const isDefaultGateway = c.isDefaultGateway ?? false;
  return {
    name: c.name,
    cniVersion: a.conf.cniVersion,
    bridge: c.bridge ?? 'cni0',
    isGateway: (c.isGateway ?? false) || isDefaultGateway,
    isDefaultGateway,
    forceAddress: c.forceAddress ?? false,
    ipMasq: c.ipMasq ?? false,
    mtu: c.mtu,
    hairpinMode: c.hairpinMode ?? false,
    promiscMode: c.promiscMode ?? false,
    vlan: c.vlan ?? 0,
    preserveDefaultVlan: c.preserveDefaultVlan ?? false,
    ipamType: c.ipam?.type || undefined,
    mac,
    dns: c.dns,
  };
}

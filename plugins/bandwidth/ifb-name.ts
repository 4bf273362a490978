/**
 * The name of an attachment's ifb device: `bwp` and 12 hex digits, 15 characters (IFNAMSIZ-1),
 * like the reference's, so that `ip link show type ifb` reads the same. The reference hashes the
 * network name and the container id only (docs/cni-notes.md §12.2), so two interfaces of one
 * container on one network get the same ifb and the second ADD fails; here the interface name is
 * hashed too, NUL-separated so that no two triples run together.
 *
 * Why FNV-1a and not SHA-512 as the reference: nothing here is a secret, and loading node:crypto
 * costs 7-10 ms of every call's start-up (measured; plugins/bridge/link.ts says the same). 48 bits
 * make a clash between two attachments of one host unlikely (≈1e-7 at 10 000), and a clash would
 * only fail that ADD (the ifb exists, EEXIST), never touch the other's device.
 */

const FNV_OFFSET = 0xcbf29ce484222325n;
const FNV_PRIME = 0x100000001b3n;
const MASK64 = (1n << 64n) - 1n;

/** FNV-1a, 64 bits, over the UTF-8 bytes of `s`. */
export function fnv1a64(s: string): bigint {
  let h = FNV_OFFSET;
  for (const b of Buffer.from(s, 'utf8')) h = ((h ^ BigInt(b)) * FNV_PRIME) & MASK64;
  return h;
}

/** Returns the ifb name of the attachment (network, container id, interface). */
export function ifbName(network: string, containerId: string, ifName: string): string {
  return `bwp${fnv1a64(`${network}\0${containerId}\0${ifName}`).toString(16).padStart(16, '0').slice(0, 12)}`;
}

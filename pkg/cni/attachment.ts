/**
 * An attachment: one container interface on one network, the unit the spec's GC and the results
 * cache count in (`cni.dev/valid-attachments` lists them). Its key is how keep-sets compare them.
 */

/** One attachment as `cni.dev/valid-attachments` lists it. */
export interface Attachment { containerID: string; ifname: string }

/** Returns the key that identifies an attachment in a keep-set (a container ID never holds a newline). */
export function attachmentKey(containerId: string, ifName: string): string {
  return `${containerId}\n${ifName}`;
}

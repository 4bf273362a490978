/**
 * The loopback plugin's config (docs/cni-notes.md §9.1): only the keys of Go's types.NetConf
 * (cniVersion, name, type, prevResult, and the common runtimeConfig/args/dns shapes); no plugin
 * keys and no capabilities. Every check happens here, before lo is touched: a prevResult that
 * does not decode is code 7 naming it.
 */
import * as z from 'zod/mini';
import { type Result, parsePrevResult } from '../../pkg/cni/result.ts';
import { netConfBase, parseWith } from '../../pkg/cni/schema.ts';
import type { RawConf } from '../../pkg/cni/skel.ts';

const schema = z.object({ ...netConfBase });

export interface LoopbackConf {
  cniVersion: string;
  /** The previous plugin's result, passed through unchanged (converted to cniVersion). */
  prevResult: Result | undefined;
}

/** Parses the config of an ADD; throws CniError 7 naming the field. */
export function parseLoopbackConf(conf: RawConf): LoopbackConf {
  const c = parseWith(schema, conf);
  return { cniVersion: conf.cniVersion, prevResult: parsePrevResult(c.prevResult, conf.cniVersion) };
}

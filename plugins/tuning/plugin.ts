/**
 * The tuning plugin (type `tuning`, chained after the plugin that made the interface; Podman's
 * default chain has it): sets sysctls of the container's namespace and the MAC address, MTU,
 * promiscuous and all-multicast modes and transmit queue length of its interface, and puts them
 * back on DEL. Netlink and /proc/sys inside the namespace only, through the call's kernel.
 *
 * ADD   checks everything first (config.ts: keys, precedence, sysctl paths, allowlists,
 *       prevResult); reads the link and the current value of each sysctl (a key the kernel does
 *       not have fails here, before any change); saves the originals of what will change in the
 *       restore file (merged into an earlier ADD's, state.ts) before changing anything; then makes
 *       the changes in the reference's order (changes.ts). A failure undoes the changes already
 *       made, in reverse, and puts the restore file back as it was. Returns prevResult with the
 *       interface's new MAC (and MTU, where the result has one).
 * DEL   restores what the restore file holds and removes the file. Succeeds whatever it finds
 *       (docs/cni-notes.md §1.5): no file, a damaged one, a namespace that is gone or is not the
 *       one ADD saw (the file is dropped), a link that is gone or was made again (only the
 *       namespace's sysctls are put back); a restore step that fails is logged and the file kept
 *       for a retry.
 * CHECK compares every configured value with what the namespace has, and promiscuous mode both
 *       ways (as the reference); every difference is reported.
 * GC    drops this network's restore files whose attachment is not in cni.dev/valid-attachments.
 */
import { fstatSync } from 'node:fs';
import { basename } from 'node:path';
import { aboutOf } from '../../executables.ts';
import { CniCode, CniError, describe, wrap } from '../../pkg/cni/errors.ts';
import type { Result } from '../../pkg/cni/result.ts';
import type { Attachment, CmdArgs, Plugin } from '../../pkg/cni/skel.ts';
import { hasCode } from '../../pkg/native.ts';
import { Netns, netnsExists } from '../../pkg/netlink/netns.ts';
import type { RouteHandle } from '../../pkg/netlink/route.ts';
import { Rollback } from '../../pkg/rollback.ts';
import { type Current, type Planned, applyChange, checkProblems, describeChange, planAdd, planRestore } from './changes.ts';
import { type TuningConf, changesLink, delDataDir, parseTuningConf } from './config.ts';
import {
  type SavedState, decodeState, encodeState, isEmpty, listStateFiles, mergeOriginals, readStateText, removeState, sameAttachment,
  stateFile, writeStateText,
} from './state.ts';

/** Reads what ADD and CHECK compare against: the link (when there is one) and every configured sysctl. */
async function readCurrent(a: CmdArgs, c: TuningConf, rt: RouteHandle, netns: string): Promise<Current> {
  const link = await rt.linkGetDetails(a.ifName);
  const sysctl = new Map<string, string | null>();
  for (const s of c.sysctls) {
    try {
      sysctl.set(s.path, await a.kernel.sysctlRead(netns, s.path));
    } catch (err) {
      // Mode 0200 (a flush): it can be written, never read back.
      if (hasCode(err, 'EACCES', 'EPERM')) { sysctl.set(s.path, null); continue; }
      const code = hasCode(err, 'ENOENT') ? CniCode.InvalidConfig : CniCode.Internal;
      throw new CniError(code, `failed to read /proc/sys/${s.path}`, `${s.source}: ${describe(err)}`, { cause: err });
    }
  }
  return { link, sysctl };
}

/** The error of a change the kernel refused; a value it calls invalid is the config's fault (code 7). */
function changeFailed(err: unknown, p: Planned, ifName: string): CniError {
  const on = p.change.kind === 'sysctl' ? '' : ` on "${ifName}"`;
  const code = hasCode(err, 'EINVAL', 'ERANGE', 'EADDRNOTAVAIL') ? CniCode.InvalidConfig : CniCode.Internal;
  return new CniError(code, `failed to set ${describeChange(p.change)}${on}`, `${p.key}: ${describe(err)}`, { cause: err });
}

/** prevResult in the config's version, with the interface's MAC (and MTU, where given) as ADD left them. */
function resultOf(c: TuningConf, ifName: string): Result {
  const r: Result = structuredClone(c.prevResult);
  r.cniVersion = c.cniVersion;
  for (const i of r.interfaces ?? []) {
    if (i.name !== ifName) continue;
    if (c.mac) i.mac = c.mac.value;
    if (c.mtu && i.mtu !== undefined) i.mtu = c.mtu.value;
  }
  return r;
}

/**
 * Merges `originals` into the attachment's restore file, before anything changes, and pushes onto
 * `undo` how to put the file back as it was. An earlier ADD's file is kept (its values are older)
 * unless it is of another namespace or link.
 */
function saveOriginals(file: string, originals: SavedState, undo: Rollback): void {
  const before = readStateText(file);
  const saved = before === undefined ? undefined : decodeState(before);
  const merged = mergeOriginals(saved && sameAttachment(saved, originals) ? saved : undefined, originals);
  const text = encodeState(merged);
  if (isEmpty(merged) || text === before) return;
  try {
    writeStateText(file, text);
  } catch (err) {
    throw wrap(err, `failed to save the restore file ${file}`);
  }
  undo.push(`put back the restore file ${file}`, () => (before === undefined ? removeState(file) : writeStateText(file, before)));
}

/** Makes the changes the config asks for, saving the originals first; on failure undoes what it made. */
async function tune(a: CmdArgs, c: TuningConf, netns: Netns): Promise<void> {
  const rt = await a.kernel.route(netns.path);
  const cur = await readCurrent(a, c, rt, netns.path);
  if (changesLink(c) && !cur.link) throw new CniError(CniCode.Internal, `failed to find "${a.ifName}" in ${a.netns}`, 'tuning changes an interface an earlier plugin of the chain made');
  const { changes, originals } = planAdd(c, cur);
  if (!changes.length) return;
  const index = cur.link?.index ?? 0;
  const undo = new Rollback(a.log);
  try {
    saveOriginals(stateFile(c.dataDir, a.containerId, a.ifName), { ...originals, network: c.name, netns: fstatSync(netns.fd).ino, ifindex: cur.link?.index }, undo);
    for (const p of changes) {
      try {
        await applyChange(a.kernel, rt, netns.path, index, p.change);
      } catch (err) {
        throw changeFailed(err, p, a.ifName);
      }
      const u = p.undo;
      if (u) undo.push(`restore ${describeChange(u)}`, () => applyChange(a.kernel, rt, netns.path, index, u));
    }
  } catch (err) {
    await undo.run();
    throw err;
  }
}

async function cmdAdd(a: CmdArgs): Promise<Result> {
  const c = parseTuningConf(a, { allowlist: true });
  const netns = Netns.open(a.netns, a.env);
  try {
    if (c.sysctls.length || changesLink(c)) await tune(a, c, netns);
  } finally {
    netns.close();
  }
  return resultOf(c, a.ifName);
}

async function cmdDel(a: CmdArgs): Promise<void> {
  const dataDir = delDataDir(a.conf);
  if (!dataDir) return;
  const file = stateFile(dataDir, a.containerId, a.ifName);
  let text: string | undefined;
  try {
    text = readStateText(file);
  } catch (err) {
    a.log.warn(`tuning: cannot read the restore file ${file}; nothing restored`, { error: describe(err) });
    return;
  }
  if (text === undefined) return;
  const drop = (why: string) => {
    a.log.debug(`tuning: ${why}; dropping ${file}`);
    try { removeState(file); } catch (err) { a.log.warn(`tuning: cannot remove ${file}`, { error: describe(err) }); }
  };
  const saved = decodeState(text);
  if (!saved) return drop('the restore file is damaged');
  // docs/cni-notes.md §1.5: with the namespace gone there is nothing left to restore.
  if (!a.netns || !netnsExists(a.netns)) return drop('the namespace is gone');
  let netns: Netns;
  try {
    netns = Netns.open(a.netns, a.env);
  } catch (err) {
    a.log.warn(`tuning: cannot open ${a.netns}; nothing restored, ${file} kept`, { error: describe(err) });
    return;
  }
  try {
    if (!sameAttachment(saved, { netns: fstatSync(netns.fd).ino })) return drop('the file is of an earlier namespace');
    const rt = await a.kernel.route(netns.path);
    const link = await rt.linkGetDetails(a.ifName);
    // The namespace's sysctls are ours to put back even when the link is gone or was made again;
    // the link's attributes only on the link ADD changed.
    const sameLink = link !== undefined && (saved.ifindex === undefined || saved.ifindex === link.index);
    if (!sameLink) a.log.debug(`tuning: "${a.ifName}" is gone or not the link ADD changed; restoring sysctls only`);
    const failed: string[] = [];
    for (const ch of planRestore(saved)) {
      if (ch.kind !== 'sysctl' && !sameLink) continue;
      try {
        await applyChange(a.kernel, rt, netns.path, link?.index ?? 0, ch);
      } catch (err) {
        // A per-interface sysctl goes with its interface: nothing left to restore.
        if (ch.kind === 'sysctl' && hasCode(err, 'ENOENT')) continue;
        failed.push(`${describeChange(ch)}: ${describe(err)}`);
      }
    }
    if (failed.length) a.log.warn(`tuning: could not restore everything on "${a.ifName}"; ${file} kept for a retry`, { errors: failed });
    else removeState(file);
  } catch (err) {
    a.log.warn(`tuning: restoring "${a.ifName}" failed; ${file} kept for a retry`, { error: describe(err) });
  } finally {
    netns.close();
  }
}

async function cmdCheck(a: CmdArgs): Promise<void> {
  const c = parseTuningConf(a, { allowlist: false });
  const netns = Netns.open(a.netns, a.env);
  let problems: string[];
  try {
    const rt = await a.kernel.route(netns.path);
    problems = checkProblems(c, a.ifName, await readCurrent(a, c, rt, netns.path));
  } finally {
    netns.close();
  }
  if (problems.length) throw new CniError(CniCode.Internal, problems[0]!, problems.length > 1 ? problems.slice(1).join('; ') : undefined);
}

async function cmdGc(a: CmdArgs, valid: Attachment[]): Promise<void> {
  const dataDir = delDataDir(a.conf);
  if (!dataDir) return;
  const keep = new Set(valid.map((v) => basename(stateFile(dataDir, v.containerID, v.ifname))));
  for (const file of listStateFiles(dataDir)) {
    if (keep.has(basename(file))) continue;
    const text = readStateText(file);
    // Only files that say they are this network's: the reference's carry no network, and another
    // network's attachments are not in this list.
    if (text !== undefined && decodeState(text)?.network === a.conf.name) removeState(file);
  }
}

/** The tuning plugin's handlers. */
export const tuningPlugin: Plugin = {
  about: aboutOf('tuning'),
  add: cmdAdd,
  del: cmdDel,
  check: cmdCheck,
  gc: cmdGc,
};

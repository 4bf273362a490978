/**
 * The record files as last parsed by this process, reused while a file's stamp (inode, size,
 * mtime: records.ts fileSignature) is unchanged: one parse per version of a file, shared by the
 * dnsname plugin (which reads a network's file under the lock, then writes it) and the
 * responder's state (state.ts, which reads every file on reload). In a fresh plugin process
 * every file is read once, as before. In the warm engine, which runs the plugin and hosts the
 * responder, an ADD at 1000 names neither reads nor parses the file its previous call wrote,
 * and the reload that follows it finds the parse the plugin noted when it wrote the file. A file
 * changed by someone else (another process, a prune) is parsed through its line cache, so only
 * its new lines cost, and unchanged lines keep their record objects for everyone.
 *
 * The file stays the truth: an entry is used only when the file on disk has the stamp it was
 * read or written with. What comes back is shared: callers copy what they change (the container
 * records themselves are never changed). It does not write the files (the plugin does, then
 * notes what it wrote).
 */
import { closeSync, fstatSync, openSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { type ContainerRecord, type NetworkRecords, type ParsedRecords, RECORDS_VERSION, containerLine, fileSignature, networkOfFile, parseRecords } from './records.ts';

/** One file as read: its text (for putting it back), its parse, and its stamp. */
export interface ParsedFile {
  text: string;
  parsed: ParsedRecords;
  sig: string;
}

interface Entry extends ParsedFile {
  /** parseRecords' line cache: unchanged lines keep their record. */
  lines: Map<string, ContainerRecord>;
}

/**
 * Files seen by this process, by path. Why a bound this large: the responder reads every file
 * of its directory on each reload, and an entry evicted costs a full parse (and new record
 * objects, whose netns are checked again); the bound only keeps a long-lived engine from
 * holding the files of directories long gone.
 */
const files = new Map<string, Entry>();
const MAX_FILES = 4096;

function remember(path: string, e: Entry): void {
  files.delete(path);
  if (files.size >= MAX_FILES) files.delete(files.keys().next().value!);
  files.set(path, e);
}

/** Returns `dir/name` parsed (from memory when its stamp is unchanged), or undefined when it does not exist. */
export function readParsed(dir: string, name: string): ParsedFile | undefined {
  const path = join(dir, name);
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    if ((err as { code?: string }).code !== 'ENOENT') throw err;
    files.delete(path);
    return undefined;
  }
  try {
    // The stamp of the open file: it describes exactly what is read from the fd.
    const sig = fileSignature(fstatSync(fd));
    const old = files.get(path);
    if (old?.sig === sig) return old;
    const text = readFileSync(fd, 'utf8');
    const lines = old?.lines ?? new Map<string, ContainerRecord>();
    const e: Entry = { text, sig, lines, parsed: parseRecords(text, networkOfFile(name), path, lines) };
    remember(path, e);
    return e;
  } finally {
    closeSync(fd);
  }
}

/**
 * Notes that `text` was just written to `dir/name` (undefined: the file was removed). With
 * `rec`, the records `text` was formatted from (records.ts formatRecords), they are the parse:
 * the text is not parsed again (records.test.ts checks that formatting then parsing gives
 * the records back).
 */
export function noteWritten(dir: string, name: string, text: string | undefined, rec?: NetworkRecords): void {
  const path = join(dir, name);
  const old = files.get(path);
  files.delete(path);
  if (text === undefined) return;
  const st = statSync(path, { throwIfNoEntry: false });
  if (!st) return;
  if (rec) {
    const lines = new Map<string, ContainerRecord>();
    for (const c of rec.containers) lines.set(containerLine(c), c);
    const records = { ...rec, containers: [...rec.containers] };
    remember(path, { text, sig: fileSignature(st), lines, parsed: { records, problems: [], version: RECORDS_VERSION } });
    return;
  }
  const lines = old?.lines ?? new Map<string, ContainerRecord>();
  remember(path, { text, sig: fileSignature(st), lines, parsed: parseRecords(text, networkOfFile(name), path, lines) });
}

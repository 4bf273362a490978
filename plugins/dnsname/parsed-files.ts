/**
 * The dnsname plugin's record files as last parsed by this process, reused while a file's
 * stamp (inode, size, mtime: records.ts fileSignature) is unchanged. In a fresh plugin process
 * every file is read once, as before; in the warm engine, which runs call after call, an ADD
 * at 1000 names neither reads nor parses the file its previous call wrote, and a changed file
 * (another process, a prune) is parsed through its line cache, so only its new lines cost.
 *
 * The file stays the truth: an entry is used only when the file on disk has the stamp it was
 * read or written with, and every caller holds the records lock (no writer of ours in between).
 * What comes back is shared: callers copy what they change (the container records themselves
 * are never changed). It does not write the files (plugin.ts does, then notes what it wrote).
 */
import { closeSync, fstatSync, openSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { type ContainerRecord, type ParsedRecords, fileSignature, networkOfFile, parseRecords } from '../../responder/records.ts';

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

/** Files seen by this process, by path. At most a few (one per network a call touched). */
const files = new Map<string, Entry>();
const MAX_FILES = 256;

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

/** Notes that `text` was just written to `dir/name` (undefined: the file was removed). */
export function noteWritten(dir: string, name: string, text: string | undefined): void {
  const path = join(dir, name);
  const old = files.get(path);
  files.delete(path);
  if (text === undefined) return;
  const st = statSync(path, { throwIfNoEntry: false });
  if (!st) return;
  const lines = old?.lines ?? new Map<string, ContainerRecord>();
  remember(path, { text, sig: fileSignature(st), lines, parsed: parseRecords(text, networkOfFile(name), path, lines) });
}

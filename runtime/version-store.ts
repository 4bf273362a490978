/**
 * Plugins' VERSION answers kept on disk between runs (`<cacheDir>/cnikit/plugin-versions.json`),
 * so that negotiating a list's version costs no exec once each plugin has answered. An entry is
 * keyed by the plugin's real path and valid only while its size and mtime are unchanged: a
 * rebuilt or reinstalled plugin is asked again.
 *
 * Best effort by design: an unreadable or unwritable file only means the plugin is asked again,
 * so nothing here throws. It is not locked; two runtimes writing at once lose one answer, which
 * costs a VERSION exec later.
 */
import { mkdirSync, readFileSync, realpathSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

type VersionEntry = { size: number; mtimeMs: number; versions: string[] };

/** The remembered supportedVersions of plugin executables. */
export class VersionStore {
  private readonly file: string;
  private data: Record<string, VersionEntry> | undefined;
  constructor(file: string) {
    this.file = file;
  }

  private key(plugin: string): { path: string; size: number; mtimeMs: number } | undefined {
    try {
      const path = realpathSync(plugin);
      const st = statSync(path);
      return { path, size: st.size, mtimeMs: st.mtimeMs };
    } catch {
      return undefined;
    }
  }

  private load(): Record<string, VersionEntry> {
    if (!this.data) {
      try {
        const raw = JSON.parse(readFileSync(this.file, 'utf8')) as unknown;
        this.data = raw && typeof raw === 'object' && !Array.isArray(raw) ? raw as Record<string, VersionEntry> : {};
      } catch {
        this.data = {};
      }
    }
    return this.data;
  }

  /** Returns the versions remembered for the executable `plugin`, or undefined when it changed or was never asked. */
  get(plugin: string): string[] | undefined {
    const k = this.key(plugin);
    const e = k && this.load()[k.path];
    if (!k || !e || e.size !== k.size || e.mtimeMs !== k.mtimeMs || !Array.isArray(e.versions)) return undefined;
    return e.versions.filter((v): v is string => typeof v === 'string');
  }

  /** Remembers `versions` for the executable `plugin` as it is now (size and mtime). */
  set(plugin: string, versions: string[]): void {
    const k = this.key(plugin);
    if (!k) return;
    const data = this.load();
    data[k.path] = { size: k.size, mtimeMs: k.mtimeMs, versions };
    try {
      mkdirSync(dirname(this.file), { recursive: true, mode: 0o700 });
      const tmp = `${this.file}.tmp${process.pid}`;
      writeFileSync(tmp, JSON.stringify(data), { mode: 0o600 });
      renameSync(tmp, this.file);
    } catch {
      // Not being able to remember only costs a VERSION exec next time.
    }
  }
}

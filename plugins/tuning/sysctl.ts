/**
 * The tuning plugin's sysctl rules (docs/cni-notes.md §10.2), pure but for reading an allowlist
 * file: which file under /proc/sys a key names, that it lies under /proc/sys/net/, whether an
 * allowlist lets it through, and when two values are the same setting.
 *
 * Why only net/: /proc/sys/net seen from the container's namespace holds that namespace's own
 * entries, and the global ones there are read-only, so a write cannot reach the host. Every
 * other subtree (kernel/, vm/, fs/) is global, and a container's network config must not set it.
 *
 * Allowlist files (the reference's fixed /etc/cni/tuning/allowlist.conf, and the file the
 * `sysctlAllowlist` key names): a missing file allows everything; otherwise one Go RE2 regexp per
 * line (trimmed, empty lines skipped, no comments), matched unanchored against the key as
 * written, and a key no line matches is refused. RE2 is not JavaScript's syntax: compileRe2()
 * translates what differs and sysctl keys can use (leading flags, \A, \z, \Q..\E, named groups,
 * POSIX classes) and refuses what RE2 would refuse (lookaround, backreferences).
 *
 * Not here: reading and writing the values (the kernel's sysctlRead/sysctlWrite, in plugin.ts).
 */
import { readFileSync } from 'node:fs';
import { CniCode, CniError, invalidConfig } from '../../pkg/cni/errors.ts';

/** The reference's allowlist, always honoured when it exists (main ≥1.2.0). */
export const DEFAULT_ALLOWLIST = '/etc/cni/tuning/allowlist.conf';

/**
 * Returns the path under /proc/sys (`net/ipv4/conf/eth0/arp_filter`) that `key` names for the
 * container interface `ifName`, or throws CniError 7 with the reference's message for a key
 * outside net/ (`where` names the map it came from). As the reference (main): dots become slashes, then the first `IFNAME` becomes
 * the interface's name, then the path is cleaned (`//`, `.`, `..`) and must stay under net/.
 * Unlike it, a key whose first separator is a slash is a path as it stands (sysctl(8)'s rule), so
 * `net/ipv4/conf/eth0.100/rp_filter` keeps the dot of a VLAN interface's name.
 */
export function sysctlPath(key: string, ifName: string, where = 'sysctl'): string {
  const slashFirst = /^[^./]*\//.test(key);
  const named = (slashFirst ? key : key.replaceAll('.', '/')).replace('IFNAME', ifName);
  const parts: string[] = [];
  for (const p of `proc/sys/${named}`.split('/')) {
    if (p === '' || p === '.') continue;
    if (p === '..') parts.pop();
    else parts.push(p);
  }
  if (parts[0] !== 'proc' || parts[1] !== 'sys' || parts[2] !== 'net' || parts.length < 4 || named.includes('\0')) {
    throw new CniError(CniCode.InvalidConfig, `invalid net sysctl key: ${JSON.stringify(named)}`,
      `${where}[${JSON.stringify(key)}]: only net.* sysctls of the container's namespace can be set`);
  }
  return parts.slice(2).join('/');
}

/** Tells whether two sysctl values are the same setting: the kernel prints vectors with tabs (`4096\t131072\t6291456`). */
export function sameSysctlValue(a: string, b: string): boolean {
  return a.trim().split(/\s+/).join(' ') === b.trim().split(/\s+/).join(' ');
}

/** An allowlist file, read. */
export interface Allowlist {
  file: string;
  /** The lines as written, in order (the refusal message lists them). */
  patterns: string[];
  regexps: RegExp[];
}

/** Parses an allowlist file's text; throws CniError 7 naming the file and line for a bad regexp. */
export function parseAllowlist(text: string, file: string): Allowlist {
  const patterns: string[] = [];
  const regexps: RegExp[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!line) return;
    try {
      regexps.push(compileRe2(line));
    } catch (err) {
      throw invalidConfig(`sysctl allowlist ${file} line ${i + 1}: error parsing regexp ${JSON.stringify(line)}: ${(err as Error).message}`);
    }
    patterns.push(line);
  });
  return { file, patterns, regexps };
}

/** Reads an allowlist file: undefined when it does not exist (everything allowed); CniError 5 when it cannot be read. */
export function readAllowlist(file: string): Allowlist | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') return undefined;
    throw new CniError(CniCode.IoFailure, `failed to read the sysctl allowlist ${file}`, (err as Error).message, { cause: err });
  }
  return parseAllowlist(text, file);
}

/** Throws CniError 7 (the reference's message) unless every allowlist lets `key` (as written) through. */
export function checkAllowed(key: string, lists: readonly Allowlist[]): void {
  for (const l of lists) {
    if (l.regexps.some((re) => re.test(key))) continue;
    throw new CniError(CniCode.InvalidConfig, `Sysctl ${key} is not allowed. Only the following sysctls are allowed: [${l.patterns.join(' ')}]`,
      `sysctl[${JSON.stringify(key)}] is not in the allowlist ${l.file}`);
  }
}

const POSIX_CLASSES: Record<string, string> = {
  alnum: '0-9A-Za-z', alpha: 'A-Za-z', ascii: '\\x00-\\x7f', blank: '\\t ', cntrl: '\\x00-\\x1f\\x7f', digit: '0-9',
  graph: '!-~', lower: 'a-z', print: ' -~', punct: '!-\\/:-@\\[-`{-~', space: '\\t\\n\\v\\f\\r ', upper: 'A-Z',
  word: '0-9A-Za-z_', xdigit: '0-9A-Fa-f',
};

/**
 * Compiles a Go RE2 pattern as the JavaScript RegExp that matches the same sysctl keys; throws
 * an Error saying what is wrong when RE2 would refuse it or it has no JavaScript equivalent.
 */
export function compileRe2(pattern: string): RegExp {
  let flags = '';
  let src = pattern;
  const lead = /^\(\?([a-zA-Z]+)\)/.exec(src);
  if (lead) {
    for (const f of lead[1]!) {
      if (f === 'i' || f === 'm' || f === 's') flags += flags.includes(f) ? '' : f;
      else throw new Error(`flag ${f} is not supported`);
    }
    src = src.slice(lead[0].length);
  }
  let out = '';
  let inClass = false;
  for (let i = 0; i < src.length; i++) {
    const c = src[i]!;
    if (c === '\\') {
      const n = src[i + 1];
      if (n === undefined) throw new Error('trailing backslash at end of expression');
      i++;
      if (n === 'Q') {
        const end = src.indexOf('\\E', i + 1);
        const lit = src.slice(i + 1, end < 0 ? undefined : end);
        out += lit.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&');
        i = end < 0 ? src.length : end + 1;
      } else if (!inClass && n === 'A') out += '^';
      else if (!inClass && n === 'z') out += '$';
      else if (/[1-9]/.test(n)) throw new Error(`invalid escape sequence: \\${n} (RE2 has no backreferences)`);
      else out += `\\${n}`;
      continue;
    }
    if (inClass) {
      if (c === '[' && src[i + 1] === ':') {
        const end = src.indexOf(':]', i + 2);
        const name = end < 0 ? '' : src.slice(i + 2, end);
        const neg = name.startsWith('^');
        const cls = POSIX_CLASSES[neg ? name.slice(1) : name];
        if (!cls) throw new Error(`invalid character class range: [:${name}:]`);
        if (neg) throw new Error(`negated POSIX class [:${name}:] is not supported`);
        out += cls;
        i = end + 1;
        continue;
      }
      if (c === ']') inClass = false;
      out += c;
      continue;
    }
    if (c === '[') {
      inClass = true;
      out += c;
      // A `]` right after `[` or `[^` is a literal in RE2, the end of an empty class in JavaScript.
      if (src[i + 1] === '^') { out += '^'; i++; }
      if (src[i + 1] === ']') { out += '\\]'; i++; }
      continue;
    }
    if (c === '(' && src[i + 1] === '?') {
      const rest = src.slice(i + 2);
      if (/^(=|!|<=|<!)/.test(rest)) throw new Error('invalid or unsupported Perl syntax: lookaround');
      if (rest.startsWith('P<')) { out += '(?<'; i += 3; continue; }
    }
    out += c;
  }
  if (inClass) throw new Error('missing closing ]');
  return new RegExp(out, flags);
}

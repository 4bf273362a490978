/**
 * Finds a key written twice in the network config's `sysctl` object, which JSON.parse hides (the
 * last one wins, as it did in the reference before 1.2.0). The reference refuses such a config
 * since 1.2.0 (`duplicated sysctl keys are not allowed`, docs/cni-notes.md §10.2): the two values
 * are two different intentions, and which one lands should not depend on the decoder.
 *
 * A scanner over the raw text rather than a second JSON parser: stdin has already been parsed
 * (skel), so the text is valid JSON and only the keys of the top-level members whose name is
 * `sysctl` in any case (Go matches it so, §13) need reading; everything else is skipped.
 */

/** Returns the first key that occurs twice in the top-level `sysctl` object(s) of valid JSON `text`, or undefined. */
export function duplicateSysctlKey(text: string): string | undefined {
  const s = new Scanner(text);
  s.ws();
  if (s.peek() !== '{') return undefined;
  const seen = new Set<string>();
  for (const name of s.members()) {
    if (name.toLowerCase() === 'sysctl' && s.peek() === '{') {
      for (const key of s.members()) {
        if (seen.has(key)) return key;
        seen.add(key);
        s.skipValue();
      }
    } else s.skipValue();
  }
  return undefined;
}

class Scanner {
  private i = 0;
  private readonly t: string;
  constructor(text: string) {
    this.t = text;
  }

  peek(): string {
    return this.t[this.i] ?? '';
  }

  ws(): void {
    while (/[ \t\n\r]/.test(this.peek())) this.i++;
  }

  /** Iterates the member names of the object at the cursor, leaving the cursor on each value. */
  *members(): Generator<string> {
    this.i++; // {
    this.ws();
    while (this.peek() !== '}' && this.peek() !== '') {
      const name = this.string();
      this.ws();
      this.i++; // :
      this.ws();
      yield name;
      this.ws();
      if (this.peek() === ',') { this.i++; this.ws(); }
    }
    this.i++; // }
  }

  private string(): string {
    const start = this.i++;
    while (this.peek() !== '"') this.i += this.peek() === '\\' ? 2 : 1;
    this.i++;
    return JSON.parse(this.t.slice(start, this.i)) as string;
  }

  skipValue(): void {
    this.ws();
    const c = this.peek();
    if (c === '"') { this.string(); return; }
    if (c === '{') {
      for (const _ of this.members()) this.skipValue();
      return;
    }
    if (c === '[') {
      this.i++;
      this.ws();
      while (this.peek() !== ']' && this.peek() !== '') {
        this.skipValue();
        this.ws();
        if (this.peek() === ',') { this.i++; this.ws(); }
      }
      this.i++;
      return;
    }
    while (this.i < this.t.length && !/[,}\] \t\n\r]/.test(this.peek())) this.i++;
  }
}

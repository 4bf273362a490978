/**
 * What the side-by-side benchmarks share: a worker process (the bench file re-executed inside a
 * cell's host netns, so plugins are exec'd there as a runtime would) spoken to in lines, one
 * request in, one JSON line out (LineWorker is the bench's end, answerLines the worker's); and
 * the removal of the namespaces a bench made, with whatever still runs in them (an engine, a
 * responder, a dnsmasq), by PID.
 * What this does not do: sample, or decide what a cell is (each bench does).
 */
import { type ChildProcessWithoutNullStreams, execFileSync, spawn } from 'node:child_process';

/** A process in a host netns answering one JSON line per request line. */
export class LineWorker {
  readonly child: ChildProcessWithoutNullStreams;
  private lines: string[] = [];
  private waiting: ((line: string) => void) | undefined;

  /** Starts `node file ...args` inside `host` (through `ip netns exec`). */
  constructor(host: string, file: string, args: string[], opts: { stderr?: boolean } = {}) {
    this.child = spawn('ip', ['netns', 'exec', host, process.execPath, file, ...args]);
    if (opts.stderr) this.child.stderr.on('data', (d) => process.stderr.write(d));
    let buf = '';
    this.child.stdout.on('data', (d) => {
      buf += d;
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (this.waiting) { const w = this.waiting; this.waiting = undefined; w(line); } else this.lines.push(line);
      }
    });
  }

  /** Returns the worker's next line, failing after `timeoutMs`. */
  next(timeoutMs: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`worker did not answer within ${timeoutMs / 1000} s`)), timeoutMs);
      const take = (line: string) => { clearTimeout(timer); resolve(line); };
      const queued = this.lines.shift();
      if (queued !== undefined) take(queued); else this.waiting = take;
    });
  }

  /** Sends `request` and returns the parsed answer; an answer with `error` rejects. */
  async ask<T>(request: string, timeoutMs = 120_000): Promise<T> {
    this.child.stdin.write(`${request}\n`);
    const r = JSON.parse(await this.next(timeoutMs)) as T & { error?: string };
    if (r.error) throw new Error(r.error);
    return r;
  }

  /** Ends the worker's input and waits (at most 10 s) for it to clean up and exit. */
  stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, 10_000);
      this.child.once('exit', () => { clearTimeout(timer); resolve(); });
      this.child.stdin.end();
    });
  }
}

/** Deletes the namespaces (last made first), killing by PID whatever still runs in them. */
export function removeNamespaces(made: string[]): void {
  for (const ns of [...made].reverse()) {
    try {
      for (const p of execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).split(/\s+/).filter(Boolean)) {
        try { process.kill(Number(p), 'SIGKILL'); } catch { /* gone */ }
      }
    } catch { /* gone */ }
    try { execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' }); } catch { /* gone */ }
  }
}

/**
 * The worker's side: answers each line of stdin with `handle(line)` as one JSON line (a thrown
 * error as `{ error }`), one line at a time in order; at the end of stdin, after the last
 * answer, runs `atEnd` (the worker's cleanup).
 */
export function answerLines(handle: (line: string) => unknown, atEnd: () => void): void {
  let buf = '';
  let busy = Promise.resolve();
  process.stdin.on('data', (d) => {
    buf += d;
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      busy = busy.then(async () => {
        try {
          process.stdout.write(JSON.stringify(await handle(line)) + '\n');
        } catch (err) {
          process.stdout.write(JSON.stringify({ error: String(err) }) + '\n');
        }
      });
    }
  });
  process.stdin.on('end', () => { void busy.then(atEnd); });
}

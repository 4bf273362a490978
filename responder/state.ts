/**
 * The responder's picture of the records directory, kept up to date cheaply, and what it serves
 * from it: which networks are live, which containers are dead, and the Backend and listening
 * places that follow.
 *
 * - `refresh()` re-reads the directory: a file whose signature (inode, size, mtime) did not
 *   change is not read again; a changed file is parsed with its line cache, so unchanged lines
 *   keep their record objects (and the backend's work on them), and only its new lines have
 *   their netns checked. Each changed file's binding is judged (liveness.ts).
 * - `sweep(budget)` checks the netns of at most `budget` bound containers, round robin, so a
 *   container that died without DEL is noticed within `containers / budget` sweeps.
 * - `checkLinks()` judges every network's binding again (a bridge deleted, a gateway taken).
 * - `build()` turns it into a Backend: live networks only, dead containers left out, each
 *   gateway address to one network (the one whose bridge holds it), 127.0.0.11 places for the
 *   containers of networks in that mode.
 *
 * Whatever a file holds that cannot be used (parse errors, another version, another host netns,
 * a bridge that is gone, two networks claiming an address) is logged once per file and reason,
 * and costs only that file. Pruning the disk is prune.ts's business; `needsPrune` says when.
 */
import { join } from 'node:path';
import type { Logger } from '../pkg/log.ts';
import { Backend, type ListenAddr, type Upstream, type View, buildView, listenKey, setUpstreams, upstreamsOf } from './backend.ts';
import { resolvConfNameservers } from './forwarder.ts';
import { type HostProbe, type NetworkState, deadContainers, judgeBinding, netnsAlive } from './liveness.ts';
import { listDiff } from './list-diff.ts';
import type { Place } from './listeners.ts';
import { type ParsedFile, readParsed } from './parsed-files.ts';
import { type ContainerRecord, EMBEDDED_RESOLVER, type NetworkRecords, type ParsedRecords, listRecordFiles } from './records.ts';

export interface StateOptions {
  recordsDir: string;
  /**
   * Standalone (`cnikit dns serve`): listen here, merge every network into the host view, open
   * no 127.0.0.11 places. Absent: the per-host daemon.
   */
  listen?: ListenAddr[];
  log: Logger;
  /** Opens a probe of the host for one pass of checks. */
  probe: () => HostProbe;
}

interface FileEntry {
  name: string;
  file: string;
  sig: string;
  parsed: ParsedRecords;
  state: NetworkState;
  dead: Set<ContainerRecord>;
  view?: View;
  /** The view must be rebuilt (records, dead set or state changed). */
  dirty: boolean;
}

/** What a build produced. */
export interface Built {
  backend: Backend;
  places: Place[];
  /** Networks served (live, with a container left, or unbound). */
  networks: number;
  /** Container names (and aliases) served, over those networks. */
  names: number;
}

/** A record file parsed (shared with the plugin's calls in this process: parsed-files.ts); an unreadable one as a problem. */
function readFile(dir: string, name: string): Pick<ParsedFile, 'sig' | 'parsed'> | undefined {
  try {
    return readParsed(dir, name);
  } catch (err) {
    const file = join(dir, name);
    return { sig: 'unreadable', parsed: { problems: [{ file, msg: `cannot read: ${(err as Error).message}` }], version: 0 } };
  }
}

export class RecordsState {
  private readonly o: StateOptions;
  private readonly log: Logger;
  private readonly files = new Map<string, FileEntry>();
  /** Messages already logged, per file (cleared when the file goes). */
  private readonly reported = new Map<string, Set<string>>();
  private sweepList: [FileEntry, ContainerRecord][] = [];
  /** The sweep list is out of date: files changed or a container died (rebuilt when a sweep needs it, not on every reload). */
  private sweepStale = false;
  private sweepAt = 0;
  private serial = 0;
  private temps = false;

  constructor(o: StateOptions) {
    this.o = o;
    this.log = o.log;
  }

  /** True when something judged dead or gone, or a crashed write's temp file, is still on disk. */
  get needsPrune(): boolean {
    if (this.temps) return true;
    for (const e of this.files.values()) if (e.state.state === 'gone' || e.dead.size) return true;
    return false;
  }

  /** Logs `msg` for `file` unless it was logged already. */
  private once(file: string, key: string, level: 'warn' | 'info', msg: string, fields: Record<string, unknown>): void {
    let seen = this.reported.get(file);
    if (!seen) this.reported.set(file, seen = new Set());
    if (seen.has(key)) return;
    seen.add(key);
    this.log[level](msg, { file, ...fields });
  }

  /** Re-reads the records directory; returns true when anything changed. */
  async refresh(lent?: HostProbe): Promise<boolean> {
    const { names, temps, problem } = listRecordFiles(this.o.recordsDir);
    this.temps = temps.length > 0;
    if (problem) this.once(problem.file, problem.msg, 'warn', 'skipping bad records', { problem: problem.msg });
    let changed = false;
    const present = new Set(names);
    for (const [name, e] of this.files) {
      if (present.has(name)) continue;
      this.files.delete(name);
      this.reported.delete(e.file);
      changed = true;
    }
    let probe: HostProbe | undefined = lent;
    try {
      for (const name of names) {
        const old = this.files.get(name);
        const file = join(this.o.recordsDir, name);
        const f = readFile(this.o.recordsDir, name);
        if (!f) { // removed since the listing
          if (old) { this.files.delete(name); this.reported.delete(old.file); changed = true; }
          continue;
        }
        if (f.sig === old?.sig) continue;
        changed = true;
        const r = f.parsed;
        for (const p of r.problems) this.once(p.file, `${p.line ?? ''} ${p.msg}`, 'warn', 'skipping bad records', { line: p.line, problem: p.msg });
        const e: FileEntry = {
          name, file, sig: f.sig, parsed: r, state: { state: 'live', verified: false }, dead: new Set(), view: old?.view, dirty: true,
        };
        this.files.set(name, e);
        if (!r.records) continue;
        probe ??= this.o.probe();
        e.state = await judgeBinding(r.records, probe);
        this.noteState(e);
        for (const c of deadContainers(this.carryVerdicts(old, e, r.records.containers), probe)) this.markDead(e, c);
      }
    } finally {
      if (probe !== lent) probe?.close();
    }
    if (changed) this.sweepStale = true;
    return changed;
  }

  /**
   * Lines seen before keep their verdict (dead ones stay dead in `e`); returns the new ones, which
   * are to be checked now. A new version of the list is compared with the last by its slots
   * (list-diff.ts), so an ADD's reload does not read all 1000 records.
   */
  private carryVerdicts(old: FileEntry | undefined, e: FileEntry, list: readonly ContainerRecord[]): ContainerRecord[] {
    const was = old?.parsed.records?.containers;
    const d = was && listDiff(was, list);
    if (d) {
      if (old.dead.size) {
        const left = new Set(d.removed);
        for (const c of old.dead) if (!left.has(c)) e.dead.add(c);
      }
      return d.added;
    }
    const before = new Set(was);
    const fresh: ContainerRecord[] = [];
    for (const c of list) {
      if (old?.dead.has(c)) e.dead.add(c);
      else if (!before.has(c)) fresh.push(c);
    }
    return fresh;
  }

  /** How many containers a sweep goes round (bound ones not yet judged dead). */
  get sweepSize(): number {
    if (this.sweepStale) this.rebuildSweepList();
    return this.sweepList.length;
  }

  /** Checks the netns of up to `budget` bound containers; returns true when one was found dead. */
  sweep(budget: number, probe: Pick<HostProbe, 'netnsIno'>): boolean {
    if (this.sweepStale) this.rebuildSweepList();
    const list = this.sweepList;
    if (!list.length) return false;
    let changed = false;
    for (let n = 0; n < Math.min(budget, list.length); n++) {
      if (this.sweepAt >= list.length) this.sweepAt = 0;
      const [e, c] = list[this.sweepAt++]!;
      if (e.dead.has(c) || !c.netns) continue;
      if (netnsAlive(probe, c.netns)) continue;
      this.markDead(e, c);
      changed = true;
    }
    return changed;
  }

  /** Judges every network's binding again; returns true when a state changed. */
  async checkLinks(): Promise<boolean> {
    let changed = false;
    const probe = this.o.probe();
    try {
      for (const e of this.files.values()) {
        const r = e.parsed.records;
        if (!r || r.hostNetns === undefined) continue;
        const s = await judgeBinding(r, probe);
        if (s.state === e.state.state && (s.state !== 'live' || e.state.state !== 'live' || s.verified === e.state.verified)) continue;
        e.state = s;
        e.dirty = true;
        changed = true;
        this.noteState(e);
      }
    } finally {
      probe.close();
    }
    return changed;
  }

  private markDead(e: FileEntry, c: ContainerRecord): void {
    e.dead.add(c);
    e.dirty = true;
    this.sweepStale = true; // the next sweep leaves it out
    this.once(e.file, `dead ${c.containerId} ${c.ifName} ${c.netns?.ino}`, 'info', 'container gone without DEL; its records are ignored and pruned',
      { container: c.containerId, ifName: c.ifName, netns: c.netns?.path });
  }

  private noteState(e: FileEntry): void {
    if (e.state.state === 'live') return;
    const what = e.state.state === 'gone' ? 'records of a network that is gone; ignored and pruned' : 'records of another host namespace; ignored';
    this.once(e.file, `${e.state.state} ${e.state.why}`, 'warn', what, { why: e.state.why });
  }

  private rebuildSweepList(): void {
    this.sweepStale = false;
    const list: [FileEntry, ContainerRecord][] = [];
    for (const e of this.files.values()) {
      for (const c of e.parsed.records?.containers ?? []) if (c.netns && !e.dead.has(c)) list.push([e, c]);
    }
    this.sweepList = list;
    if (this.sweepAt >= list.length) this.sweepAt = 0;
  }

  /** Builds the Backend and the places to listen on from what is known now. */
  build(): Built {
    this.serial++;
    const serial = (Math.floor(Date.now() / 1000) + this.serial) >>> 0;
    const views: View[] = [];
    const served: NetworkRecords[] = [];
    const seenNetwork = new Map<string, string>();
    for (const e of [...this.files.values()].sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const r = e.parsed.records;
      if (!r || e.state.state !== 'live') { e.view = undefined; continue; }
      const first = seenNetwork.get(r.network);
      if (first !== undefined) {
        this.once(e.file, `duplicate ${r.network}`, 'warn', 'skipping bad records', { problem: `network "${r.network}" is already defined by ${first}; file skipped` });
        e.view = undefined;
        continue;
      }
      seenNetwork.set(r.network, e.file);
      const containers = e.dead.size ? r.containers.filter((c) => !e.dead.has(c)) : r.containers;
      if (containers.length === 0 && r.hostNetns !== undefined) { e.view = undefined; continue; }
      const effective = e.dead.size ? { ...r, containers } : r;
      if (e.dirty || !e.view) {
        e.view = buildView(r.network, [effective], serial, e.view);
        e.dirty = false;
      }
      e.view.rank = e.state.verified ? 0 : r.hostNetns !== undefined ? 1 : 2;
      views.push(e.view);
      served.push(effective);
    }
    const hostView = this.o.listen ? buildView('(host)', served, serial) : undefined;
    // Never forward to ourselves (a loop that would fill the pending table).
    const ours = new Set([...(this.o.listen ?? []), ...views.flatMap((v) => v.listen)].map(listenKey));
    const notUs = (u: Upstream) => !ours.has(listenKey(u));
    const resolvConfs = new Map<string, Upstream[]>();
    const upstreamsFor = (r: NetworkRecords): Upstream[] | undefined => {
      if (r.upstreams !== undefined || r.resolvConf === undefined) return upstreamsOf(r.upstreams);
      let u = resolvConfs.get(r.resolvConf);
      if (!u) resolvConfs.set(r.resolvConf, u = resolvConfNameservers(r.resolvConf));
      return u;
    };
    views.forEach((v, i) => setUpstreams(v, upstreamsFor(served[i]!)?.filter(notUs)));
    if (hostView) {
      const first = served.find((r) => r.upstreams !== undefined || r.resolvConf !== undefined);
      setUpstreams(hostView, first ? upstreamsFor(first)?.filter(notUs) : undefined);
    }
    const backend = Backend.fromViews(views, hostView);
    for (const c of backend.conflicts) {
      const loser = [...this.files.values()].find((e) => e.parsed.records?.network === c.loser);
      this.once(loser?.file ?? c.loser, `conflict ${c.listen} ${c.winner}`, 'warn', 'another network answers on this address; these records are not served there',
        { listen: c.listen, servedBy: c.winner, network: c.loser });
    }
    let places: Place[];
    if (this.o.listen) places = this.o.listen;
    else {
      places = [...backend.listen];
      for (const ctr of backend.containers.values()) places.push({ address: EMBEDDED_RESOLVER, port: ctr.port, netns: ctr.netns });
    }
    const names = views.reduce((n, v) => n + v.nameCount, 0);
    return { backend, places, networks: views.length, names };
  }
}

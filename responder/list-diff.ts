/**
 * What changed between two versions of a records list, found by comparing the lists' slots
 * only: the same record is the same object in both (parseRecords' line cache keeps unchanged
 * lines' objects, and the plugin writes the list it read plus or minus a record), so the common
 * head and tail are skipped without reading a record. Why it matters: at 1000 containers, a pass
 * that reads each record costs 100-300 µs in a busy engine (a cache miss or more per record),
 * while an ADD or a DEL changes one; comparing two arrays of pointers costs a few µs.
 */

/** The records only `before` holds and those only `after` holds; undefined when more than `max` changed (do a full pass). */
export function listDiff<T>(before: readonly T[], after: readonly T[], max = 64): { removed: T[]; added: T[] } | undefined {
  let head = 0;
  const shortest = Math.min(before.length, after.length);
  while (head < shortest && before[head] === after[head]) head++;
  let tail = 0;
  while (tail < shortest - head && before[before.length - 1 - tail] === after[after.length - 1 - tail]) tail++;
  const removed = before.slice(head, before.length - tail);
  const added = after.slice(head, after.length - tail);
  if (removed.length + added.length > max) return undefined;
  // A record moved within the changed middle is in both: it neither left nor came.
  if (removed.length && added.length) {
    const both = new Set(removed.filter((x) => added.includes(x)));
    if (both.size) return { removed: removed.filter((x) => !both.has(x)), added: added.filter((x) => !both.has(x)) };
  }
  return { removed, added };
}

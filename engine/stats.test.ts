import test from 'ava';
import { Stats } from './stats.ts';

test('summary gives count, median and p99 per key', (t) => {
  const s = new Stats();
  for (let i = 1; i <= 100; i++) s.record('bridge ADD', i);
  s.record('bridge DEL', 3);
  t.is(s.calls, 101);
  t.deepEqual(s.summary(), { 'bridge ADD': { count: 100, p50: 51, p99: 100 }, 'bridge DEL': { count: 1, p50: 3, p99: 3 } });
});

test('only the most recent calls count for the percentiles', (t) => {
  const s = new Stats();
  for (let i = 0; i < 1024; i++) s.record('k', 1000);
  for (let i = 0; i < 1024; i++) s.record('k', 1);
  t.deepEqual(s.summary().k, { count: 2048, p50: 1, p99: 1 });
});

import test from 'ava';
import { createLogger, isoTime } from './log.ts';

test('isoTime writes what Date#toISOString writes', (t) => {
  const samples = [0, 1, 999, 86_399_999, 951_782_400_000 /* 2000-02-29 */, 4_102_444_799_999, Date.now()];
  for (let i = 0; i < 200; i++) samples.push(Math.floor(Math.random() * 4_102_444_800_000));
  for (const ms of samples) t.is(isoTime(ms), new Date(ms).toISOString(), String(ms));
});

test('a log line carries the time it was written, in UTC', (t) => {
  const lines: string[] = [];
  const before = Date.now();
  createLogger({ debug: false, write: (l) => lines.push(l) }).info('hello', { n: 1 });
  const line = JSON.parse(lines[0]!) as { time: string; level: string; msg: string; n: number };
  t.like(line, { level: 'info', msg: 'hello', n: 1 });
  t.regex(line.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  t.true(Date.parse(line.time) >= before - 1 && Date.parse(line.time) <= Date.now());
});

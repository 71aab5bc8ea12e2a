/**
 * `npm run bench -- scale` runs end to end on a small size: every figure of the growth table
 * is printed with a value, and the two runs the diff compares are found to diverge exactly
 * where the second was forked (the fork's own input event). Nothing here is timed: the rows'
 * goals are the benchmark's business, except that the divergence row must hold.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { scaleSizes } from '../bench/scale.ts';
import { childEnv } from './helpers/cli.ts';

const INDEX = fileURLToPath(new URL('../bench/index.ts', import.meta.url));

test('scale sizes: the issue\'s three by default, 1B more when asked, a bad list refused by name', () => {
  assert.deepEqual(scaleSizes({}), [1_000_000, 10_000_000, 100_000_000]);
  assert.deepEqual(scaleSizes({ CHRONOVISOR_BENCH_BIG: '1' }), [1_000_000, 10_000_000, 100_000_000, 1_000_000_000]);
  assert.deepEqual(scaleSizes({ CHRONOVISOR_BENCH_SIZES: '20000, 50000' }), [20_000, 50_000]);
  assert.throws(() => scaleSizes({ CHRONOVISOR_BENCH_SIZES: '1e6,x' }), /CHRONOVISOR_BENCH_SIZES=1e6,x: expected event counts/);
});

test('bench scale at 10,000 events prints every row, and the diff finds the fork point', () => {
  const child = spawnSync(process.execPath, ['--import', 'tsx', INDEX, 'scale'], {
    env: { ...childEnv(), CHRONOVISOR_BENCH_SIZES: '10000' }, encoding: 'utf8', maxBuffer: 1 << 24,
  });
  assert.equal(child.status, 0, child.stderr);
  const rows = child.stdout.split('\n').filter((line) => line.startsWith('  10,000: '));
  const names = rows.map((line) => line.slice('  10,000: '.length).split(/\s{2,}/)[0]);
  for (const expected of [
    'events recorded', 'recording time (s) / events/s', 'file size / bytes per event', 'peak RSS, recording',
    'seek p50 / p99, cold (ms)', 'seek p50 / p99, warm (ms)', 'state --at 61%, whole command (s)', 'peak RSS, state',
    'TUI open: indexing the run for markers (s)', 'TUI key p50 / p99 / max (ms)', 'TUI slowest key', 'TUI search for rare text far away, result p99 (ms)',
    'TUI RSS max during the keys', 'verify, 2 workers: time (s) / events/s', 'export jsonl: time (s) / events/s', 'diff, whole command (s)',
    'forensic index: build time (s) / bytes per event', 'peak RSS, index', 'forensics: who-wrote 64 bytes, cold p50 / p99 (ms)',
    'forensics: history, next 100 accesses, cold p50 / p99 (ms)', 'peak RSS, who-wrote',
  ]) assert.ok(names.includes(expected), `no row '${expected}' in:\n${child.stdout}`);
  for (const row of rows) assert.doesNotMatch(row, /\bNaN\b|undefined|Infinity/, row);
  // The slowest key is named by what the benchmark pressed, with its time.
  assert.match(rows.find((line) => line.includes('TUI slowest key')) ?? '', /TUI slowest key\s+\S.*, \d+\.\d ms$/);
  // Provenance of a datagram bob received: asked only when one was, and then it reaches an origin.
  const hops = rows.find((line) => line.includes('provenance, fewest hops'));
  assert.ok(hops, `no provenance row in:\n${child.stdout}`);
  assert.match(hops, /\s(\d+)\s+goal >= 5|no provenance of a datagram bob received by DMA recorded yet/);
  const divergence = rows.find((line) => line.includes('first divergence'));
  const found = /seq (\d+), fork at (\d+)\)/.exec(divergence ?? '');
  assert.ok(found, `no divergence row in:\n${child.stdout}`);
  assert.equal(found[1], found[2], divergence);
});

/**
 * `npm run bench -- forensics` runs end to end on a small recording: every row is printed with
 * a value, and the provenance of a packet bob received reaches an origin through at least five
 * hops (netback's copies, the switch, the VF, alice's instructions). Nothing here is timed.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { forensicsSizes } from '../bench/forensics.ts';
import { childEnv } from './helpers/cli.ts';

const INDEX = fileURLToPath(new URL('../bench/index.ts', import.meta.url));

test('forensics sizes: 1M and 10M by default, a list when asked, a bad list refused by name', () => {
  assert.deepEqual(forensicsSizes({}), [1_000_000, 10_000_000]);
  assert.deepEqual(forensicsSizes({ CHRONOVISOR_BENCH_FORENSICS_EVENTS: '20000, 50000' }), [20_000, 50_000]);
  assert.throws(() => forensicsSizes({ CHRONOVISOR_BENCH_FORENSICS_EVENTS: '1e6,x' }), /CHRONOVISOR_BENCH_FORENSICS_EVENTS=1e6,x: expected event counts/);
});

test('bench forensics at 100,000 events prints every row, and provenance of a received packet takes 5 hops or more', () => {
  const child = spawnSync(process.execPath, ['--import', 'tsx', INDEX, 'forensics'], {
    env: { ...childEnv(), CHRONOVISOR_BENCH_FORENSICS_EVENTS: '100000' }, encoding: 'utf8', maxBuffer: 1 << 24,
  });
  assert.equal(child.status, 0, child.stderr);
  const rows = child.stdout.split('\n').filter((line) => line.startsWith('  0.1M: '));
  const names = rows.map((line) => line.slice('  0.1M: '.length).split(/\s{2,}/)[0]);
  for (const expected of [
    'events recorded', 'machine alone / recording / index build (s)', 'recording overhead with the index (x)', 'index bytes per event',
    'who-wrote 64 bytes, cold p50 / p99 (ms)', 'history, next 100 accesses, cold p50 / p99 (ms)', 'provenance, fewest hops to an origin',
  ]) assert.ok(names.includes(expected), `no row '${expected}' in:\n${child.stdout}`);
  for (const row of rows) assert.doesNotMatch(row, /\bNaN\b|undefined|Infinity/, row);
  const hops = /provenance, fewest hops to an origin\s+(\d+)/.exec(child.stdout);
  assert.ok(hops, `no hop count in:\n${child.stdout}`);
  assert.ok(Number(hops[1]) >= 5, `fewest hops ${hops[1]}`);
});

/**
 * `npm run bench` with a bad CHRONOVISOR_BENCH_* value: exit 2 and one line naming the
 * variable and what it takes, before any measuring starts, never a stack trace.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { childEnv } from './helpers/cli.ts';

const INDEX = fileURLToPath(new URL('../bench/index.ts', import.meta.url));

for (const [suite, name, value] of [
  ['store', 'CHRONOVISOR_BENCH_EVENTS', 'abc'],
  ['tui', 'CHRONOVISOR_BENCH_EVENTS', '10k'],
  ['forensics', 'CHRONOVISOR_BENCH_FORENSICS_EVENTS', '1000000,x'],
  ['scale', 'CHRONOVISOR_BENCH_SIZES', '5'],
  ['fuzz', 'CHRONOVISOR_BENCH_MUTANT_SECONDS', '0'],
] as const) {
  test(`bench ${suite} with ${name}=${value}: exit 2 naming the variable, no stack trace`, () => {
    const child = spawnSync(process.execPath, ['--import', 'tsx', INDEX, suite], { env: { ...childEnv(), [name]: value }, encoding: 'utf8', timeout: 60_000 });
    assert.equal(child.status, 2, child.stderr);
    assert.match(child.stderr, new RegExp(`^bench: ${name}=${value.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: expected `, 'm'));
    assert.doesNotMatch(child.stderr, /^\s+at /m, 'a stack trace');
    assert.equal(child.stdout, '');
  });
}

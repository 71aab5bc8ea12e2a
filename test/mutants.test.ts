/**
 * The mutation suite stays meaningful: every mutation still applies to the sources exactly
 * once (a refactor that moves the text fails here, not silently later), the runner refuses
 * bad arguments, and one real run shows the table oracles catching a table builder that is
 * wrong while its events look right.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import fc from 'fast-check';
import { FLAWS } from '../src/core/hypervisor/flaws.ts';
import { MUTATIONS, applyMutation, median, summarize, type MutantOutcome } from '../src/fuzz/mutants.ts';

const ROOT = resolve(import.meta.dirname, '..');

test('at least 15 mutations, uniquely named, each applying exactly once to a source of the hypervisor or the hardware', () => {
  assert.ok(MUTATIONS.length >= 15, `${MUTATIONS.length} mutations`);
  assert.equal(new Set(MUTATIONS.map((m) => m.name)).size, MUTATIONS.length, 'two mutations share a name');
  for (const m of MUTATIONS) {
    assert.match(m.file, /^src\/core\/(hypervisor|hardware)\//, m.name);
    assert.notEqual(m.file, 'src/core/hypervisor/flaws.ts', `${m.name} edits the planted flaws`);
    assert.notEqual(m.text, m.replacement, m.name);
    assert.ok(m.intent.length > 20, `${m.name} says what the developer meant`);
    const source = readFileSync(join(ROOT, m.file), 'utf8');
    const mutated = applyMutation(source, m);
    assert.notEqual(mutated, source, m.name);
    assert.equal(mutated.length, source.length - m.text.length + m.replacement.length, m.name);
  }
});

test('none of them is a planted flaw turned on: no mutation touches a hasFlaw call', () => {
  for (const m of MUTATIONS) {
    for (const flaw of FLAWS) {
      const flawUses = (s: string): number => s.split(`'${flaw}'`).length;
      assert.equal(flawUses(m.replacement), flawUses(m.text), `${m.name} changes how ${flaw} is planted`);
    }
  }
});

test('a mutation whose text moved, or is there twice, is refused with its name', () => {
  const m = MUTATIONS[0];
  assert.throws(() => applyMutation('nothing of it here', m), new RegExp(`mutation ${m.name}: its text is no longer in ${m.file}`));
  assert.throws(() => applyMutation(`${m.text}${m.text}`, m), new RegExp(`mutation ${m.name}: its text is in ${m.file} more than once`));
});

test('summary: kill counts and medians per mode, against a brute-force count and sort', () => {
  const outcome = fc.record({ name: fc.constantFrom('a', 'b', 'c', 'd', 'e'), mode: fc.constantFrom('random' as const, 'guided' as const), found: fc.boolean(), seconds: fc.integer({ min: 1, max: 60 }) });
  fc.assert(fc.property(fc.uniqueArray(outcome, { selector: (o) => `${o.name}/${o.mode}` }), (raw) => {
    const outcomes: MutantOutcome[] = raw.map((o) => ({ ...o, seconds: o.found ? o.seconds : null, cases: 1, finding: o.found ? 'x' : null }));
    for (const s of summarize(outcomes)) {
      const mine = outcomes.filter((o) => o.mode === s.mode);
      assert.equal(s.total, mine.length);
      assert.equal(s.killed, mine.filter((o) => o.found).length);
      const times = mine.filter((o) => o.found).map((o) => o.seconds!).sort((a, b) => a - b);
      const expected = times.length === 0 ? null : times.length % 2 ? times[(times.length - 1) / 2] : (times[times.length / 2 - 1] + times[times.length / 2]) / 2;
      assert.equal(s.median, expected);
    }
  }));
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 2, 3]), 2.5);
  assert.equal(median([]), null);
});

const runner = (args: string[]): ReturnType<typeof spawnSync> =>
  spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts/mutants.ts'), ...args], { cwd: ROOT, encoding: 'utf8', timeout: 240_000 });

test('npm run mutants: bad arguments exit 2 naming the argument', () => {
  for (const [args, message] of [
    [['--time', '0s'], /--time 0s: a duration like 30s or 2m/],
    [['--only', 'no-such-mutant'], /--only: no mutation named no-such-mutant/],
    [['--modes', 'smart'], /--modes: smart is not one of random, guided/],
    [['--seed', 'x'], /--seed x: a whole number/],
  ] as const) {
    const r = runner([...args]);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(String(r.stderr), message);
  }
});

test('npm run mutants: an IOMMU leaf built from the gfn instead of the frame (events unchanged) is killed, by the oracle over the tables', () => {
  const r = runner(['--only', 'iommu-map-gfn-for-mfn', '--modes', 'random', '--time', '20s', '--json']);
  assert.equal(r.status, 0, String(r.stderr));
  const report = JSON.parse(String(r.stdout)) as { outcomes: MutantOutcome[]; summary: { killed: number; total: number }[] };
  assert.deepEqual(report.summary.map((s) => [s.killed, s.total]), [[1, 1]]);
  assert.match(report.outcomes[0].finding ?? '', /^iommu-table-confined: the IOMMU tables of device .* map iova 0x[0-9a-f]+ to frame \d+, owned by nobody/);
});

test('a mutant that trips one of the simulator\'s own assertions is a counterexample, shrunk and recorded as a run that stops before the failing step and verifies', () => {
  // The tree copied with one mutation applied, as the runner does; node_modules shared by a link.
  const dir = mkdtempSync(join(tmpdir(), 'chronovisor-mutant-assert-'));
  try {
    for (const entry of ['src', 'bin', 'package.json', 'tsconfig.json']) cpSync(join(ROOT, entry), join(dir, entry), { recursive: true });
    symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
    const m = MUTATIONS.find((x) => x.name === 'decrease-duplicate-gfn')!;
    writeFileSync(join(dir, m.file), applyMutation(readFileSync(join(dir, m.file), 'utf8'), m));
    const chronovisor = (args: string[]): ReturnType<typeof spawnSync> =>
      spawnSync(process.execPath, [join(dir, 'bin/chronovisor'), ...args], { cwd: dir, encoding: 'utf8', timeout: 120_000 });
    const fuzz = chronovisor(['fuzz', '--time', '30s', '--workers', '1', '--seed', '1', '--json', '--out', 'm.db']);
    assert.equal(fuzz.status, 1, String(fuzz.stderr));
    const report = JSON.parse(String(fuzz.stdout)) as { counterexamples: { finding: string; run: number; actions: string[]; explanation: unknown }[] };
    const [c] = report.counterexamples;
    assert.match(c.finding, /^simulator-assertion: unmap of gfn \d+ of domain \d+, which is not mapped$/);
    assert.ok(c.actions.some((a) => /decrease_reservation, gfns: \[(\d+), \1\]/.test(a)), `a gfn named twice among ${c.actions.join('; ')}`);
    assert.equal(c.explanation, null, 'no violation to explain');
    const verify = chronovisor(['verify', 'm.db', '--run', String(c.run)]);
    assert.equal(verify.status, 0, String(verify.stderr));
    assert.match(String(verify.stdout), /stopped\): \d+ events.*re-executed identically/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

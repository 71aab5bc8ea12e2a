/**
 * Seek equals fold: the timeline's state at any position (from a checkpoint, through immer,
 * through its caches) has the digest of the plain fold of `evolve` over the events before it.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { stateDigest } from '../src/core/machine/snapshot.ts';
import { Timeline } from '../src/replay/timeline.ts';
import { PROFILES } from '../src/events/schema.ts';
import { forkRun } from '../src/replay/fork.ts';
import { annotatedEvents } from '../src/replay/format.ts';
import { steps } from '../src/replay/align.ts';
import { scenarioArbitrary } from './arbitraries.ts';
import { SIM_VERSION, TempDir, foldDigests, record, runs } from './helpers.ts';

const CHECKPOINT_EVERY = 37;
const dir = new TempDir();
after(() => dir.cleanup());

/** Mostly short runs, some spanning several chunks. */
const someScenarios = fc.oneof({ weight: 5, arbitrary: scenarioArbitrary() }, { weight: 1, arbitrary: scenarioArbitrary({ long: true }) });
/** Random positions expressed as fractions of the run's length. */
const positions = fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 1, maxLength: 25 });

test('stateAt(i) on a fresh timeline equals the fold of evolve over events 0..i-1', () => {
  fc.assert(fc.property(someScenarios, positions, (scenario, fractions) => {
    const store = dir.store();
    const { row } = record(store, scenario.text, { checkpointEvery: CHECKPOINT_EVERY }, scenario.config);
    assert.equal(row.status, 'complete');
    const seqs = [0, row.eventCount, ...fractions.map((f) => Math.round(f * row.eventCount))];
    const expected = foldDigests(store, row, seqs);
    for (const seq of seqs) {
      // A new timeline per position: every seek starts from a checkpoint.
      const actual = stateDigest(new Timeline(store, row).stateAt(seq)).toString('hex');
      assert.equal(actual, expected.get(seq), `seek to ${seq} of ${row.eventCount} differs from the fold`);
    }
    store.close();
  }), { numRuns: runs(60) });
});

test('a random walk of seeks on one timeline (forwards and backwards) gives the fold digests', () => {
  fc.assert(fc.property(someScenarios, fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 2, maxLength: 40 }), (scenario, fractions) => {
    const store = dir.store();
    const { row } = record(store, scenario.text, { checkpointEvery: CHECKPOINT_EVERY }, scenario.config);
    const walk = fractions.map((f) => Math.round(f * row.eventCount));
    // Also step backwards one event at a time from the end of the walk, and revisit the start.
    walk.push(...[3, 2, 1].map((d) => Math.max(0, walk[walk.length - 1] - d)), walk[0]);
    const expected = foldDigests(store, row, walk);
    const timeline = new Timeline(store, row);
    walk.forEach((seq, step) => {
      const actual = stateDigest(timeline.stateAt(seq)).toString('hex');
      assert.equal(actual, expected.get(seq), `step ${step} of the walk [${walk.join(', ')}]: seek to ${seq} differs from the fold`);
    });
    store.close();
  }), { numRuns: runs(60) });
});

test('stepping back one event at a time through a long stretch gives the fold digests', () => {
  // Checkpoints far apart: stepping back goes through the snapshot a fold leaves behind it
  // (timeline.ts, BACK_SNAPSHOT) and past it, more than once.
  fc.assert(fc.property(scenarioArbitrary({ long: true }), fc.double({ min: 0, max: 1, noNaN: true }), (scenario, fraction) => {
    const store = dir.store();
    const { row } = record(store, scenario.text, { checkpointEvery: 4000 }, scenario.config);
    const from = Math.round(fraction * row.eventCount);
    const walk = Array.from({ length: Math.min(from, 400) + 1 }, (_, back) => from - back);
    const expected = foldDigests(store, row, walk);
    const timeline = new Timeline(store, row);
    for (const seq of walk) {
      assert.equal(stateDigest(timeline.stateAt(seq)).toString('hex'), expected.get(seq), `stepping back from ${from}: the state at ${seq} differs from the fold`);
    }
    store.close();
  }), { numRuns: runs(10) });
});

test('states handed out by the timeline are frozen and never change under later seeks', () => {
  fc.assert(fc.property(scenarioArbitrary(), fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 2, maxLength: 12 }), (scenario, fractions) => {
    const store = dir.store();
    const { row } = record(store, scenario.text, { checkpointEvery: CHECKPOINT_EVERY }, scenario.config);
    const timeline = new Timeline(store, row);
    const held = fractions.map((f) => {
      const seq = Math.round(f * row.eventCount);
      const state = timeline.stateAt(seq);
      return { seq, state, digest: stateDigest(state).toString('hex') };
    });
    for (const h of held) {
      assert.ok(Object.isFrozen(h.state), `state at ${h.seq} is not frozen`);
      assert.equal(stateDigest(h.state).toString('hex'), h.digest, `state at ${h.seq} changed after later seeks`);
    }
    store.close();
  }), { numRuns: runs(30) });
});

test('private folds (log, diff) write their own page copies in place, never a page a held state shares', () => {
  fc.assert(fc.property(someScenarios, positions, fc.double({ min: 0, max: 1, noNaN: true }), (scenario, fractions, start) => {
    const store = dir.store();
    const { row } = record(store, scenario.text, { checkpointEvery: CHECKPOINT_EVERY }, scenario.config);
    const timeline = new Timeline(store, row);
    const seqs = fractions.map((f) => Math.round(f * row.eventCount));
    const expected = foldDigests(store, row, seqs);
    const held = seqs.map((seq) => ({ seq, state: timeline.stateAt(seq) }));
    // Both roll a private state from a checkpoint over the rest of the run, on the same
    // timeline (the same decoded checkpoint pages) as the held states.
    const from = Math.round(start * row.eventCount);
    for (const _ of annotatedEvents(timeline, from, row.eventCount)) { /* drain */ }
    for (const _ of steps(timeline, from)) { /* drain */ }
    for (const { seq, state } of held) {
      assert.equal(stateDigest(state).toString('hex'), expected.get(seq), `the held state at ${seq} changed under a private fold from ${from}`);
      assert.equal(stateDigest(timeline.stateAt(seq)).toString('hex'), expected.get(seq), `seek to ${seq} after a private fold from ${from}`);
    }
    store.close();
  }), { numRuns: runs(30) });
});

test('seek equals fold on forks and forks of forks (their prefix is the parent\'s)', () => {
  const scenarios = fc.oneof({ weight: 3, arbitrary: scenarioArbitrary() }, { weight: 1, arbitrary: scenarioArbitrary({ long: true }) });
  const fraction = fc.double({ min: 0, max: 1, noNaN: true });
  const modification = fc.oneof(
    fc.constantFrom(...PROFILES).map((p): [string, string] => ['profile', p]),
    fc.integer({ min: 1, max: 6 }).map((q): [string, string] => ['quantum', String(q)]),
  );
  fc.assert(fc.property(scenarios, fc.array(fc.tuple(fraction, modification), { minLength: 1, maxLength: 2 }), positions, (scenario, forks, fractions) => {
    const store = dir.store();
    let row = record(store, scenario.text, { checkpointEvery: CHECKPOINT_EVERY }, scenario.config).row;
    for (const [at, change] of forks) {
      const fork = forkRun(store, {
        parent: row, at: Math.round(at * row.eventCount), modifications: [change], simVersion: SIM_VERSION, writerPid: process.pid,
      }, { checkpointEvery: CHECKPOINT_EVERY });
      row = store.run(fork.run);
    }
    const seqs = [0, row.eventCount, ...fractions.map((f) => Math.round(f * row.eventCount))];
    const expected = foldDigests(store, row, seqs);
    const timeline = new Timeline(store, row);
    for (const seq of seqs) {
      assert.equal(stateDigest(timeline.stateAt(seq)).toString('hex'), expected.get(seq), `seek to ${seq} of fork run ${row.id} (${row.name})`);
    }
    store.close();
  }), { numRuns: runs(40) });
});

/**
 * The guided mode's parts and the queue's payloads, each against an outside reference:
 * - event-kind pairs equal a brute-force pass over the events of a recorded case;
 * - the distance to a foreign frame equals a brute-force search over the page permission table;
 * - mutants are cases the machine accepts (every action a valid input), never empty, never
 *   longer than allowed;
 * - shrinking keeps the finding and ends 1-minimal (no single action can go);
 * - a guided campaign is a function of its seed; it finds the planted flaws within a bound
 *   (fixed seed), and what it finds is a recording that verifies and shows the violation;
 * - shards: shares add up to the budget; a valid payload round-trips, others are refused
 *   (and nothing else is ever thrown); signatures ignore what differs between cases of a bug;
 * - the coverage table partitions each closed list into reached and never reached.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { EventOf } from '../src/events/schema.ts';
import { EVENT_KINDS } from '../src/events/schema.ts';
import { FLAWS, type FlawName } from '../src/core/hypervisor/flaws.ts';
import type { MachineState } from '../src/core/machine/state.ts';
import { Timeline } from '../src/replay/timeline.ts';
import { verifyRun } from '../src/replay/verify.ts';
import { actionArbitrary, type Action } from '../src/fuzz/actions.ts';
import { caseConfig, caseShapeArbitrary, caseYaml } from '../src/fuzz/case.ts';
import { coverageTable } from '../src/fuzz/coverage-table.ts';
import { CaseFeatures, foreignFrameDistance } from '../src/fuzz/features.ts';
import { Coverage } from '../src/fuzz/fuzz-machine.ts';
import { runGuidedCampaign } from '../src/fuzz/guided.ts';
import { JOB_FORMAT, SHARD_RUNS, ShardRefused, findingSignature, parseShard, runShares, type Shard } from '../src/fuzz/jobs.ts';
import { mutate, Prng, type Candidate } from '../src/fuzz/mutate.ts';
import { shrinkCase } from '../src/fuzz/shrink.ts';
import { TempDir, record, runs } from './helpers.ts';

const dir = new TempDir();
after(() => dir.cleanup());

const candidateArbitrary = fc.record({ shape: caseShapeArbitrary, actions: fc.array(actionArbitrary(), { minLength: 1, maxLength: 8 }) });

test('event-kind pairs are exactly the consecutive kinds of the case (brute force over its recording)', () => {
  fc.assert(fc.property(candidateArbitrary, ({ shape, actions }) => {
    const store = dir.store();
    const { row } = record(store, caseYaml(shape, 'secure', [], actions), { maxEvents: 20_000 });
    const events = [...new Timeline(store, row).iterate(0, row.eventCount)].map(([, e]) => e);
    const features = new CaseFeatures();
    const noFrames = { ppt: new Map() } as unknown as MachineState;
    for (const e of events) features.add(e, noFrames);
    const expected = new Set(events.slice(1).map((e, i) => `pair:${events[i].kind}>${e.kind}`));
    assert.deepEqual(new Set(features.list().filter((f) => f.startsWith('pair:'))), expected);
    store.close();
  }), { numRuns: runs(8) });
});

test('the distance to a foreign frame is the brute-force nearest frame of another guest, capped', () => {
  const owners = fc.array(fc.tuple(fc.nat(40), fc.integer({ min: -1, max: 4 })), { maxLength: 30 });
  fc.assert(fc.property(owners, fc.nat(40), fc.integer({ min: 1, max: 4 }), (entries, mfn, dom) => {
    const ppt = new Map(entries.map(([frame, owner]) => [frame, { owner, rights: 3 }]));
    const state = { ppt } as unknown as MachineState;
    const foreign = [...ppt].filter(([frame, e]) => frame !== mfn && e.owner > 0 && e.owner !== dom).map(([frame]) => Math.abs(frame - mfn));
    const brute = Math.min(9, ...foreign);
    assert.equal(foreignFrameDistance(state, mfn, dom), brute);
  }), { numRuns: runs(300) });
});

test('mutants are cases the machine accepts: valid inputs, never empty, at most maxActions', () => {
  fc.assert(fc.property(candidateArbitrary, candidateArbitrary, fc.nat(), fc.integer({ min: 1, max: 12 }), (entry, other, seed, maxActions) => {
    const rng = new Prng(seed);
    const fresh = fc.sample(actionArbitrary(), { seed, numRuns: 20 });
    let k = 0;
    const sources = { freshAction: (): Action => fresh[k++ % fresh.length], other: (): Candidate => other, maxActions };
    let current: Candidate = entry;
    for (let i = 0; i < 5; i++) {
      current = mutate(current, rng, sources);
      assert.ok(current.actions.length >= 1 && current.actions.length <= maxActions, `${current.actions.length} actions`);
      // Parsing the case's scenario checks every input as the machine will read it.
      caseConfig(current.shape, 'secure', [], current.actions);
    }
  }), { numRuns: runs(200) });
});

test('shrinking keeps the finding and ends 1-minimal', () => {
  // A synthetic bug: it shows when the case holds a DMA write and, later, an MSI.
  const breaks = (actions: Action[]): boolean => {
    const dma = actions.findIndex((a) => a.kind === 'dma' && a.write);
    return dma >= 0 && actions.slice(dma + 1).some((a) => a.kind === 'msi');
  };
  const trial = (c: Candidate) => ({ finding: breaks(c.actions) ? 'dma-confined: synthetic' : undefined, applied: c.actions });
  fc.assert(fc.property(fc.record({ shape: caseShapeArbitrary, actions: fc.array(actionArbitrary(['dma', 'msi', 'wire']), { minLength: 2, maxLength: 12 }) }), (c) => {
    fc.pre(breaks(c.actions));
    const { candidate, finding } = shrinkCase(c, 'dma-confined: first', trial);
    assert.match(finding, /^dma-confined:/);
    assert.ok(breaks(candidate.actions));
    assert.equal(candidate.actions.length, 2, 'a DMA write and an MSI are all it needs');
    for (let i = 0; i < candidate.actions.length; i++) assert.ok(!breaks(candidate.actions.filter((_, j) => j !== i)), `action ${i} could go`);
  }), { numRuns: runs(200) });
});

test('a guided campaign is a function of its seed and starting corpus (same cases, same corpus, same coverage)', () => {
  // Past the first 100 fresh cases, so that mutants run too; then again from the corpus it made.
  const a = runGuidedCampaign({ profile: 'secure', flaws: [], seed: 7, runs: 180 });
  const b = runGuidedCampaign({ profile: 'secure', flaws: [], seed: 7, runs: 180 });
  assert.deepEqual(a.corpus, b.corpus);
  assert.deepEqual([...a.coverage.features.counts], [...b.coverage.features.counts]);
  assert.ok(a.corpus.length > 0, 'the corpus grew');
  const c = runGuidedCampaign({ profile: 'secure', flaws: [], seed: 8, runs: 60, corpus: a.corpus });
  const d = runGuidedCampaign({ profile: 'secure', flaws: [], seed: 8, runs: 60, corpus: a.corpus });
  assert.deepEqual(c.corpus, d.corpus);
  assert.equal(c.coverage.exits, d.coverage.exits);
});

/** Cases a guided campaign may take to find a flaw with this seed (measured: at most 156 over seeds 1-3; double-fetch-descriptor is left to the random mode's tests, guided needs thousands). */
const GUIDED_BOUND = 1000;
const GUIDED_SEED = 1;

test(`the guided mode finds every planted flaw but double-fetch-descriptor within ${GUIDED_BOUND} cases; its counterexamples verify and show the violation`, () => {
  for (const flaw of FLAWS.filter((f) => f !== 'double-fetch-descriptor') as FlawName[]) {
    const result = runGuidedCampaign({ profile: 'secure', flaws: [flaw], seed: GUIDED_SEED, runs: GUIDED_BOUND });
    const c = result.counterexample;
    assert.ok(c !== undefined, `${flaw} not found in ${result.runs} guided cases`);
    assert.equal(c.mode, 'guided');
    assert.ok(c.actions.length <= 6, `${flaw}: the shrunk counterexample still has ${c.actions.length} actions`);
    const store = dir.store();
    const { row } = record(store, c.yaml, { maxEvents: 40_000 });
    assert.ok(verifyRun(store, row).ok, `${flaw}: verify`);
    const violations = [...new Timeline(store, row).iterate(0, row.eventCount)].map(([, e]) => e).filter((e): e is EventOf<'violation'> => e.kind === 'violation');
    if (!c.finding.startsWith('dead domain')) assert.ok(violations.some((v) => c.finding.startsWith(`${v.invariant}:`)), `${flaw}: the recording shows no ${c.finding.split(':')[0]}`);
    store.close();
  }
});

test('shard budgets add up to the campaign\'s cases, none above SHARD_RUNS', () => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 100_000 }), (n) => {
    const shares = runShares(n);
    assert.equal(shares.reduce((a, b) => a + b, 0), n);
    assert.ok(shares.every((s) => s >= 1 && s <= SHARD_RUNS));
  }));
});

const shardArbitrary: fc.Arbitrary<Shard> = fc.record({
  format: fc.constant(JOB_FORMAT), simVersion: fc.constant('1.2.3'), campaign: fc.string({ minLength: 1 }), index: fc.nat(),
  options: fc.record({
    profile: fc.constantFrom('secure' as const, 'vanilla' as const), flaws: fc.subarray([...FLAWS]), seed: fc.nat(2 ** 31 - 1), runs: fc.integer({ min: 1, max: 500 }),
    guided: fc.boolean(), corpus: fc.array(fc.record({ shape: caseShapeArbitrary, actions: fc.array(actionArbitrary(), { maxLength: 3 }), features: fc.array(fc.string(), { maxLength: 3 }) }), { maxLength: 2 }),
  }),
});

test('a shard payload round-trips through JSON; another version or format is refused with the reason; junk is refused, never thrown otherwise', () => {
  fc.assert(fc.property(shardArbitrary, (shard) => {
    const sent = JSON.parse(JSON.stringify(shard)) as unknown;
    assert.deepEqual(parseShard(sent, '1.2.3'), sent);
    assert.throws(() => parseShard(shard, '1.2.4'), (e: Error) => e instanceof ShardRefused && /job from chronovisor 1\.2\.3, this worker is 1\.2\.4/.test(e.message));
    assert.throws(() => parseShard({ ...shard, format: JOB_FORMAT + 1 }, '1.2.3'), (e: Error) => e instanceof ShardRefused && /job format/.test(e.message));
  }), { numRuns: runs(100) });
  fc.assert(fc.property(fc.anything(), fc.option(shardArbitrary, { nil: undefined }), fc.string(), (junk, shard, key) => {
    const payload = shard === undefined ? junk : { ...shard, options: { ...shard.options, [key]: junk } };
    try {
      parseShard(payload, '1.2.3');
    } catch (error) {
      assert.ok(error instanceof ShardRefused, String(error));
    }
  }), { numRuns: runs(300) });
});

test('signatures: one bug whatever the domains, MACs and numbers; different invariants stay apart', () => {
  const domain = fc.constantFrom('alice', 'bob', 'mallory', 'erin', 'dom0');
  const mac = fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 6, maxLength: 6 }).map((b) => b.map((x) => x.toString(16).padStart(2, '0')).join(':'));
  fc.assert(fc.property(domain, domain, domain, domain, mac, mac, fc.nat(), fc.nat(), (a, b, c, d, m1, m2, n1, n2) => {
    const one = findingSignature(`net-isolation: ${a} sent a frame as ${b} (source MAC ${m1}) at frame ${n1}`);
    assert.equal(one, findingSignature(`net-isolation: ${c} sent a frame as ${d} (source MAC ${m2}) at frame ${n2}`));
    assert.notEqual(one, findingSignature(`irq-confined: ${a} sent a frame as ${b} (source MAC ${m1}) at frame ${n1}`));
  }));
});

test('the coverage table splits every closed list into reached and never reached', () => {
  const kinds = fc.subarray([...EVENT_KINDS]);
  fc.assert(fc.property(fc.subarray([0, 1, 2, 10, 12, 18, 30, 48, 49, 77]), fc.subarray([1, 2, 5, 6, 0x22, 0x25, 0x26, 0x99]), kinds, (exits, faults, seen) => {
    const coverage = new Coverage();
    exits.forEach((r) => coverage.exitReasons.add(r));
    faults.forEach((r) => coverage.faultReasons.add(r));
    seen.forEach((k) => coverage.kinds.add(k));
    for (const row of coverageTable(coverage)) {
      if (row.never === null) continue;
      assert.equal(new Set([...row.reached, ...row.never]).size, row.reached.length + row.never.length, `${row.family}: reached and never overlap`);
    }
    const kindsRow = coverageTable(coverage).find((r) => r.family === 'event kinds')!;
    assert.deepEqual(new Set(kindsRow.reached), new Set(seen));
    assert.equal(kindsRow.reached.length + kindsRow.never!.length, EVENT_KINDS.length);
  }));
});

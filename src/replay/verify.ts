/**
 * verify: proves a recording is intact and that replay is deterministic.
 *
 * 1. The hash chain: every chunk in seq order, contiguous, each hash recomputed from the
 *    previous one and the chunk's bytes, the last one equal to the run's head hash, and the
 *    count equal to the run's event count. Catches flipped bytes, deleted and missing chunks.
 *    The shape (positions, counts, the head) is checked first from the chunk rows alone;
 *    each chunk's link is checked where re-execution reads it, so on worker threads too.
 * 2. Re-execution: from every checkpoint, the decider runs again and must emit the recorded
 *    events byte for byte up to the next checkpoint, whose state digest must match. Inputs
 *    are taken from the recording, as replay never needs the outside.
 * 3. The first checkpoint must be the initial state of the recorded scenario.
 */
import { InputError } from '../events/errors.ts';
import { CodecError } from '../events/codec.ts';
import { PROFILES, STEP_OPENERS, type Event, type EventOf, type Profile, type Seq } from '../events/schema.ts';
import { CHUNK_EVENTS, GENESIS_HASH, RecordingDamage, type RecordingStore, type RunRow } from '../events/store.ts';
import { Machine } from '../core/machine/machine.ts';
import { parseScenario } from '../core/machine/scenario.ts';
import type { MachineConfig } from '../core/hypervisor/config.ts';
import { stateDigest } from '../core/machine/snapshot.ts';
import { initialState, type MachineState } from '../core/machine/state.ts';
import { RecordedStream, type ChainProblem } from './recorded-stream.ts';
import { Timeline } from './timeline.ts';

export interface Mismatch {
  check: 'chain' | 'replay' | 'checkpoint' | 'scenario' | 'run';
  seq: Seq;
  message: string;
  expected?: Event;
  actual?: Event;
}

export interface VerifyReport {
  run: number;
  events: Seq;
  chunks: number;
  checkpoints: number;
  replayedEvents: number;
  /**
   * The run is still being recorded: it was verified up to its last committed chunk (the
   * `events` counted when verify began); chunks and checkpoints committed since are left out.
   */
  live: boolean;
  ok: boolean;
  mismatch?: Mismatch;
}

export interface VerifyOptions {
  /** Called as re-execution advances (events replayed so far). */
  onProgress?: (replayed: number, total: number) => void;
}

/** The chunks of a run's lineage in seq order, without their bytes. */
function* lineageChunkHeads(store: RecordingStore, run: RunRow) {
  const lineage = store.lineage(run).reverse();
  for (let i = 0; i < lineage.length; i++) {
    const owner = lineage[i];
    // An ancestor's chunks count only below every later run's base (a fork of a fork may
    // start lower than its parent does).
    const end = Math.min(Infinity, ...lineage.slice(i + 1).map((r) => r.baseSeq));
    for (const head of store.chunkHeads(owner.id, owner.baseSeq)) {
      if (head.firstSeq >= end) break;
      yield head;
    }
  }
}

/**
 * The chain's shape, from the chunks' positions and hashes alone: contiguous from seq 0,
 * short only at the end, as many events as the run says, the last hash the run's head.
 * Each chunk's own link (its hash over the one before it and its bytes) is checked where
 * re-execution reads it (RecordedStream): together they prove the chain, and the links are
 * checked by the workers in parallel rather than by one pass before them.
 */
export function checkChainShape(store: RecordingStore, run: RunRow, live = false): { chunks: number; mismatch?: Mismatch } {
  let head: Buffer = GENESIS_HASH;
  let expectedSeq = 0;
  let chunks = 0;
  for (const chunk of lineageChunkHeads(store, run)) {
    if (live && chunk.firstSeq >= run.eventCount) break;
    if (chunk.firstSeq !== expectedSeq) {
      return { chunks, mismatch: { check: 'chain', seq: expectedSeq, message: `chunk missing: expected one starting at seq ${expectedSeq}, found seq ${chunk.firstSeq}` } };
    }
    if (chunk.count !== CHUNK_EVENTS && chunk.firstSeq + chunk.count !== run.eventCount) {
      return { chunks, mismatch: { check: 'chain', seq: chunk.firstSeq, message: `chunk at seq ${chunk.firstSeq} is short (${chunk.count} events) but is not the last` } };
    }
    head = chunk.hash;
    expectedSeq = chunk.firstSeq + chunk.count;
    chunks++;
  }
  if (expectedSeq !== run.eventCount) {
    return { chunks, mismatch: { check: 'chain', seq: expectedSeq, message: `the run records ${run.eventCount} events but its chunks hold ${expectedSeq}: the run is truncated` } };
  }
  if (!head.equals(run.headHash)) {
    return { chunks, mismatch: { check: 'chain', seq: expectedSeq, message: 'the last chunk is not the run\'s head: chunks were removed from the end' } };
  }
  return { chunks };
}

/** A stretch of the run between two checkpoints: re-executed on its own. */
export interface Segment {
  start: Seq;
  end: Seq;
  /** The segment ends at a checkpoint whose state digest replay must reach. */
  endsAtCheckpoint: boolean;
}

/**
 * The checks that come before re-execution (hash chain, first checkpoint) and the segments
 * to re-execute. Segments are independent, so they may be verified in any order or in
 * parallel; `report` is ok only once they all pass.
 */
export function prepareVerify(store: RecordingStore, run: RunRow): { report: VerifyReport; segments: Segment[] } {
  const live = run.status === 'recording';
  const report: VerifyReport = { run: run.id, events: run.eventCount, chunks: 0, checkpoints: 0, replayedEvents: 0, live, ok: false };
  const failed = (mismatch: Mismatch) => ({ report: { ...report, mismatch }, segments: [] });
  const chain = checkChainShape(store, run, live);
  report.chunks = chain.chunks;
  if (chain.mismatch) return failed(chain.mismatch);
  const timeline = new Timeline(store, run);
  // The checks below read the first and last chunks (and a fork's first own one) before any
  // re-execution does: their links are checked first, so damage there is the chain's.
  for (const seq of new Set([0, run.baseSeq, run.eventCount - 1])) {
    if (seq < 0 || seq >= run.eventCount) continue;
    const problem = new RecordedStream(timeline).seek(seq - (seq % CHUNK_EVENTS));
    if (problem) return failed({ check: 'chain', ...problem });
  }
  // A live run's writer may have committed checkpoints past the count read with its row.
  const seqs = timeline.checkpointSeqs().filter((seq) => !live || seq <= run.eventCount);
  report.checkpoints = seqs.length;
  const beyond = seqs.find((seq) => seq > run.eventCount);
  if (beyond !== undefined) {
    return failed({ check: 'checkpoint', seq: beyond, message: `a checkpoint at seq ${beyond} lies beyond the run's ${run.eventCount} events: events were removed` });
  }
  if (run.status === 'complete' && (run.eventCount === 0 || timeline.event(run.eventCount - 1).kind !== 'machine.halt')) {
    return failed({ check: 'chain', seq: run.eventCount, message: 'the run is marked complete but does not end with machine.halt: events were removed from its end' });
  }
  const problem = checkScenario(timeline, run) ?? checkRunRecord(timeline, run);
  if (problem) return failed(problem);
  const segments = seqs.map((start, i) => ({
    start, end: i + 1 < seqs.length ? seqs[i + 1] : run.eventCount, endsAtCheckpoint: i + 1 < seqs.length,
  })).filter((s) => s.end > s.start || s.endsAtCheckpoint);
  return { report, segments };
}

/**
 * Pages of checkpoints a verifying timeline keeps decoded. Segments are re-executed in seq
 * order, and a checkpoint shares all but a few dozen of its pages with the one before it, so
 * older page versions are never asked for again: with the timeline's default (4096 pages,
 * for readers that seek anywhere) they were most of a verify worker's memory (on 10M events
 * of the long workload, ~90 MB of a worker's ~160 at its peak).
 */
const VERIFY_BLOB_PAGES = 512;

/** A timeline for re-executing a run's segments in seq order. */
export function verifyTimeline(store: RecordingStore, run: RunRow): Timeline {
  return new Timeline(store, run, { blobCachePages: VERIFY_BLOB_PAGES });
}

export function verifyRun(store: RecordingStore, run: RunRow, options: VerifyOptions = {}): VerifyReport {
  const { report, segments } = prepareVerify(store, run);
  if (report.mismatch) return report;
  const timeline = verifyTimeline(store, run);
  for (const segment of segments) {
    const mismatch = replaySegment(timeline, segment);
    report.replayedEvents += segment.end - segment.start;
    options.onProgress?.(report.replayedEvents, run.eventCount);
    if (mismatch) return { ...report, mismatch };
  }
  return { ...report, ok: true };
}

/** The first checkpoint must be what the recorded scenario boots from. */
function checkScenario(timeline: Timeline, run: RunRow): Mismatch | undefined {
  const root = timeline.checkpointSeqs()[0];
  if (root !== 0) return { check: 'checkpoint', seq: 0, message: 'the run has no checkpoint at seq 0' };
  let expected: Buffer;
  try {
    expected = stateDigest(initialState(recordedConfig(timeline)));
  } catch (error) {
    if (error instanceof InputError) return { check: 'scenario', seq: 0, message: `the recorded scenario no longer parses: ${error.message}` };
    throw error;
  }
  const initial = loadCheckpoint(timeline, 0);
  if (isMismatch(initial)) return initial;
  if (!expected.equals(stateDigest(initial))) return { check: 'scenario', seq: 0, message: 'the state at seq 0 is not the initial state of the recorded scenario' };
  return undefined;
}

/**
 * The configuration the run was recorded from: the root run's scenario, the guest sources
 * the recording kept, and the profile given on the command line.
 */
function recordedConfig(timeline: Timeline): MachineConfig {
  const lineage = timeline.store.lineage(timeline.run);
  const run = lineage[lineage.length - 1];
  const recorded = JSON.parse(run.config) as { profile?: unknown; files?: unknown };
  const files = (recorded.files ?? {}) as Record<string, unknown>;
  const config = parseScenario(run.scenario, run.scenarioPath, (name) => {
    const text = typeof files === 'object' && Object.hasOwn(files, name) ? files[name] : undefined;
    if (typeof text !== 'string') throw new InputError('scenario', `the recording does not hold ${name}, which the scenario names`);
    return text;
  });
  if (recorded.profile === undefined) return config;
  if (!PROFILES.includes(recorded.profile as Profile)) throw new InputError('scenario', `the recorded profile ${JSON.stringify(recorded.profile)} is not one of ${PROFILES.join(', ')}`);
  return { ...config, profile: recorded.profile as Profile };
}

/**
 * The columns of a run's record that the chain does not hash are checked against what it
 * does: the seed the run lists is the one the boot event (seq 0) recorded; a fork starts with
 * its own checkpoint at its fork seq, inside its first chunk, and its first events are the
 * modifications its record lists. (The scenario, the guest sources and the profile are
 * covered by checkScenario: the state they boot must be checkpoint 0, which re-execution
 * ties to the chain.)
 */
function checkRunRecord(timeline: Timeline, run: RunRow): Mismatch | undefined {
  // A fork at seq 0 starts with its inputs; the boot event follows them.
  let boot: Event | undefined;
  for (const [, event] of timeline.iterate(0, CHUNK_EVENTS)) {
    if (event.kind !== 'input') { boot = event; break; }
  }
  if (boot?.kind !== 'machine.boot') return { check: 'chain', seq: 0, message: 'the run does not start with machine.boot' };
  if (boot.seed !== run.seed) {
    return { check: 'run', seq: 0, message: `the run's record says seed ${JSON.stringify(run.seed)}, but it booted with seed ${JSON.stringify(boot.seed)}: its seed column was changed` };
  }
  if (run.parentRun === null) return undefined;
  const forkSeq = run.forkSeq!;
  if (forkSeq < run.baseSeq || forkSeq >= run.baseSeq + CHUNK_EVENTS || forkSeq > run.eventCount) {
    return { check: 'run', seq: forkSeq, message: `the fork seq ${forkSeq} is not inside the run's first chunk (from seq ${run.baseSeq}): its record was changed` };
  }
  if (timeline.store.checkpointSeqs(run.id)[0] !== forkSeq) {
    return { check: 'run', seq: forkSeq, message: `the fork has no checkpoint of its own at its fork seq ${forkSeq}: its fork seq was changed` };
  }
  const listed = new Map(Object.entries((JSON.parse(run.config) as { set?: Record<string, unknown> }).set ?? {}));
  const made = forkInputs(timeline, forkSeq);
  for (const key of new Set([...listed.keys(), ...made.keys()])) {
    if (made.get(key) !== listed.get(key)) {
      return { check: 'run', seq: forkSeq, message: `the fork's record lists ${key}=${String(listed.get(key) ?? '(nothing)')}, but its input events at seq ${forkSeq} set ${key}=${made.get(key) ?? '(nothing)'}: its config was changed` };
    }
  }
  return undefined;
}

/** The modifications a fork starts with: the outside input steps at its fork seq (the last value per key). */
function forkInputs(timeline: Timeline, forkSeq: Seq): Map<string, string> {
  const made = new Map<string, string>();
  for (const [, event] of timeline.iterate(forkSeq, forkSeq + CHUNK_EVENTS)) {
    if (event.kind === 'input' && event.index === -1) made.set(event.key, event.value);
    else if (STEP_OPENERS.has(event.kind)) break;
  }
  return made;
}

/**
 * Loads a checkpoint's state, or says why it cannot be loaded. Checkpoints are outside the
 * hash chain, so a damaged one must be reported here, not crash the verifier.
 */
function loadCheckpoint(timeline: Timeline, seq: Seq): MachineState | Mismatch {
  try {
    const loaded = timeline.loadCheckpoint(seq);
    if (loaded.seq !== seq) return { check: 'checkpoint', seq, message: `the checkpoint at seq ${seq} is missing` };
    return loaded.state;
  } catch (error) {
    if (error instanceof RecordingDamage) return { check: 'checkpoint', seq: error.seq ?? seq, message: error.what };
    return { check: 'checkpoint', seq, message: `the checkpoint at seq ${seq} cannot be decoded: ${(error as Error).message}` };
  }
}

const isMismatch = (value: MachineState | Mismatch): value is Mismatch => 'check' in value;

/**
 * Re-runs the decider over a segment and compares what it emits with the recorded bytes,
 * event by event, checking each chunk against the chain as the replay reaches it.
 */
export function replaySegment(timeline: Timeline, { start, end, endsAtCheckpoint }: Segment): Mismatch | undefined {
  const initial = loadCheckpoint(timeline, start);
  if (isMismatch(initial)) return initial;
  const machine = new Machine(initial);
  const recorded = new RecordedStream(timeline);
  const chain = (problem: ChainProblem): Mismatch => ({ check: 'chain', ...problem });
  let seq = start;
  try {
    const problem = start < timeline.length ? recorded.seek(start) : undefined;
    if (problem) return chain(problem);
    while (seq < end && seq < timeline.length) {
      let produced: Event[];
      try {
        // Inputs come from the recording: replay never needs the outside.
        if (recorded.isKind('input')) {
          const input = recorded.event() as EventOf<'input'>;
          produced = machine.input(input.index, input.key, input.value);
        } else {
          produced = machine.step();
        }
      } catch (error) {
        if (error instanceof CodecError) throw error;
        return { check: 'replay', seq, message: `re-execution failed at seq ${seq}: ${(error as Error).message}`, expected: recorded.event() };
      }
      for (const event of produced) {
        if (seq >= timeline.length) break; // a run cut short ends inside a step
        const same = recorded.matchAndAdvance(event);
        if (same === false) return { check: 'replay', seq, message: `re-execution emitted a different event at seq ${seq}`, expected: recorded.event(), actual: event };
        seq++;
        if (same !== true) return chain(same);
      }
    }
  } catch (error) {
    if (!(error instanceof CodecError)) throw error;
    return { check: 'chain', seq, message: `the chunk holding seq ${seq} cannot be decoded (${error.message})` };
  }
  if (endsAtCheckpoint) {
    if (seq !== end) return { check: 'checkpoint', seq: end, message: `the checkpoint at seq ${end} is not at a step boundary (replay reached ${seq})` };
    const checkpoint = loadCheckpoint(timeline, end);
    if (isMismatch(checkpoint)) return checkpoint;
    if (!stateDigest(checkpoint).equals(stateDigest(machine.state))) {
      return { check: 'checkpoint', seq: end, message: `the checkpoint at seq ${end} differs from the state replay reaches` };
    }
  }
  return undefined;
}

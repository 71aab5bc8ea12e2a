/**
 * verify: proves a recording is intact and that replay is deterministic.
 *
 * 1. The hash chain: every chunk in seq order, contiguous, each hash recomputed from the
 *    previous one and the chunk's bytes, the last one equal to the run's head hash, and the
 *    count equal to the run's event count. Catches flipped bytes, deleted and missing chunks.
 * 2. Re-execution: from every checkpoint, the decider runs again and must emit the recorded
 *    events byte for byte up to the next checkpoint, whose state digest must match. Inputs
 *    are taken from the recording, as replay never needs the outside.
 * 3. The first checkpoint must be the initial state of the recorded scenario.
 */
import { InputError } from '../events/errors.ts';
import type { Event, Profile, Seq } from '../events/schema.ts';
import { CHUNK_EVENTS, GENESIS_HASH, chunkHash, inflateChunk, type RecordingStore, type RunRow } from '../events/store.ts';
import { Machine } from '../core/machine/machine.ts';
import { parseScenario } from '../core/machine/scenario.ts';
import type { MachineConfig } from '../core/hypervisor/config.ts';
import { stateDigest } from '../core/machine/snapshot.ts';
import { initialState, type MachineState } from '../core/machine/state.ts';
import { Timeline } from './timeline.ts';

export interface Mismatch {
  check: 'chain' | 'replay' | 'checkpoint' | 'scenario';
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
  ok: boolean;
  mismatch?: Mismatch;
}

export interface VerifyOptions {
  /** Called as re-execution advances (events replayed so far). */
  onProgress?: (replayed: number, total: number) => void;
}

/** The chunks of a run's lineage in seq order, with the run that stores each. */
function* lineageChunks(store: RecordingStore, run: RunRow) {
  const lineage: RunRow[] = [run];
  while (lineage[lineage.length - 1].parentRun !== null) lineage.push(store.run(lineage[lineage.length - 1].parentRun!));
  lineage.reverse();
  for (let i = 0; i < lineage.length; i++) {
    const owner = lineage[i];
    // An ancestor's chunks count only below every later run's base (a fork of a fork may
    // start lower than its parent does).
    const end = Math.min(Infinity, ...lineage.slice(i + 1).map((r) => r.baseSeq));
    for (const row of store.chunkRows(owner.id, owner.baseSeq)) {
      if (row.firstSeq >= end) break;
      yield row;
    }
  }
}

export function verifyChain(store: RecordingStore, run: RunRow): { chunks: number; mismatch?: Mismatch } {
  let head: Buffer = GENESIS_HASH;
  let expectedSeq = 0;
  let chunks = 0;
  for (const row of lineageChunks(store, run)) {
    if (row.firstSeq !== expectedSeq) {
      return { chunks, mismatch: { check: 'chain', seq: expectedSeq, message: `chunk missing: expected one starting at seq ${expectedSeq}, found seq ${row.firstSeq}` } };
    }
    let raw: Buffer;
    try {
      raw = inflateChunk(row.bytes);
    } catch (error) {
      return { chunks, mismatch: { check: 'chain', seq: row.firstSeq, message: `chunk at seq ${row.firstSeq} (run ${row.run}) is damaged: ${(error as Error).message}` } };
    }
    const hash = chunkHash(head, row.firstSeq, row.count, raw);
    if (!hash.equals(row.hash)) {
      return { chunks, mismatch: { check: 'chain', seq: row.firstSeq, message: `chunk at seq ${row.firstSeq} (run ${row.run}) does not match its hash: its bytes or an earlier chunk changed` } };
    }
    if (row.count !== CHUNK_EVENTS && row.firstSeq + row.count !== run.eventCount) {
      return { chunks, mismatch: { check: 'chain', seq: row.firstSeq, message: `chunk at seq ${row.firstSeq} is short (${row.count} events) but is not the last` } };
    }
    head = hash;
    expectedSeq = row.firstSeq + row.count;
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
  const report: VerifyReport = { run: run.id, events: run.eventCount, chunks: 0, checkpoints: 0, replayedEvents: 0, ok: false };
  const chain = verifyChain(store, run);
  report.chunks = chain.chunks;
  if (chain.mismatch) return { report: { ...report, mismatch: chain.mismatch }, segments: [] };
  const timeline = new Timeline(store, run);
  const seqs = timeline.checkpointSeqs();
  report.checkpoints = seqs.length;
  const beyond = seqs.find((seq) => seq > run.eventCount);
  if (beyond !== undefined) {
    return { report: { ...report, mismatch: { check: 'checkpoint', seq: beyond, message: `a checkpoint at seq ${beyond} lies beyond the run's ${run.eventCount} events: events were removed` } }, segments: [] };
  }
  if (run.status === 'complete' && (run.eventCount === 0 || timeline.event(run.eventCount - 1).kind !== 'machine.halt')) {
    return { report: { ...report, mismatch: { check: 'chain', seq: run.eventCount, message: 'the run is marked complete but does not end with machine.halt: events were removed from its end' } }, segments: [] };
  }
  const scenarioProblem = checkScenario(timeline, run);
  if (scenarioProblem) return { report: { ...report, mismatch: scenarioProblem }, segments: [] };
  const segments = seqs.map((start, i) => ({
    start, end: i + 1 < seqs.length ? seqs[i + 1] : run.eventCount, endsAtCheckpoint: i + 1 < seqs.length,
  })).filter((s) => s.end > s.start || s.endsAtCheckpoint);
  return { report, segments };
}

export function verifyRun(store: RecordingStore, run: RunRow, options: VerifyOptions = {}): VerifyReport {
  const { report, segments } = prepareVerify(store, run);
  if (report.mismatch) return report;
  const timeline = new Timeline(store, run);
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
  let run = timeline.run;
  while (run.parentRun !== null) run = timeline.store.run(run.parentRun);
  const recorded = JSON.parse(run.config) as { profile?: Profile; files?: Record<string, string> };
  const files = recorded.files ?? {};
  const config = parseScenario(run.scenario, run.scenarioPath, (name) => {
    if (!(name in files)) throw new InputError('scenario', `the recording does not hold ${name}, which the scenario names`);
    return files[name];
  });
  return recorded.profile ? { ...config, profile: recorded.profile } : config;
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
    return { check: 'checkpoint', seq, message: `the checkpoint at seq ${seq} cannot be decoded: ${(error as Error).message}` };
  }
}

const isMismatch = (value: MachineState | Mismatch): value is Mismatch => 'check' in value;

/** Re-runs the decider over a segment and compares, byte for byte. */
export function replaySegment(timeline: Timeline, { start, end, endsAtCheckpoint }: Segment): Mismatch | undefined {
  const codec = timeline.store.codec;
  const initial = loadCheckpoint(timeline, start);
  if (isMismatch(initial)) return initial;
  const machine = new Machine(initial);
  let seq = start;
  while (seq < end && seq < timeline.length) {
    const recorded = timeline.event(seq);
    let produced: Event[];
    try {
      produced = recorded.kind === 'input' ? machine.input(recorded.index, recorded.key, recorded.value) : machine.step();
    } catch (error) {
      return { check: 'replay', seq, message: `re-execution failed at seq ${seq}: ${(error as Error).message}`, expected: recorded };
    }
    for (const event of produced) {
      if (seq >= timeline.length) break; // a run cut short ends inside a step
      const expected = timeline.event(seq);
      if (!codec.encodeEvent(event).equals(codec.encodeEvent(expected))) {
        return { check: 'replay', seq, message: `re-execution emitted a different event at seq ${seq}`, expected, actual: event };
      }
      seq++;
    }
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

/**
 * Records a machine into a store: drives the decider step by step, injects the scenario's
 * inputs when they are due, appends events chunk by chunk and checkpoints the state every
 * CHECKPOINT_EVERY events' worth of fold (at a step boundary, where the decider can resume).
 */
import { AssertionFailed, assert, isStorageFull } from '../events/errors.ts';
import type { Event, Seq } from '../events/schema.ts';
import { GENESIS_HASH, RunWriter, type RecordingStore, type RunStatus } from '../events/store.ts';
import { Machine } from '../core/machine/machine.ts';
import type { MachineConfig } from '../core/hypervisor/config.ts';
import { dehydrate, KnownBlobs } from '../core/machine/snapshot.ts';
import { initialState, type MachineState } from '../core/machine/state.ts';
import { RUN_FORMATS } from './formats.ts';
import { SummaryBuilder, type RunSummary } from './summary.ts';

/** Events between checkpoints (cpu.step events counted at their weight): bounds what a seek folds. */
export const CHECKPOINT_EVERY = 8192;
/**
 * A cpu.step folds in a fraction of what other events cost (a few registers, no page
 * copies), so a checkpoint covers this many of them per other event: recording a CPU-bound
 * run takes a quarter of the checkpoints. What a seek pays is mostly decoding (~1.5 us an
 * event, whatever its kind: six chunks between checkpoints on the long workload); counting
 * a cpu.step as half an event halves that, but costs 7% more bytes per cpu.step and twice
 * the checkpoints while recording (measured at 1M events), so the spacing stays here.
 */
const CPU_STEPS_PER_EVENT = 4;

export interface DriveOptions {
  /** Stop after this many events of this run (counted from where it starts). */
  maxEvents?: number;
  /** Stop at the end of the first step that records a violation. */
  failOnViolation?: boolean;
  /** Called after each committed chunk (for progress displays). */
  onProgress?: (seq: Seq, tick: number) => void;
  /** Events between checkpoints (default CHECKPOINT_EVERY), a cpu.step counting 1/CPU_STEPS_PER_EVENT. */
  checkpointEvery?: number;
  /**
   * A step whose decision fails one of the simulator's own assertions (a bug in the model, as
   * a hypervisor's BUG_ON) ends the run before that step, `stopped`, instead of throwing: for
   * a fuzzer, whose cases find such bugs too. The step's events are not recorded (the state
   * it left is not trusted).
   */
  stopOnAssertion?: boolean;
}

export interface RunIdentity {
  name: string;
  scenarioText: string;
  scenarioPath: string;
  /** Modifications given on the command line, as JSON, for the record. */
  config: string;
  simVersion: string;
  writerPid: number;
}

export interface DriveResult {
  run: number;
  status: RunStatus;
  summary: RunSummary;
  headHash: Buffer;
  firstViolationSeq: Seq | undefined;
  /**
   * The disk did not take a write (it is full, or the file reached its size limit): what
   * SQLite said. The run ends at its last committed chunk, `stopped` (or left `incomplete`
   * when even that could not be written); `summary` counts the events recorded, committed or not.
   */
  storageFull?: string;
  /** With `stopOnAssertion`: the assertion the next step failed, and the seq it would have begun at. */
  assertion?: { seq: Seq; message: string };
}

/** Records a scenario as a new root run. */
export function recordScenario(store: RecordingStore, config: MachineConfig, identity: RunIdentity, options: DriveOptions = {}): DriveResult {
  const run = store.createRun({
    name: identity.name, parentRun: null, forkSeq: null, baseSeq: 0, seed: config.seed,
    scenario: identity.scenarioText, scenarioPath: identity.scenarioPath, config: identity.config,
    formats: RUN_FORMATS, simVersion: identity.simVersion, headHash: GENESIS_HASH, writerPid: identity.writerPid,
  });
  const writer = new RunWriter(store, run, 0, GENESIS_HASH);
  return drive(store, writer, new Machine(initialState(config)), [], 0, options);
}

/**
 * Runs `machine` from `startSeq`, first applying `modifications` as input steps. Checkpoints
 * the starting state too, so verify and seek can begin there.
 */
export function drive(
  store: RecordingStore, writer: RunWriter, machine: Machine, modifications: [string, string][],
  startSeq: Seq, options: DriveOptions, summary = new SummaryBuilder(),
): DriveResult {
  try {
    return driveSteps(store, writer, machine, modifications, startSeq, options, summary);
  } catch (error) {
    // What was handed to the writer's store thread still reaches the disk, as it would have
    // had each chunk been stored when it filled.
    writer.abandon();
    if (!isStorageFull(error)) throw error;
    return stopOnFullStorage(store, writer, machine, summary, (error as Error).message);
  }
}

/**
 * The disk is full: the run ends where its committed chunks end. Marking it `stopped` is one
 * small write; if the disk does not take even that, the run stays as the writer left it,
 * which readers see as `incomplete` once this process ends. Either way every committed
 * chunk stays readable (each chunk and the run's count are committed together).
 */
function stopOnFullStorage(store: RecordingStore, writer: RunWriter, machine: Machine, summary: SummaryBuilder, message: string): DriveResult {
  const run = store.run(writer.run);
  const result = summary.finish(machine.state.tick);
  let status: RunStatus = 'stopped';
  try {
    store.finishRun(writer.run, status, JSON.stringify(result));
  } catch (error) {
    if (!isStorageFull(error)) throw error;
    if (!store.finishRunWhenFull(writer.run, status, JSON.stringify(result))) status = 'incomplete';
  }
  return { run: writer.run, status, summary: result, headHash: run.headHash, firstViolationSeq: undefined, storageFull: message };
}

function driveSteps(
  store: RecordingStore, writer: RunWriter, machine: Machine, modifications: [string, string][],
  startSeq: Seq, options: DriveOptions, summary: SummaryBuilder,
): DriveResult {
  // The checkpoint spacing and the fold work since the last checkpoint, both in cpu.steps.
  const every = (options.checkpointEvery ?? CHECKPOINT_EVERY) * CPU_STEPS_PER_EVENT;
  let work = 0;
  const limit = options.maxEvents === undefined ? Infinity : startSeq + options.maxEvents;
  const known = new KnownBlobs();
  const checkpoint = (seq: Seq): void => {
    const { bytes, blobs } = dehydrate(machine.state, known);
    writer.checkpoint(seq, bytes, blobs);
  };
  let seq = startSeq;
  let lastCommitted = writer.committedSeq;
  let firstViolationSeq: Seq | undefined;
  checkpoint(seq);
  // Appends a step's events and counts them; returns the seq after them. (A plain function,
  // not a closure over seq: this runs per step.)
  const record = (events: Event[], at: Seq): Seq => {
    writer.append(events);
    for (let i = 0; i < events.length; i++) {
      const event = events[i];
      summary.add(at, event);
      work += event.kind === 'cpu.step' ? 1 : CPU_STEPS_PER_EVENT;
      if (event.kind === 'violation' && firstViolationSeq === undefined) firstViolationSeq = at;
      at++;
    }
    return at;
  };
  for (const [key, value] of modifications) seq = record(machine.input(-1, key, value), seq);
  let status: RunStatus = 'complete';
  let assertion: DriveResult['assertion'];
  while (!machine.state.halted) {
    if (seq >= limit) { status = 'stopped'; break; }
    let events: Event[];
    try {
      events = nextStep(machine);
    } catch (error) {
      if (!options.stopOnAssertion || !(error instanceof AssertionFailed)) throw error;
      assertion = { seq, message: error.message };
      status = 'stopped';
      break;
    }
    seq = record(events, seq);
    if (options.failOnViolation && firstViolationSeq !== undefined) { status = 'stopped'; break; }
    if (work >= every) { checkpoint(seq); work = 0; }
    if (options.onProgress && writer.committedSeq !== lastCommitted) {
      lastCommitted = writer.committedSeq;
      options.onProgress(seq, machine.state.tick);
    }
  }
  // After a failed assertion the state is half a step on: the last checkpoint stays the last.
  if (work > 0 && assertion === undefined) checkpoint(seq);
  writer.flush();
  const result = summary.finish(machine.state.tick);
  store.finishRun(writer.run, status, JSON.stringify(result));
  return { run: writer.run, status, summary: result, headHash: writer.headHash, firstViolationSeq, ...(assertion ? { assertion } : {}) };
}

/**
 * The next step: a scenario input when it is due (or when the machine would otherwise halt
 * with inputs still pending), else whatever the decider decides.
 */
export function nextStep(machine: Machine): Event[] {
  const state: MachineState = machine.state;
  const input = state.config.inputs[state.inputNext];
  if (input !== undefined && state.booted && (input.at <= state.tick || machine.finished)) {
    return machine.input(state.inputNext, input.key, input.value);
  }
  const events = machine.step();
  assert(events.length > 0, 'a step produced no events');
  return events;
}

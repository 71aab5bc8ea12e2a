/**
 * fork: a new run that branches from (run, seq) with modifications entering as input
 * events. It shares the parent's prefix in storage: it stores only the chunks from the
 * parent's chunk that holds the fork point on, and its chain continues the parent's.
 */
import { InputError } from '../events/errors.ts';
import type { Seq } from '../events/schema.ts';
import { CHUNK_EVENTS, GENESIS_HASH, RunWriter, type RecordingStore, type RunRow } from '../events/store.ts';
import { Machine } from '../core/machine/machine.ts';
import { inputProblem } from '../core/machine/scenario.ts';
import { BlobCache, dehydrate, hydrate } from '../core/machine/snapshot.ts';
import type { MachineState } from '../core/machine/state.ts';
import { RUN_FORMATS } from './formats.ts';
import { drive, type DriveOptions, type DriveResult } from './recorder.ts';
import { SummaryBuilder } from './summary.ts';
import { Timeline } from './timeline.ts';

export interface ForkRequest {
  parent: RunRow;
  at: Seq;
  modifications: [string, string][];
  name?: string;
  simVersion: string;
  writerPid: number;
}

/** What is wrong with a modification at this point of the run, if anything. */
export function modificationProblem(state: MachineState, key: string, value: string): string | undefined {
  const running = [...state.domains.values()].filter((d) => d.status === 'running' && d.id !== 0).map((d) => d.name);
  const problem = inputProblem(key, value, state.config.domains);
  if (problem) return problem;
  const name = key.split('.')[1];
  if (key.startsWith('domain.') && !running.includes(name)) {
    return `domain ${name} is not running at this point; running domains: ${running.join(', ') || 'none'}`;
  }
  return undefined;
}

/**
 * A private, mutable copy of a snapshot (the timeline's are frozen and shared), made from its
 * own encoding: blobs such as a program an input installed may not be in the store yet.
 */
function privateCopy(state: MachineState): MachineState {
  const { bytes, blobs } = dehydrate(state);
  const byHash = new Map(blobs.map(([hash, blob]) => [Buffer.from(hash).toString('hex'), blob]));
  return hydrate(bytes, new BlobCache((hash) => byHash.get(Buffer.from(hash).toString('hex'))!));
}

export function forkRun(store: RecordingStore, request: ForkRequest, options: DriveOptions = {}): DriveResult & { forkSeq: Seq } {
  const { parent } = request;
  if (request.at < 0 || request.at > parent.eventCount) {
    throw new InputError('argument', `--at ${request.at}: run ${parent.id} has events 0..${parent.eventCount}; give a seq in that range`);
  }
  const timeline = new Timeline(store, parent);
  const forkSeq = timeline.stepBoundaryAtOrBefore(request.at);
  const state = privateCopy(timeline.stateAt(forkSeq));
  for (const [key, value] of request.modifications) {
    const problem = modificationProblem(state, key, value);
    if (problem) throw new InputError('argument', `--set ${key}=${value}: ${problem}`);
  }
  const baseSeq = Math.floor(forkSeq / CHUNK_EVENTS) * CHUNK_EVENTS;
  // Reading the prefix checks every chunk of it against the chain, the one before the base included.
  const summary = new SummaryBuilder();
  for (const [seq, event] of timeline.iterate(0, forkSeq)) summary.add(seq, event);
  const prefix = timeline.events(baseSeq, forkSeq);
  const head = baseSeq === 0 ? GENESIS_HASH : store.chunkHashAt(store.ownerOf(parent, baseSeq - 1).id, baseSeq - CHUNK_EVENTS)!;
  const run = store.createRun({
    name: request.name ?? `${parent.name}+fork@${forkSeq}`,
    parentRun: parent.id, forkSeq, baseSeq, seed: parent.seed, scenario: parent.scenario,
    scenarioPath: parent.scenarioPath, config: JSON.stringify({ set: Object.fromEntries(request.modifications) }),
    formats: RUN_FORMATS, simVersion: request.simVersion, headHash: head, writerPid: request.writerPid,
  });
  const writer = new RunWriter(store, run, baseSeq, head, prefix);
  const result = drive(store, writer, new Machine(state), request.modifications, forkSeq, options, summary);
  return { ...result, forkSeq };
}

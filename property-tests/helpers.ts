/**
 * Shared plumbing for the property tests: temporary recordings, recording a generated
 * scenario, running a machine without a store, and the plain fold `evolve` over a run.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import fc from 'fast-check';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Event } from '../src/events/schema.ts';
import { RecordingStore, type RunRow } from '../src/events/store.ts';
import { evolve } from '../src/core/machine/evolve.ts';
import { Machine } from '../src/core/machine/machine.ts';
import { parseScenario } from '../src/core/machine/scenario.ts';
import type { MachineConfig } from '../src/core/hypervisor/config.ts';
import { stateDigest } from '../src/core/machine/snapshot.ts';
import { initialState, type MachineState } from '../src/core/machine/state.ts';
import { nextStep, recordScenario, type DriveOptions, type DriveResult } from '../src/replay/recorder.ts';
import { Timeline } from '../src/replay/timeline.ts';

export const SIM_VERSION = 'property-tests';

// Failure reports carry the assertion's message next to the seed, path and counterexample.
fc.configureGlobal({ includeErrorInReport: true });

/** A scratch folder, removed by `cleanup`. */
export class TempDir {
  readonly path = mkdtempSync(join(tmpdir(), 'chronovisor-prop-'));
  private readonly stores: RecordingStore[] = [];
  private count = 0;

  /** A new, empty recording in this folder. */
  store(): RecordingStore {
    const store = RecordingStore.create(join(this.path, `r${this.count++}.db`), SIM_VERSION);
    this.stores.push(store);
    return store;
  }

  file(name: string): string {
    return join(this.path, name);
  }

  cleanup(): void {
    for (const s of this.stores) {
      try { s.close(); } catch { /* already closed */ }
    }
    rmSync(this.path, { recursive: true, force: true });
  }
}

/**
 * Generated guests may run forever (a random `call eax` that lands on the program's start
 * begins it again): a recording stops there, as a user's `--max-events` would, instead of
 * hanging the test. No generated case that ends comes near it.
 */
export const RECORD_EVENT_CAP = 200_000;

/** Records `text` (a scenario) as a new root run, stopped at RECORD_EVENT_CAP events unless `options` says otherwise. */
export function record(store: RecordingStore, text: string, options: DriveOptions = {}, config: MachineConfig = parseScenario(text, 'gen.yaml')): DriveResult & { row: RunRow } {
  const result = recordScenario(store, config, {
    name: 'gen', scenarioText: text, scenarioPath: 'gen.yaml', config: '{}', simVersion: SIM_VERSION, writerPid: process.pid,
  }, { maxEvents: RECORD_EVENT_CAP, ...options });
  return { ...result, row: store.run(result.run) };
}

/** Runs a configuration to the end without a store; returns every event. */
export function runMachine(config: MachineConfig, maxEvents = 200_000): Event[] {
  const machine = new Machine(initialState(config));
  const events: Event[] = [];
  while (!machine.state.halted) {
    events.push(...nextStep(machine));
    if (events.length > maxEvents) throw new Error(`the machine did not halt within ${maxEvents} events`);
  }
  return events;
}

/** The state after events [0, i) folded with `evolve` on a plain mutable object (no immer). */
export function foldDigests(store: RecordingStore, run: RunRow, positions: readonly number[]): Map<number, string> {
  const wanted = [...new Set(positions)].sort((a, b) => a - b);
  const state: MachineState = initialState(parseScenario(run.scenario, run.scenarioPath));
  const timeline = new Timeline(store, run);
  const digests = new Map<number, string>();
  let seq = 0;
  for (const target of wanted) {
    for (const [, event] of timeline.iterate(seq, target)) evolve(state, event);
    seq = target;
    digests.set(target, stateDigest(state).toString('hex'));
  }
  return digests;
}

export const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** numRuns scaled by CHRONOVISOR_PROPERTY_SCALE (default 1) for longer campaigns. */
export function runs(n: number): number {
  const scale = Number(process.env.CHRONOVISOR_PROPERTY_SCALE ?? '1');
  return Math.max(1, Math.round(n * (Number.isFinite(scale) && scale > 0 ? scale : 1)));
}

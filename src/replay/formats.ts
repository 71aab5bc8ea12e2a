/**
 * The formats a run is recorded in, each versioned by a constant next to the code it
 * versions, and the check every read command makes before it reads a run: a run of another
 * version is refused with what differs (exit 2), never left to fail verify.
 *
 * Which version to bump for which change:
 * - events (SCHEMA_VERSION, events/schema.ts): a kind or a field added, removed, reordered
 *   or stored differently; it is the whole file's, as the codec's tables are;
 * - scenario (SCENARIO_FORMAT_VERSION, core/machine/scenario.ts): what a scenario compiles
 *   to (MachineConfig, stored in checkpoints and re-parsed by verify);
 * - machine (MACHINE_VERSION, core/machine/machine.ts): what decide emits from a state, or
 *   what evolve makes of an event;
 * - checkpoint (SNAPSHOT_VERSION, core/machine/snapshot.ts): how a state is encoded.
 */
import { InputError } from '../events/errors.ts';
import { SCHEMA_VERSION } from '../events/schema.ts';
import { formatProblem, type RecordingStore, type RunFormats, type RunRow } from '../events/store.ts';
import { MACHINE_VERSION } from '../core/machine/machine.ts';
import { SCENARIO_FORMAT_VERSION } from '../core/machine/scenario.ts';
import { SNAPSHOT_VERSION } from '../core/machine/snapshot.ts';

/** The formats of the runs this chronovisor records (the events' version is the file's). */
export const RUN_FORMATS: RunFormats = { scenario: SCENARIO_FORMAT_VERSION, machine: MACHINE_VERSION, checkpoint: SNAPSHOT_VERSION };

const FORMAT_NAMES: Record<string, string> = {
  scenario: 'its compiled scenario',
  machine: 'the meaning of its events (what the machine decides and folds)',
  checkpoint: 'its checkpoints',
};

/**
 * What keeps this chronovisor from reading `run`, if anything: the first format it was
 * recorded in that differs from the one read here. A format the run does not name was
 * recorded before runs kept it: format 0.
 */
export function runFormatProblem(run: RunRow): string | undefined {
  const events = formatProblem('its events', run.schemaVersion, SCHEMA_VERSION);
  if (events !== undefined) return events;
  for (const [name, reads] of Object.entries(RUN_FORMATS)) {
    const problem = formatProblem(FORMAT_NAMES[name], run.formats[name] ?? 0, reads);
    if (problem !== undefined) return problem;
  }
  return undefined;
}

/**
 * Refuses a run this chronovisor cannot read, or whose parents it cannot (a fork reads their
 * chunks). A parent link that loops is damage, which the readers report: the walk stops there.
 */
export function checkRunFormats(store: RecordingStore, run: RunRow): void {
  const seen = new Set<number>();
  for (let r: RunRow | undefined = run; r !== undefined && !seen.has(r.id); r = r.parentRun === null ? undefined : store.run(r.parentRun)) {
    seen.add(r.id);
    const problem = runFormatProblem(r);
    if (problem === undefined) continue;
    const whose = r.id === run.id ? '' : ` (the parent of run ${run.id})`;
    throw new InputError('format', `${store.path}: run ${r.id} (${r.name})${whose}: ${problem}`);
  }
}

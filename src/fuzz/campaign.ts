/**
 * A fuzzing campaign: fast-check generates cases (a machine shape and a sequence of
 * adversarial actions as fc.commands), runs each against the machine with the model, and
 * shrinks the first failing case. Deterministic for a seed; the time limit is the only
 * thing that depends on the clock.
 */
import fc from 'fast-check';
import { AssertionFailed } from '../events/errors.ts';
import type { Profile } from '../events/schema.ts';
import type { FlawName } from '../core/hypervisor/flaws.ts';
import { actionArbitrary, type Action } from './actions.ts';
import { caseShapeArbitrary, caseYaml, type CaseShape } from './case.ts';
import { Coverage, FuzzMachine } from './fuzz-machine.ts';
import { ActionCommand, Finding, initialModel, type Model } from './model.ts';
import type { CorpusEntry } from './mutate.ts';

export interface CampaignOptions {
  profile: Profile;
  flaws: readonly FlawName[];
  seed: number;
  /** Stop after this many cases (and/or after timeMs). */
  runs?: number;
  timeMs?: number;
  /**
   * Replay one counterexample: fast-check's path of it (with its seed). The case at the path's
   * first index is run and shrunk again, which leads back along the same path: shrinking is
   * deterministic, while a bare walk of the path would not know which commands ran at each
   * step (what fc.commands shrinks by, its `replayPath`) and loses its way.
   */
  path?: string;
  maxCommands?: number;
  /** Only these families of actions (default: all). */
  focus?: readonly Action['kind'][];
  /** Events one case may take before it is cut short. */
  maxEvents?: number;
  /** Called every `progressEvery` cases. */
  onProgress?: (progress: CampaignProgress) => void;
  progressEvery?: number;
  /** Now, in milliseconds (the CLI's clock; campaigns in tests pass none). */
  clock?: () => number;
  /** Coverage-guided (guided.ts): mutate corpus entries besides generating fresh cases. */
  guided?: boolean;
  /** The guided mode's starting corpus (from the recording, or the coordinator's). */
  corpus?: readonly CorpusEntry[];
}

export interface CampaignProgress {
  runs: number;
  coverage: Coverage;
}

export interface Counterexample {
  /** How it was found: random cases are replayed by seed and path; a guided case by its recording. */
  mode: 'random' | 'guided';
  seed: number;
  path: string;
  shape: CaseShape;
  /** The actions that ran, shrunk. */
  actions: Action[];
  finding: string;
  /** Cases run until the first failure (before shrinking) and the time it took. */
  runsToFind: number;
  msToFind: number | undefined;
  yaml: string;
}

export interface CampaignResult {
  runs: number;
  coverage: Coverage;
  counterexample: Counterexample | undefined;
  /** Corpus entries this campaign added (guided only). */
  corpus: CorpusEntry[];
}

export const DEFAULT_MAX_COMMANDS = 12;
export const DEFAULT_MAX_EVENTS = 40_000;

/** The finding class of a case whose machine failed one of the simulator's own assertions. */
export const ASSERTION_FINDING = 'simulator-assertion';

/**
 * Runs one case; `finding` says what broke: an invariant, the model disagreeing, or the
 * simulator failing its own assertion (a hypervisor bug of the BUG_ON kind, which a
 * mutation of the source can cause as well as a case nobody foresaw).
 */
export function executeCase(shape: CaseShape, commands: Iterable<fc.Command<Model, FuzzMachine>>, options: CampaignOptions, coverage: Coverage): { real: FuzzMachine; finding: string | undefined } {
  const real = new FuzzMachine(shape, options.profile, options.flaws, options.maxEvents ?? DEFAULT_MAX_EVENTS, coverage);
  try {
    if (real.violations.length > 0) throw new Finding(`${real.violations[0].invariant}: ${real.violations[0].detail}`);
    fc.modelRun(() => ({ model: initialModel(), real }), commands);
    return { real, finding: undefined };
  } catch (error) {
    if (error instanceof Finding) return { real, finding: error.message };
    if (error instanceof AssertionFailed) return { real, finding: `${ASSERTION_FINDING}: ${error.message}` };
    throw error;
  }
}

const commandsArbitrary = (maxCommands: number, focus: readonly Action['kind'][] | undefined) =>
  fc.commands([actionArbitrary(focus).map((a) => new ActionCommand(a))], { maxCommands });

export function runCampaign(options: CampaignOptions): CampaignResult {
  const coverage = new Coverage();
  const clock = options.clock;
  const started = clock?.();
  let runs = 0;
  let firstFailure: { runs: number; ms: number | undefined } | undefined;
  const every = options.progressEvery ?? 50;
  const property = fc.property(caseShapeArbitrary, commandsArbitrary(options.maxCommands ?? DEFAULT_MAX_COMMANDS, options.focus), (shape, commands) => {
    // After the first failure fast-check is shrinking: those trials are not the campaign's
    // cases (the guided mode does not count its shrinking either), so the cases a campaign
    // reports stay within its --runs budget.
    if (firstFailure !== undefined) {
      const { finding } = executeCase(shape, commands, options, new Coverage());
      if (finding !== undefined) throw new Finding(finding);
      return;
    }
    runs++;
    if (options.onProgress && runs % every === 0) options.onProgress({ runs, coverage });
    const { real, finding } = executeCase(shape, commands, options, coverage);
    coverage.features.addCase(real.features());
    if (finding === undefined) return;
    firstFailure ??= { runs, ms: started === undefined ? undefined : clock!() - started };
    throw new Finding(finding);
  });
  const details = fc.check(property, {
    seed: options.seed,
    path: options.path?.split(':')[0],
    numRuns: options.path !== undefined ? 1 : options.runs ?? Number.MAX_SAFE_INTEGER,
    interruptAfterTimeLimit: options.timeMs,
    markInterruptAsFailure: false,
  });
  if (!details.failed || details.counterexample === null) return { runs, coverage, counterexample: undefined, corpus: [] };
  const [shape, commands] = details.counterexample;
  // Run the shrunk case once more to learn which actions ran (the model skips impossible ones).
  const { real, finding } = executeCase(shape, commands, options, new Coverage());
  const actions = real.applied;
  return {
    runs,
    coverage,
    corpus: [],
    counterexample: {
      mode: 'random', seed: details.seed, path: details.counterexamplePath ?? '', shape, actions, finding: finding ?? String(details.errorInstance),
      runsToFind: firstFailure?.runs ?? runs, msToFind: firstFailure?.ms,
      yaml: caseYaml(shape, options.profile, options.flaws, actions),
    },
  };
}

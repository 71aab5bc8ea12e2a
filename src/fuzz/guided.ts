/**
 * The coverage-guided campaign: each case is either fresh (fast-check's arbitraries) or a
 * mutant of a corpus entry; a case that reaches a feature no case reached before (features.ts)
 * joins the corpus. The first failing case is shrunk (shrink.ts). Deterministic for a seed
 * and a starting corpus; the time limit is the only thing that depends on the clock.
 */
import fc from 'fast-check';
import { assert, InputError } from '../events/errors.ts';
import { actionArbitrary, type Action } from './actions.ts';
import { caseShapeArbitrary, caseYaml } from './case.ts';
import { DEFAULT_MAX_COMMANDS, executeCase, type CampaignOptions, type CampaignResult } from './campaign.ts';
import { Coverage } from './fuzz-machine.ts';
import { ActionCommand } from './model.ts';
import { mutate, Prng, type Candidate, type CorpusEntry } from './mutate.ts';
import { shrinkCase } from './shrink.ts';

/** Share of cases that are mutants once mutation has begun (the rest are fresh). */
const MUTANT_SHARE = 0.5;
/**
 * Fresh cases a campaign without a starting corpus runs before it mutates: until the common
 * features have been seen, every early case looks new, and mutating those wastes cases
 * (measured on the planted flaws: the median cases to find fell from 46 to 19 with it).
 */
const FRESH_FIRST = 100;
/** The corpus keeps at most this many entries; past it, a new entry replaces a random old one. */
export const CORPUS_MAX = 512;
/** Entries compared when picking one to mutate: the one whose rarest feature is rarest wins. */
const TOURNAMENT = 3;

class Corpus {
  readonly entries: CorpusEntry[];
  readonly added: CorpusEntry[] = [];
  /** Features some entry was first to reach, the starting corpus's included: a case that reaches only these is not new. */
  private readonly known: Set<string>;

  constructor(start: readonly CorpusEntry[], private readonly coverage: Coverage, private readonly rng: Prng) {
    this.entries = [...start].slice(-CORPUS_MAX);
    this.known = new Set(this.entries.flatMap((e) => e.features));
  }

  /** Of the features a case was the campaign's first to reach, those the corpus does not know either. */
  unknown(features: readonly string[]): string[] {
    return features.filter((f) => !this.known.has(f));
  }

  add(entry: CorpusEntry): void {
    for (const f of entry.features) this.known.add(f);
    this.added.push(entry);
    if (this.entries.length < CORPUS_MAX) this.entries.push(entry);
    else this.entries[this.rng.below(CORPUS_MAX)] = entry;
  }

  /** Rare features are where the frontier is: a small tournament favours entries that reached them. */
  pick(): CorpusEntry {
    let best = this.rng.pick(this.entries);
    for (let i = 1; i < TOURNAMENT; i++) {
      const other = this.rng.pick(this.entries);
      if (this.rarity(other) < this.rarity(best)) best = other;
    }
    return best;
  }

  private rarity(entry: CorpusEntry): number {
    let min = Infinity;
    for (const f of entry.features) min = Math.min(min, this.coverage.features.counts.get(f) ?? 0);
    return min;
  }
}

/**
 * Fresh cases drawn as the random mode draws them (fc.commands is an array of at most
 * maxActions actions), in batches: fast-check biases the first values of a sample toward
 * small ones and less so later, as it does over a campaign.
 */
const FRESH_BATCH = 1000;

function freshSource(rng: Prng, focus: CampaignOptions['focus'], maxActions: number) {
  const actionArb = actionArbitrary(focus);
  const caseArb = fc.record({ shape: caseShapeArbitrary, actions: fc.array(actionArb, { maxLength: maxActions }) });
  let cases: Candidate[] = [];
  let actions: Action[] = [];
  return {
    freshCase: (): Candidate => {
      if (cases.length === 0) {
        cases = fc.sample(caseArb, { seed: rng.next() | 0, numRuns: FRESH_BATCH }).reverse();
      }
      return cases.pop()!;
    },
    freshAction: (): Action => {
      if (actions.length === 0) actions = fc.sample(actionArb, { seed: rng.next() | 0, numRuns: FRESH_BATCH }).reverse();
      return actions.pop()!;
    },
  };
}

/** Runs a candidate with the model; a mutant the machine refuses as input (it cannot be applied) finds nothing. */
function trial(candidate: Candidate, options: CampaignOptions, coverage: Coverage) {
  try {
    const { real, finding } = executeCase(candidate.shape, candidate.actions.map((a) => new ActionCommand(a)), options, coverage);
    return { finding, applied: real.applied, features: real.features() };
  } catch (error) {
    if (error instanceof InputError) return { finding: undefined, applied: [], features: [] };
    throw error;
  }
}

export function runGuidedCampaign(options: CampaignOptions): CampaignResult {
  const coverage = new Coverage();
  const rng = new Prng(options.seed);
  const corpus = new Corpus(options.corpus ?? [], coverage, rng);
  const maxActions = options.maxCommands ?? DEFAULT_MAX_COMMANDS;
  const fresh = freshSource(rng, options.focus, maxActions);
  const sources = { freshAction: fresh.freshAction, other: () => corpus.pick(), maxActions };
  // The caller's clock (the CLI's): this module reads none of its own.
  assert(options.timeMs === undefined || options.clock !== undefined, 'a guided campaign with a time limit needs a clock');
  const clock = options.clock ?? (() => 0);
  const started = clock();
  const runsMax = options.runs ?? Number.MAX_SAFE_INTEGER;
  const every = options.progressEvery ?? 50;
  const mutateFrom = corpus.entries.length > 0 ? 1 : FRESH_FIRST + 1;
  for (let runs = 1; runs <= runsMax; runs++) {
    if (options.timeMs !== undefined && clock() - started >= options.timeMs) return { runs: runs - 1, coverage, counterexample: undefined, corpus: corpus.added };
    const candidate = runs >= mutateFrom && corpus.entries.length > 0 && rng.chance(MUTANT_SHARE) ? mutate(corpus.pick(), rng, sources) : fresh.freshCase();
    const result = trial(candidate, options, coverage);
    const reached = corpus.unknown(coverage.features.addCase(result.features));
    if (options.onProgress && runs % every === 0) options.onProgress({ runs, coverage });
    if (result.finding !== undefined) {
      const msToFind = options.clock ? clock() - started : undefined;
      const shrunk = shrinkCase({ shape: candidate.shape, actions: result.applied }, result.finding, (c) => trial(c, options, new Coverage()));
      const { shape, actions } = shrunk.candidate;
      return {
        runs, coverage, corpus: corpus.added,
        counterexample: {
          mode: 'guided', seed: options.seed, path: String(runs - 1), shape, actions, finding: shrunk.finding, runsToFind: runs, msToFind,
          yaml: caseYaml(shape, options.profile, options.flaws, actions),
        },
      };
    }
    if (reached.length > 0) corpus.add({ shape: candidate.shape, actions: result.applied, features: reached });
  }
  return { runs: runsMax, coverage, counterexample: undefined, corpus: corpus.added };
}

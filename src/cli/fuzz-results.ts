/**
 * What a campaign leaves: counterexamples recorded as runs of its recording (one per bug:
 * de-duplicated by invariant and signature), the guided mode's corpus (a table of the same
 * file), and the report (text or JSON, with the coverage table).
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Profile } from '../events/schema.ts';
import { RecordingStore } from '../events/store.ts';
import type { FlawName } from '../core/hypervisor/flaws.ts';
import { parseScenario } from '../core/machine/scenario.ts';
import { recordScenario } from '../replay/recorder.ts';
import { actionText, type Action } from '../fuzz/actions.ts';
import { ASSERTION_FINDING, DEFAULT_MAX_EVENTS, type Counterexample } from '../fuzz/campaign.ts';
import { findingClass } from '../fuzz/shrink.ts';
import { coverageTable, coverageTableText } from '../fuzz/coverage-table.ts';
import type { Coverage } from '../fuzz/fuzz-machine.ts';
import { CORPUS_MAX } from '../fuzz/guided.ts';
import { corpusEntrySchema, findingSignature } from '../fuzz/jobs.ts';
import type { CorpusEntry } from '../fuzz/mutate.ts';
import { CLI, SIM_VERSION, openForReading, openForWriting, quote } from './context.ts';
import { explainFirstViolation, type RunExplanation } from './forensics.ts';

/** The options that shape a campaign's cases, and where its findings go. */
export interface CampaignSpec {
  profile: Profile;
  flaws: FlawName[];
  focus: Action['kind'][] | undefined;
  maxActions: number | undefined;
  guided: boolean;
  db: string;
  /** The queue campaign's id (undefined: a local campaign). */
  campaign?: string;
}

// ---- counterexamples as runs ----------------------------------------------------------------

/** The options that shape the cases: a reproduction needs them as they were. */
const caseFlags = (p: Pick<CampaignSpec, 'focus' | 'maxActions'>): string =>
  `${p.focus ? ` --focus ${p.focus.join(',')}` : ''}${p.maxActions !== undefined ? ` --max-actions ${p.maxActions}` : ''}`;

/** A random case is found again from its seed and path; a guided one depends on the corpus it came from, so its recording is what replays it. */
export function reproduce(c: Counterexample, p: CampaignSpec, run: number): string {
  if (c.mode === 'guided') return `${CLI} verify ${quote(p.db)} --run ${run}`;
  const flagList = p.flaws.map((f) => ` --flaw ${f}`).join('');
  return `${CLI} fuzz --profile ${p.profile}${flagList}${caseFlags(p)} --seed ${c.seed} --path ${c.path} --out ${quote(p.db)}`;
}

export function runName(c: Pick<Counterexample, 'seed' | 'path' | 'mode'>, p: Pick<CampaignSpec, 'profile' | 'flaws' | 'focus' | 'maxActions'>): string {
  const flaws = p.flaws.length ? `-${p.flaws.join('+')}` : '';
  const focus = p.focus ? `-focus-${p.focus.join('+')}` : '';
  const size = p.maxActions !== undefined ? `-max${p.maxActions}` : '';
  const where = c.mode === 'guided' ? `guided-seed${c.seed}-case${c.path}` : `seed${c.seed}-path${c.path}`;
  return `fuzz-${p.profile}${flaws}${focus}${size}-${where}`;
}

/** What a run's config says about the fuzz case it records. */
interface RunFuzzInfo { seed: number; path: string; signature?: string; campaign?: string }

function recordCase(store: RecordingStore, c: Counterexample, name: string, info: RunFuzzInfo & Record<string, unknown>): { run: number; headHash: string } {
  const config = parseScenario(c.yaml, 'fuzz-case.yaml');
  const result = recordScenario(store, config, {
    name, scenarioText: c.yaml, scenarioPath: 'fuzz-case.yaml', config: JSON.stringify({ fuzz: info }),
    simVersion: SIM_VERSION, writerPid: process.pid,
  }, { maxEvents: DEFAULT_MAX_EVENTS, stopOnAssertion: true });
  return { run: result.run, headHash: store.run(result.run).headHash.toString('hex') };
}

/** Records a counterexample in a scratch file and returns its head hash (a queue worker's proof of what it found). */
export function recordedHeadHash(c: Counterexample): string {
  const dir = mkdtempSync(join(tmpdir(), 'chronovisor-case-'));
  try {
    const store = RecordingStore.create(join(dir, 'case.db'), SIM_VERSION);
    try {
      return recordCase(store, c, 'case', { seed: c.seed, path: c.path }).headHash;
    } finally {
      store.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A counterexample and the run that records it (for a duplicate: the run that records its signature). */
export interface Recorded {
  c: Counterexample;
  run: number;
  /** Why the run broke its invariant (`explain` of its first violation). */
  why?: RunExplanation;
}

/** Adds to each recorded counterexample the explanation of its run's first violation. */
export function withExplanations(recorded: Recorded[], db: string): Recorded[] {
  return recorded.map((r) => ({ ...r, why: explainFirstViolation(db, r.run) }));
}

/**
 * Adds counterexamples to the campaign's recording, one run per signature: a finding whose
 * signature this campaign already recorded (in this call or, for a queue campaign, before a
 * restart) is not recorded again. Merging the same finding twice records it once.
 */
export function mergeCounterexamples(found: readonly (Counterexample & { headHash?: string })[], p: CampaignSpec): { recorded: Recorded[]; duplicates: Recorded[] } {
  if (found.length === 0) return { recorded: [], duplicates: [] };
  const store = openForWriting(p.db);
  try {
    const seen = p.campaign === undefined ? new Map<string, number>() : campaignSignatures(store, p.campaign);
    const recorded: Recorded[] = [];
    const duplicates: Recorded[] = [];
    for (const c of found) {
      const signature = findingSignature(c.finding);
      const earlier = seen.get(signature);
      if (earlier !== undefined) {
        duplicates.push({ c, run: earlier });
        continue;
      }
      const info = {
        seed: c.seed, path: c.path, mode: c.mode, signature, ...(p.campaign ? { campaign: p.campaign } : {}),
        ...(p.focus ? { focus: p.focus } : {}), ...(p.maxActions !== undefined ? { maxActions: p.maxActions } : {}),
      };
      const { run, headHash } = recordCase(store, c, runName(c, p), info);
      // The worker recorded the same case: a different hash means the two chronovisors disagree.
      if (c.headHash !== undefined && c.headHash !== headHash) {
        throw new Error(`counterexample ${c.finding}: the worker's recording has head hash ${c.headHash}, this one ${headHash}; the worker and the coordinator run different code`);
      }
      seen.set(signature, run);
      recorded.push({ c, run });
    }
    return { recorded, duplicates };
  } finally {
    store.close();
  }
}

/** Signatures a queue campaign has recorded in this file already, with their runs. */
function campaignSignatures(store: RecordingStore, campaign: string): Map<string, number> {
  const seen = new Map<string, number>();
  for (const row of store.runs()) {
    const info = fuzzInfo(row.config);
    if (info?.campaign === campaign && info.signature !== undefined) seen.set(info.signature, row.id);
  }
  return seen;
}

function fuzzInfo(config: string): RunFuzzInfo | undefined {
  try {
    return (JSON.parse(config) as { fuzz?: RunFuzzInfo }).fuzz;
  } catch {
    return undefined;
  }
}

// ---- the corpus, kept in the recording --------------------------------------------------------

const CORPUS_DDL = 'CREATE TABLE IF NOT EXISTS fuzz_corpus (id INTEGER PRIMARY KEY, profile TEXT NOT NULL, entry TEXT NOT NULL)';

/** The corpus a guided campaign starts from: the newest entries of the file (if there is one) whose actions fit the focus. */
export function loadCorpus(p: CampaignSpec): CorpusEntry[] {
  if (!existsSync(p.db)) return [];
  const store = openForReading(p.db);
  try {
    const table = store.db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'fuzz_corpus'").get();
    if (!table) return [];
    const rows = store.db.prepare('SELECT entry FROM fuzz_corpus WHERE profile = ? ORDER BY id DESC LIMIT ?').all(p.profile, CORPUS_MAX) as { entry: string }[];
    const entries = rows.reverse().flatMap((r) => {
      const parsed = corpusEntrySchema.safeParse(JSON.parse(r.entry));
      return parsed.success ? [parsed.data as CorpusEntry] : [];
    });
    return p.focus === undefined ? entries : entries.filter((e) => e.actions.every((a) => p.focus!.includes(a.kind)));
  } finally {
    store.close();
  }
}

/** Adds a campaign's new corpus entries to the recording (creating it if need be). */
export function saveCorpus(entries: readonly CorpusEntry[], p: CampaignSpec): void {
  if (entries.length === 0) return;
  const store = openForWriting(p.db);
  try {
    store.db.exec(CORPUS_DDL);
    const insert = store.db.prepare('INSERT INTO fuzz_corpus (profile, entry) VALUES (?, ?)');
    store.db.transaction(() => { for (const e of entries) insert.run(p.profile, JSON.stringify(e)); })();
  } finally {
    store.close();
  }
}

// ---- the report ---------------------------------------------------------------------------------

/** A campaign's figures; `workers`: threads, or for a queue campaign the most worker processes seen at once. */
export interface Totals { runs: number; coverage: Coverage; seconds: number; workers: number; queue?: string; seed: number; corpus: number }

/** The campaign's report, as printed on stdout: one JSON document, or text with the coverage table. */
export function campaignReport(p: CampaignSpec, t: Totals, recorded: Recorded[], duplicates: number, json: boolean): string {
  return `${(json ? [jsonReport(p, t, recorded, duplicates)] : textReport(p, t, recorded, duplicates)).join('\n')}\n`;
}

function jsonReport(p: CampaignSpec, t: Totals, recorded: Recorded[], duplicates: number): string {
  const { coverage } = t;
  return JSON.stringify({
    profile: p.profile, flaws: p.flaws, focus: p.focus ?? null, mode: p.guided ? 'guided' : 'random', seed: t.seed, workers: t.workers, ...(t.queue ? { queue: t.queue } : {}), ...(p.campaign ? { campaign: p.campaign } : {}),
    runs: t.runs, seconds: t.seconds, runsPerSecond: t.runs / t.seconds, vmExits: coverage.exits, vmExitsPerSecond: coverage.exits / t.seconds, corpus: t.corpus,
    coverage: {
      exitReasons: [...coverage.exitReasons].sort((a, b) => a - b), faultReasons: [...coverage.faultReasons].sort((a, b) => a - b), eventKinds: [...coverage.kinds].sort(),
      table: coverageTable(coverage),
    },
    duplicates,
    counterexamples: recorded.map(({ c, run, why }) => ({
      mode: c.mode, seed: c.seed, path: c.path, finding: c.finding, signature: findingSignature(c.finding), actions: c.actions.map(actionText), runsToFind: c.runsToFind, msToFind: c.msToFind ?? null, run, db: p.db, reproduce: reproduce(c, p, run),
      explanation: why?.json ?? null,
    })),
  });
}

function textReport(p: CampaignSpec, t: Totals, recorded: Recorded[], duplicates: number): string[] {
  const { runs, coverage, seconds } = t;
  const lines = [`${runs} cases in ${seconds.toFixed(1)} s (${Math.round(runs / seconds)}/s), ${coverage.exits} VM exits (${Math.round(coverage.exits / seconds)}/s); coverage: ${coverage.exitReasons.size} exit reasons, ${coverage.faultReasons.size} VT-d fault reasons, ${coverage.kinds.size} event kinds, ${coverage.features.counts.size} features${p.guided ? `; corpus ${t.corpus}` : ''}`];
  lines.push(...coverageTableText(coverageTable(coverage)));
  if (recorded.length === 0) lines.push('no counterexample');
  if (duplicates > 0) lines.push(`${duplicates} more counterexample${duplicates > 1 ? 's' : ''} with a signature already recorded (not recorded again)`);
  for (const { c, run, why } of recorded) {
    lines.push(`counterexample (${c.mode === 'guided' ? `guided, seed ${c.seed}, case ${c.path}` : `seed ${c.seed}, path ${c.path}`}): ${c.finding}`);
    if (c.actions.length === 0) lines.push('  (no action: the machine breaks the invariant on its own, booting the case\'s tenants)');
    for (const action of c.actions) lines.push(`  ${actionText(action)}`);
    lines.push(`  recorded as run ${run} of ${p.db}: ${CLI} tui ${quote(p.db)} --run ${run}   ${CLI} verify ${quote(p.db)} --run ${run}`);
    if (findingClass(c.finding) === ASSERTION_FINDING) lines.push('  the simulator failed its own assertion (a bug in the model, as a BUG_ON in a hypervisor): the run stops before the step that failed it');
    lines.push(`  reproduce: ${reproduce(c, p, run)}`);
    if (why !== undefined) lines.push(`  why (${CLI} explain ${quote(p.db)} SEQ --run ${run}):`, ...why.text.map((line) => `    ${line}`));
  }
  return lines;
}

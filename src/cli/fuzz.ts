/**
 * `chronovisor fuzz`: adversarial campaigns on every core (or, with --queue, on the workers
 * of a BullMQ queue: fuzz-queue.ts), counterexamples recorded as runs, and the scoreboard of
 * planted flaws.
 */
import { FLAWS, type FlawName } from '../core/hypervisor/flaws.ts';
import type { Counterexample } from '../fuzz/campaign.ts';
import { shardSeed } from '../fuzz/jobs.ts';
import type { CorpusEntry } from '../fuzz/mutate.ts';
import { note, out } from './context.ts';
import { DEFAULT_TIME, describeCampaign, parseDuration, plan, type FuzzOptions, type Plan } from './fuzz-plan.ts';
import { Board, runJobs, type Hooks, type JobResult } from './fuzz-threads.ts';
import { campaignReport, loadCorpus, mergeCounterexamples, saveCorpus, withExplanations } from './fuzz-results.ts';
import type { FuzzJob } from './workers/fuzz-worker.ts';

const SCOREBOARD_TIME_MS = 20_000;
const SECURE_LABEL = 'secure (no flaw)';

// ---- a campaign on this machine's threads -------------------------------------------------

/** Each worker fuzzes its own seed with its share of the runs; --path replays one case of one seed. */
function campaignJobs(p: Plan, corpus: CorpusEntry[]): FuzzJob[] {
  const shares = p.path !== undefined ? 1 : Math.max(1, Math.min(p.workers, p.runs ?? p.workers));
  const timeMs = p.runs === undefined && p.path === undefined ? p.timeMs ?? parseDuration(DEFAULT_TIME, '--time') : undefined;
  return Array.from({ length: shares }, (_, w) => ({
    label: `worker ${w}`,
    options: {
      profile: p.profile, flaws: p.flaws, focus: p.focus, maxCommands: p.maxActions, seed: shardSeed(p.seed, w), path: p.path, timeMs,
      runs: p.runs === undefined ? undefined : Math.floor(p.runs / shares) + (w < p.runs % shares ? 1 : 0),
      ...(p.guided ? { guided: true, corpus } : {}),
    },
  }));
}


async function localCampaign(p: Plan): Promise<number> {
  const corpus = p.guided ? loadCorpus(p) : [];
  const jobs = campaignJobs(p, corpus);
  note(describeCampaign(p, `${jobs.length} worker${jobs.length > 1 ? 's' : ''}`) + (p.guided ? `, corpus of ${corpus.length} from ${p.db}` : ''));
  const board = new Board('fuzz');
  board.status(jobs.length, 0);
  const started = performance.now();
  const hooks: Hooks = { progress: (label, n, coverage) => board.update(label, n, coverage), stopOnFind: jobs[0].options.timeMs !== undefined };
  const results = await runJobs(jobs, jobs.length, hooks).finally(() => board.stop());
  const seconds = (performance.now() - started) / 1000;
  const found = results.map((r) => r.counterexample).filter((c): c is Counterexample => c !== undefined);
  // Nothing found, nothing written (a random campaign leaves no empty recording behind); a guided one keeps its corpus.
  const { recorded, duplicates } = mergeCounterexamples(found, p);
  const added = results.flatMap((r) => r.corpus);
  saveCorpus(added, p);
  if (p.path !== undefined && found.length > 0 && found[0].path !== p.path) note(`note: the case at index ${p.path.split(':')[0]} shrinks to path ${found[0].path}, not ${p.path}`);
  const totals = { ...board.total(), seconds, workers: jobs.length, seed: p.seed, corpus: corpus.length + added.length };
  process.stdout.write(campaignReport(p, totals, withExplanations(recorded, p.db), duplicates.length, p.json));
  return recorded.length > 0 ? 1 : 0;
}

export async function fuzzCommand(options: FuzzOptions): Promise<number> {
  const p = plan(options);
  if (options.scoreboard) return scoreboard(p, options.time !== undefined);
  if (p.queue !== undefined) return (await import('./fuzz-queue.ts')).queueCampaign(p, p.queue, options.resume);
  return localCampaign(p);
}

// ---- the scoreboard --------------------------------------------------------------------------

interface Row { flaw: string; expected: boolean; found: boolean; runs: number; seconds: number; length: number | null; finding: string | null }

function scoreRow(flaw: FlawName | null, r: JobResult): Row {
  const c = r.counterexample;
  const seconds = (c?.msToFind ?? r.ms) / 1000;
  return { flaw: flaw ?? '(none: secure)', expected: flaw !== null, found: c !== undefined, runs: c?.runsToFind ?? r.runs, seconds, length: c?.actions.length ?? null, finding: c?.finding ?? null };
}

function printScoreboard(rows: Row[]): void {
  out(`${'flaw'.padEnd(28)} ${'found'.padEnd(6)} ${'runs'.padStart(7)} ${'seconds'.padStart(8)} ${'length'.padStart(6)}  first finding`);
  for (const row of rows) {
    out(`${row.flaw.padEnd(28)} ${(row.found ? 'yes' : 'no').padEnd(6)} ${String(row.runs).padStart(7)} ${row.seconds.toFixed(2).padStart(8)} ${String(row.length ?? '-').padStart(6)}  ${(row.finding ?? '').slice(0, 100)}`);
  }
  const times = rows.filter((r) => r.expected && r.found).map((r) => r.seconds).sort((a, b) => a - b);
  if (times.length) out(`median time to find: ${times[Math.floor((times.length - 1) / 2)].toFixed(2)} s over ${times.length} of ${rows.length - 1} flaws found`);
}

/** One bounded campaign per planted flaw (and a clean secure one): found or not, how fast, how short. Exit 0 only when all flaws are found and the clean campaign finds nothing. */
async function scoreboard(p: Plan, timed: boolean): Promise<number> {
  const budget = p.runs !== undefined ? { runs: p.runs } : { timeMs: timed ? p.timeMs : SCOREBOARD_TIME_MS };
  const targets: (FlawName | null)[] = [...FLAWS, null];
  const jobs: FuzzJob[] = targets.map((flaw) => ({ label: flaw ?? SECURE_LABEL, options: { profile: 'secure', flaws: flaw ? [flaw] : [], focus: p.focus, maxCommands: p.maxActions, seed: p.seed, guided: p.guided, ...budget } }));
  note(`scoreboard${p.guided ? ' (guided)' : ''}: ${FLAWS.length} planted flaws and the clean secure profile, seed ${p.seed}${p.focus ? `, actions ${p.focus.join(', ')}` : ''}, ${p.runs !== undefined ? `${p.runs} runs` : `${budget.timeMs! / 1000} s`} each, ${Math.min(p.workers, jobs.length)} workers`);
  const board = new Board('scoreboard');
  const results = await runJobs(jobs, p.workers, { progress: (label, n, coverage) => board.update(label, n, coverage), stopOnFind: false }).finally(() => board.stop());
  const rows = targets.map((flaw, i) => scoreRow(flaw, results.find((x) => x.label === jobs[i].label)!));
  const ok = rows.every((row) => row.found === row.expected);
  if (p.json) out(JSON.stringify({ seed: p.seed, focus: p.focus ?? null, mode: p.guided ? 'guided' : 'random', ok, rows }));
  else printScoreboard(rows);
  return ok ? 0 : 1;
}

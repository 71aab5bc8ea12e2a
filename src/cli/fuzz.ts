/**
 * `chronovisor fuzz`: adversarial campaigns on every core, counterexamples recorded as runs,
 * and the scoreboard of planted flaws.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import cliProgress from 'cli-progress';
import { InputError } from '../events/errors.ts';
import { PROFILES, type Profile } from '../events/schema.ts';
import { FLAWS, type FlawName } from '../core/flaws.ts';
import { parseScenario } from '../core/scenario.ts';
import { recordScenario } from '../replay/recorder.ts';
import { actionText } from '../fuzz/actions.ts';
import { DEFAULT_MAX_EVENTS, type Counterexample } from '../fuzz/campaign.ts';
import { Coverage } from '../fuzz/fuzz-machine.ts';
import { CLI, SIM_VERSION, note, openForWriting, out, parseCount, quote } from './context.ts';
import type { FuzzJob } from './workers/fuzz-worker.ts';

const BOOT = new URL('./workers/boot.mjs', import.meta.url);
const FUZZ_WORKER = new URL('./workers/fuzz-worker.ts', import.meta.url).href;

export interface FuzzOptions {
  profile?: string;
  flaw: string[];
  time?: string;
  runs?: string;
  seed?: string;
  path?: string;
  workers?: string;
  out?: string;
  json?: boolean;
  scoreboard?: boolean;
}

interface JobResult {
  label: string;
  runs: number;
  coverage: Coverage;
  counterexample: Counterexample | undefined;
  /** Wall time of the job, for the scoreboard. */
  ms: number;
}

/** "60s", "2m", "500ms" or a bare number of seconds, in milliseconds. */
export function parseDuration(text: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  if (!m) throw new InputError('argument', `${flag} ${text}: expected a duration like 60s, 2m or 500ms`);
  const n = Number(m[1]);
  return Math.round(m[2] === 'ms' ? n : m[2] === 'm' ? n * 60_000 : n * 1000);
}

function parseFlaws(names: string[]): FlawName[] {
  for (const name of names) {
    if (!(FLAWS as readonly string[]).includes(name)) throw new InputError('argument', `--flaw ${name}: unknown flaw; flaws: ${FLAWS.join(', ')}`);
  }
  return names as FlawName[];
}

function parseProfile(text: string | undefined): Profile {
  if (text === undefined) return 'secure';
  if (!PROFILES.includes(text as Profile)) throw new InputError('argument', `--profile ${text}: expected ${PROFILES.join(' or ')}`);
  return text as Profile;
}

/** Runs jobs on `workers` threads (jobs dealt round robin); `onProgress` sees every report. */
async function runJobs(jobs: FuzzJob[], workers: number, onProgress: (label: string, runs: number, coverage: Coverage) => void): Promise<JobResult[]> {
  const queues = Array.from({ length: Math.min(workers, jobs.length) }, (_, w) => jobs.filter((_, i) => i % workers === w));
  const results: JobResult[] = [];
  await Promise.all(queues.map((queue) => new Promise<void>((resolve, reject) => {
    const worker = new Worker(BOOT, { workerData: { module: FUZZ_WORKER, jobs: queue } });
    let started = performance.now();
    worker.on('message', (message) => {
      const coverage = new Coverage();
      coverage.merge(message.coverage);
      onProgress(message.label, message.runs, coverage);
      if (message.type === 'result') {
        results.push({ label: message.label, runs: message.runs, coverage, counterexample: message.counterexample, ms: performance.now() - started });
        started = performance.now();
      }
    });
    worker.on('error', reject);
    worker.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`fuzz worker exited with ${code}`))));
  })));
  return results;
}

/** Live totals: runs, runs/s and coverage, on stderr when it is a terminal. */
class Board {
  private readonly runs = new Map<string, number>();
  private readonly coverage = new Map<string, Coverage>();
  private readonly started = performance.now();
  private readonly bar = process.stderr.isTTY
    ? new cliProgress.SingleBar({ format: '{label} {runs} runs | {rate} runs/s | exit reasons {exits} | fault reasons {faults} | event kinds {kinds}', stream: process.stderr, clearOnComplete: true, fps: 4 })
    : undefined;

  constructor(private readonly label: string) {
    this.bar?.start(0, 0, this.fields());
  }

  update(job: string, runs: number, coverage: Coverage): void {
    this.runs.set(job, runs);
    this.coverage.set(job, coverage);
    this.bar?.update(0, this.fields());
  }

  total(): { runs: number; coverage: Coverage } {
    const coverage = new Coverage();
    for (const c of this.coverage.values()) coverage.merge(c);
    return { runs: [...this.runs.values()].reduce((a, b) => a + b, 0), coverage };
  }

  private fields() {
    const { runs, coverage } = this.total();
    const seconds = (performance.now() - this.started) / 1000;
    return { label: this.label, runs, rate: seconds > 0 ? Math.round(runs / seconds) : 0, exits: coverage.exitReasons.size, faults: coverage.faultReasons.size, kinds: coverage.kinds.size };
  }

  stop(): void {
    this.bar?.stop();
  }
}

function reproduce(c: Counterexample, profile: Profile, flaws: readonly FlawName[], db: string): string {
  const flagList = flaws.map((f) => ` --flaw ${f}`).join('');
  return `${CLI} fuzz --profile ${profile}${flagList} --seed ${c.seed} --path ${c.path} --out ${quote(db)}`;
}

/** Records a counterexample as a run of `db`; returns the run's id. */
function recordCounterexample(db: string, c: Counterexample, profile: Profile, flaws: readonly FlawName[]): number {
  const store = openForWriting(db);
  try {
    const config = parseScenario(c.yaml, 'fuzz-case.yaml');
    const name = `fuzz-${profile}${flaws.length ? `-${flaws.join('+')}` : ''}-seed${c.seed}-path${c.path}`;
    const result = recordScenario(store, config, {
      name, scenarioText: c.yaml, scenarioPath: 'fuzz-case.yaml', config: JSON.stringify({ fuzz: { seed: c.seed, path: c.path } }),
      simVersion: SIM_VERSION, writerPid: process.pid,
    }, { maxEvents: DEFAULT_MAX_EVENTS });
    return result.run;
  } finally {
    store.close();
  }
}

export async function fuzzCommand(options: FuzzOptions): Promise<number> {
  const profile = parseProfile(options.profile);
  const flaws = parseFlaws(options.flaw);
  if (options.time !== undefined && options.runs !== undefined) throw new InputError('argument', 'give --time or --runs, not both');
  const timeMs = options.runs === undefined ? parseDuration(options.time ?? '60s', '--time') : undefined;
  const runs = options.runs === undefined ? undefined : parseCount(options.runs, '--runs');
  const seed = options.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : parseCount(options.seed, '--seed');
  const workers = options.workers === undefined ? availableParallelism() : parseCount(options.workers, '--workers');
  const db = options.out ?? 'fuzz.db';
  if (options.scoreboard) return scoreboard({ seed, workers, timeMs: options.time !== undefined ? timeMs : undefined, runs, json: options.json });

  // Each worker fuzzes its own seed; --path replays one case of one seed.
  const shares = options.path !== undefined ? 1 : Math.max(1, workers);
  const jobs: FuzzJob[] = Array.from({ length: shares }, (_, w) => ({
    label: `worker ${w}`,
    options: { profile, flaws, seed: seed + w, path: options.path, timeMs, runs: runs === undefined ? undefined : Math.ceil(runs / shares) },
  }));
  note(`fuzzing ${profile}${flaws.length ? ` with ${flaws.join(', ')}` : ''}: seed ${seed}, ${shares} worker${shares > 1 ? 's' : ''}, ${runs !== undefined ? `${runs} runs` : options.path !== undefined ? 'one case' : `${timeMs! / 1000} s`}`);
  const board = new Board('fuzz');
  const started = performance.now();
  const results = await runJobs(jobs, shares, (label, n, coverage) => board.update(label, n, coverage)).finally(() => board.stop());
  for (const r of results) board.update(r.label, r.runs, r.coverage);
  const seconds = (performance.now() - started) / 1000;
  const { runs: total, coverage } = board.total();
  const found = results.map((r) => r.counterexample).filter((c): c is Counterexample => c !== undefined);
  const recorded = found.map((c) => ({ c, run: recordCounterexample(db, c, profile, flaws) }));
  if (options.json) {
    out(JSON.stringify({
      profile, flaws, seed, workers: shares, runs: total, seconds, runsPerSecond: total / seconds, vmExits: coverage.exits,
      coverage: { exitReasons: [...coverage.exitReasons].sort((a, b) => a - b), faultReasons: [...coverage.faultReasons].sort((a, b) => a - b), eventKinds: [...coverage.kinds].sort() },
      counterexamples: recorded.map(({ c, run }) => ({ seed: c.seed, path: c.path, finding: c.finding, actions: c.actions.map(actionText), run, db, reproduce: reproduce(c, profile, flaws, db) })),
    }));
  } else {
    out(`${total} cases in ${seconds.toFixed(1)} s (${Math.round(total / seconds)}/s), ${coverage.exits} VM exits; coverage: ${coverage.exitReasons.size} exit reasons, ${coverage.faultReasons.size} VT-d fault reasons, ${coverage.kinds.size} event kinds`);
    if (recorded.length === 0) out('no counterexample');
    for (const { c, run } of recorded) {
      out(`counterexample (seed ${c.seed}, path ${c.path}): ${c.finding}`);
      for (const action of c.actions) out(`  ${actionText(action)}`);
      out(`  recorded as run ${run} of ${db}: ${CLI} tui ${quote(db)} --run ${run}   ${CLI} verify ${quote(db)} --run ${run}`);
      out(`  reproduce: ${reproduce(c, profile, flaws, db)}`);
    }
  }
  return recorded.length > 0 ? 1 : 0;
}

/** One bounded campaign per planted flaw (and a clean secure one): found or not, how fast, how short. */
async function scoreboard(o: { seed: number; workers: number; timeMs: number | undefined; runs: number | undefined; json?: boolean }): Promise<number> {
  const budget = o.runs === undefined ? { timeMs: o.timeMs ?? 20_000 } : { runs: o.runs };
  const targets: (FlawName | null)[] = [...FLAWS, null];
  const jobs: FuzzJob[] = targets.map((flaw) => ({ label: flaw ?? 'secure (no flaw)', options: { profile: 'secure', flaws: flaw ? [flaw] : [], seed: o.seed, ...budget } }));
  note(`scoreboard: ${FLAWS.length} planted flaws and the clean secure profile, seed ${o.seed}, ${o.runs !== undefined ? `${o.runs} runs` : `${budget.timeMs! / 1000} s`} each, ${o.workers} workers`);
  const board = new Board('scoreboard');
  const results = await runJobs(jobs, o.workers, (label, n, coverage) => board.update(label, n, coverage)).finally(() => board.stop());
  const rows = targets.map((flaw) => {
    const r = results.find((x) => x.label === (flaw ?? 'secure (no flaw)'))!;
    const c = r.counterexample;
    return { flaw: flaw ?? '(none: secure)', expected: flaw !== null, found: c !== undefined, runs: c?.runsToFind ?? r.runs, seconds: c?.msToFind === undefined ? r.ms / 1000 : c.msToFind / 1000, length: c?.actions.length ?? null, finding: c?.finding ?? null };
  });
  const ok = rows.every((row) => row.found === row.expected);
  if (o.json) {
    out(JSON.stringify({ seed: o.seed, ok, rows }));
  } else {
    out(`${'flaw'.padEnd(28)} ${'found'.padEnd(6)} ${'runs'.padStart(7)} ${'seconds'.padStart(8)} ${'length'.padStart(6)}  first finding`);
    for (const row of rows) {
      out(`${row.flaw.padEnd(28)} ${(row.found ? 'yes' : 'no').padEnd(6)} ${String(row.runs).padStart(7)} ${row.seconds.toFixed(2).padStart(8)} ${String(row.length ?? '-').padStart(6)}  ${(row.finding ?? '').slice(0, 100)}`);
    }
    const times = rows.filter((r) => r.expected && r.found).map((r) => r.seconds).sort((a, b) => a - b);
    if (times.length) out(`median time to find: ${times[Math.floor((times.length - 1) / 2)].toFixed(2)} s over ${times.length} flaws found`);
  }
  return ok ? 0 : 1;
}

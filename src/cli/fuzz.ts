/**
 * `chronovisor fuzz`: adversarial campaigns on every core, counterexamples recorded as runs,
 * and the scoreboard of planted flaws.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import cliProgress from 'cli-progress';
import { InputError } from '../events/errors.ts';
import { PROFILES, type Profile } from '../events/schema.ts';
import { FLAWS, type FlawName } from '../core/hypervisor/flaws.ts';
import { parseScenario } from '../core/machine/scenario.ts';
import { recordScenario } from '../replay/recorder.ts';
import { ACTION_KINDS, actionText, type Action } from '../fuzz/actions.ts';
import { DEFAULT_MAX_EVENTS, type Counterexample } from '../fuzz/campaign.ts';
import { Coverage } from '../fuzz/fuzz-machine.ts';
import { CLI, SIM_VERSION, checkRecordingTarget, note, openForWriting, out, parseCount, quote } from './context.ts';
import type { FuzzJob, WorkerMessage } from './workers/fuzz-worker.ts';

const BOOT = new URL('./workers/boot.mjs', import.meta.url);
const FUZZ_WORKER = new URL('./workers/fuzz-worker.ts', import.meta.url).href;

export interface FuzzOptions {
  profile?: string;
  flaw: string[];
  focus?: string;
  maxActions?: string;
  time?: string;
  runs?: string;
  seed?: string;
  path?: string;
  workers?: string;
  out?: string;
  json?: boolean;
  scoreboard?: boolean;
}

type Kind = Action['kind'];

/** A campaign as the arguments describe it, checked. */
interface Plan {
  profile: Profile;
  flaws: FlawName[];
  focus: Kind[] | undefined;
  /** At most this many actions per case (undefined: the campaign's default). */
  maxActions: number | undefined;
  seed: number;
  workers: number;
  runs: number | undefined;
  timeMs: number | undefined;
  path: string | undefined;
  db: string;
  json: boolean;
}

interface JobResult {
  label: string;
  runs: number;
  coverage: Coverage;
  counterexample: Counterexample | undefined;
  /** Time the job's campaign took (in its worker), for the scoreboard. */
  ms: number;
}

/** fast-check takes 32-bit seeds; ours stay in 0 .. 2^31-1 so that every printed seed reads back. */
const SEED_LIMIT = 2 ** 31;
const DEFAULT_TIME = '60s';
const SCOREBOARD_TIME_MS = 20_000;
const SECURE_LABEL = 'secure (no flaw)';

// ---- arguments ---------------------------------------------------------------------------

/** "60s", "2m", "500ms" or a bare number of seconds, in milliseconds (more than zero). */
export function parseDuration(text: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  const ms = m ? Math.round(m[2] === 'ms' ? Number(m[1]) : m[2] === 'm' ? Number(m[1]) * 60_000 : Number(m[1]) * 1000) : 0;
  if (!m || ms <= 0) throw new InputError('argument', `${flag} ${text}: expected a duration above zero like 60s, 2m or 500ms`);
  return ms;
}

function parseFlaws(names: string[]): FlawName[] {
  for (const name of names) {
    if (!(FLAWS as readonly string[]).includes(name)) throw new InputError('argument', `--flaw ${name}: unknown flaw; flaws: ${FLAWS.join(', ')}`);
  }
  return [...new Set(names)] as FlawName[];
}

function parseProfile(text: string | undefined): Profile {
  if (text === undefined) return 'secure';
  if (!PROFILES.includes(text as Profile)) throw new InputError('argument', `--profile ${text}: expected ${PROFILES.join(' or ')}`);
  return text as Profile;
}

/** A comma list of action families, in ACTION_KINDS order (so `x86,dma` and `dma,x86` are one campaign). */
export function parseFocus(text: string | undefined): Kind[] | undefined {
  if (text === undefined) return undefined;
  const names = text.split(',').map((s) => s.trim());
  for (const name of names) {
    if (!(ACTION_KINDS as string[]).includes(name)) {
      throw new InputError('argument', `--focus ${text}: ${name === '' ? 'empty family' : `unknown action family ${name}`}; families: ${ACTION_KINDS.join(', ')} (a comma list, like --focus dma,msi)`);
    }
  }
  return ACTION_KINDS.filter((kind) => names.includes(kind));
}

function parseSeed(text: string | undefined): number {
  if (text === undefined) return Math.floor(Math.random() * SEED_LIMIT);
  if (!/^\d+$/.test(text) || Number(text) >= SEED_LIMIT) throw new InputError('argument', `--seed ${text}: expected a whole number from 0 to ${SEED_LIMIT - 1}`);
  return Number(text);
}

function parsePath(path: string | undefined, o: FuzzOptions): string | undefined {
  if (path === undefined) return undefined;
  if (!/^\d+(:\d+)*$/.test(path)) throw new InputError('argument', `--path ${path}: expected a fast-check path like 12:0:3, as a counterexample prints it`);
  if (o.seed === undefined) throw new InputError('argument', `--path ${path}: a path replays a case of one seed; give the --seed printed with it`);
  if (o.runs !== undefined || o.time !== undefined) throw new InputError('argument', `--path replays one case: drop ${o.runs !== undefined ? '--runs' : '--time'}`);
  return path;
}

/** The recording counterexamples go to must be usable before the campaign spends its time. */
function checkOut(db: string): string {
  checkRecordingTarget(db);
  return db;
}

function checkScoreboard(o: FuzzOptions): void {
  const conflict = o.flaw.length > 0 ? '--flaw (it plants every flaw in turn)'
    : o.path !== undefined ? '--path'
      : o.out !== undefined ? '--out (it records nothing)'
        : o.profile === 'vanilla' ? '--profile vanilla (it attacks the secure profile)' : undefined;
  if (conflict) throw new InputError('argument', `--scoreboard: drop ${conflict}`);
}

function plan(o: FuzzOptions): Plan {
  const profile = parseProfile(o.profile);
  const flaws = parseFlaws(o.flaw);
  const focus = parseFocus(o.focus);
  const maxActions = o.maxActions === undefined ? undefined : parseCount(o.maxActions, '--max-actions');
  if (o.time !== undefined && o.runs !== undefined) throw new InputError('argument', `--time ${o.time} --runs ${o.runs}: give --time or --runs, not both`);
  const runs = o.runs === undefined ? undefined : parseCount(o.runs, '--runs');
  const timeMs = o.time === undefined ? undefined : parseDuration(o.time, '--time');
  const seed = parseSeed(o.seed);
  const workers = o.workers === undefined ? availableParallelism() : parseCount(o.workers, '--workers');
  if (o.scoreboard) checkScoreboard(o);
  const path = parsePath(o.path, o);
  const db = o.scoreboard ? '' : checkOut(o.out ?? 'fuzz.db');
  return { profile, flaws, focus, maxActions, seed, workers, runs, timeMs, path, db, json: o.json === true };
}

// ---- workers -----------------------------------------------------------------------------

interface Hooks {
  progress: (label: string, runs: number, coverage: Coverage) => void;
  /** Ends the other jobs at the first counterexample (a timed campaign has nothing to wait for). */
  stopOnFind: boolean;
}

const toCoverage = (plain: WorkerMessage['coverage']): Coverage => {
  const coverage = new Coverage();
  coverage.merge(plain);
  return coverage;
};

/** Workers ended on purpose (stopOnFind): their exit is not a failure. */
const stopping = new WeakSet<Worker>();

/** Runs one worker's queue of jobs; `onResult` sees each finished job. */
function runQueue(queue: FuzzJob[], threads: Worker[], hooks: Hooks, onResult: (r: JobResult) => void): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const worker = new Worker(BOOT, { workerData: { module: FUZZ_WORKER, jobs: queue } });
    threads.push(worker);
    worker.on('message', (m: WorkerMessage) => {
      const coverage = toCoverage(m.coverage);
      hooks.progress(m.label, m.runs, coverage);
      if (m.type === 'result') onResult({ label: m.label, runs: m.runs, coverage, counterexample: m.counterexample, ms: m.ms ?? 0 });
    });
    worker.on('error', reject);
    // A worker ended by terminate() (stopOnFind) exits with 1: that is not a failure.
    worker.on('exit', (code) => (code === 0 || stopping.has(worker) ? resolve() : reject(new Error(`fuzz worker exited with ${code}`))));
  });
}

/** Runs jobs on `workers` threads (dealt round robin); results come back in the jobs' order. */
async function runJobs(jobs: FuzzJob[], workers: number, hooks: Hooks): Promise<JobResult[]> {
  const count = Math.min(workers, jobs.length);
  const queues = Array.from({ length: count }, (_, w) => jobs.filter((_, i) => i % count === w));
  const threads: Worker[] = [];
  const results: JobResult[] = [];
  const stopAll = (): void => {
    for (const t of threads) {
      stopping.add(t);
      void t.terminate();
    }
  };
  const onResult = (r: JobResult): void => {
    results.push(r);
    if (hooks.stopOnFind && r.counterexample) stopAll();
  };
  try {
    await Promise.all(queues.map((queue) => runQueue(queue, threads, hooks, onResult)));
  } catch (error) {
    stopAll();
    throw error;
  }
  const order = (r: JobResult): number => jobs.findIndex((j) => j.label === r.label);
  return results.sort((a, b) => order(a) - order(b));
}

/** Live totals: runs, runs/s and coverage, on stderr when it is a terminal (nothing otherwise). */
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

// ---- a campaign ----------------------------------------------------------------------------

/** The options that shape the cases: a reproduction needs them as they were. */
const caseFlags = (p: Pick<Plan, 'focus' | 'maxActions'>): string =>
  `${p.focus ? ` --focus ${p.focus.join(',')}` : ''}${p.maxActions !== undefined ? ` --max-actions ${p.maxActions}` : ''}`;

function reproduce(c: Counterexample, p: Plan): string {
  const flagList = p.flaws.map((f) => ` --flaw ${f}`).join('');
  return `${CLI} fuzz --profile ${p.profile}${flagList}${caseFlags(p)} --seed ${c.seed} --path ${c.path} --out ${quote(p.db)}`;
}

export function runName(c: Pick<Counterexample, 'seed' | 'path'>, p: Pick<Plan, 'profile' | 'flaws' | 'focus' | 'maxActions'>): string {
  const flaws = p.flaws.length ? `-${p.flaws.join('+')}` : '';
  const focus = p.focus ? `-focus-${p.focus.join('+')}` : '';
  const size = p.maxActions !== undefined ? `-max${p.maxActions}` : '';
  return `fuzz-${p.profile}${flaws}${focus}${size}-seed${c.seed}-path${c.path}`;
}

/** Records a counterexample as a run of the plan's recording; returns the run's id. */
function recordCounterexample(c: Counterexample, p: Plan): number {
  const store = openForWriting(p.db);
  try {
    const config = parseScenario(c.yaml, 'fuzz-case.yaml');
    const result = recordScenario(store, config, {
      name: runName(c, p), scenarioText: c.yaml, scenarioPath: 'fuzz-case.yaml',
      config: JSON.stringify({ fuzz: { seed: c.seed, path: c.path, ...(p.focus ? { focus: p.focus } : {}), ...(p.maxActions !== undefined ? { maxActions: p.maxActions } : {}) } }),
      simVersion: SIM_VERSION, writerPid: process.pid,
    }, { maxEvents: DEFAULT_MAX_EVENTS });
    return result.run;
  } finally {
    store.close();
  }
}

/** Each worker fuzzes its own seed with its share of the runs; --path replays one case of one seed. */
function campaignJobs(p: Plan): FuzzJob[] {
  const shares = p.path !== undefined ? 1 : Math.max(1, Math.min(p.workers, p.runs ?? p.workers));
  const timeMs = p.runs === undefined && p.path === undefined ? p.timeMs ?? parseDuration(DEFAULT_TIME, '--time') : undefined;
  return Array.from({ length: shares }, (_, w) => ({
    label: `worker ${w}`,
    options: {
      profile: p.profile, flaws: p.flaws, focus: p.focus, maxCommands: p.maxActions, seed: (p.seed + w) % SEED_LIMIT, path: p.path, timeMs,
      runs: p.runs === undefined ? undefined : Math.floor(p.runs / shares) + (w < p.runs % shares ? 1 : 0),
    },
  }));
}

function describeCampaign(p: Plan, jobs: FuzzJob[]): string {
  const budget = p.path !== undefined ? `the case at path ${p.path}, shrunk again` : p.runs !== undefined ? `${p.runs} runs` : `${jobs[0].options.timeMs! / 1000} s (or until a counterexample)`;
  const what = `${p.profile}${p.flaws.length ? ` with ${p.flaws.join(', ')}` : ''}${p.focus ? `, actions ${p.focus.join(', ')}` : ''}`;
  return `fuzzing ${what}: seed ${p.seed}, ${jobs.length} worker${jobs.length > 1 ? 's' : ''}, ${budget}`;
}

interface Recorded { c: Counterexample; run: number }

function printJson(p: Plan, jobs: FuzzJob[], total: { runs: number; coverage: Coverage }, seconds: number, recorded: Recorded[]): void {
  const { runs, coverage } = total;
  out(JSON.stringify({
    profile: p.profile, flaws: p.flaws, focus: p.focus ?? null, seed: p.seed, workers: jobs.length, runs, seconds, runsPerSecond: runs / seconds, vmExits: coverage.exits,
    coverage: { exitReasons: [...coverage.exitReasons].sort((a, b) => a - b), faultReasons: [...coverage.faultReasons].sort((a, b) => a - b), eventKinds: [...coverage.kinds].sort() },
    counterexamples: recorded.map(({ c, run }) => ({
      seed: c.seed, path: c.path, finding: c.finding, actions: c.actions.map(actionText), runsToFind: c.runsToFind, run, db: p.db, reproduce: reproduce(c, p),
    })),
  }));
}

function printText(p: Plan, total: { runs: number; coverage: Coverage }, seconds: number, recorded: Recorded[]): void {
  const { runs, coverage } = total;
  out(`${runs} cases in ${seconds.toFixed(1)} s (${Math.round(runs / seconds)}/s), ${coverage.exits} VM exits; coverage: ${coverage.exitReasons.size} exit reasons, ${coverage.faultReasons.size} VT-d fault reasons, ${coverage.kinds.size} event kinds`);
  if (recorded.length === 0) out('no counterexample');
  for (const { c, run } of recorded) {
    out(`counterexample (seed ${c.seed}, path ${c.path}): ${c.finding}`);
    if (c.actions.length === 0) out('  (no action: the machine breaks the invariant on its own, booting the case\'s tenants)');
    for (const action of c.actions) out(`  ${actionText(action)}`);
    out(`  recorded as run ${run} of ${p.db}: ${CLI} tui ${quote(p.db)} --run ${run}   ${CLI} verify ${quote(p.db)} --run ${run}`);
    out(`  reproduce: ${reproduce(c, p)}`);
  }
}

export async function fuzzCommand(options: FuzzOptions): Promise<number> {
  const p = plan(options);
  if (options.scoreboard) return scoreboard(p, options.time !== undefined);
  const jobs = campaignJobs(p);
  note(describeCampaign(p, jobs));
  const board = new Board('fuzz');
  const started = performance.now();
  const hooks: Hooks = { progress: (label, n, coverage) => board.update(label, n, coverage), stopOnFind: jobs[0].options.timeMs !== undefined };
  const results = await runJobs(jobs, jobs.length, hooks).finally(() => board.stop());
  const seconds = (performance.now() - started) / 1000;
  const found = results.map((r) => r.counterexample).filter((c): c is Counterexample => c !== undefined);
  // Nothing found, nothing written: a campaign leaves no empty recording behind.
  const recorded = found.map((c) => ({ c, run: recordCounterexample(c, p) }));
  if (p.path !== undefined && found.length > 0 && found[0].path !== p.path) note(`note: the case at index ${p.path.split(':')[0]} shrinks to path ${found[0].path}, not ${p.path}`);
  if (p.json) printJson(p, jobs, board.total(), seconds, recorded);
  else printText(p, board.total(), seconds, recorded);
  return recorded.length > 0 ? 1 : 0;
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
  const jobs: FuzzJob[] = targets.map((flaw) => ({ label: flaw ?? SECURE_LABEL, options: { profile: 'secure', flaws: flaw ? [flaw] : [], focus: p.focus, maxCommands: p.maxActions, seed: p.seed, ...budget } }));
  note(`scoreboard: ${FLAWS.length} planted flaws and the clean secure profile, seed ${p.seed}${p.focus ? `, actions ${p.focus.join(', ')}` : ''}, ${p.runs !== undefined ? `${p.runs} runs` : `${budget.timeMs! / 1000} s`} each, ${Math.min(p.workers, jobs.length)} workers`);
  const board = new Board('scoreboard');
  const results = await runJobs(jobs, p.workers, { progress: (label, n, coverage) => board.update(label, n, coverage), stopOnFind: false }).finally(() => board.stop());
  const rows = targets.map((flaw, i) => scoreRow(flaw, results.find((x) => x.label === jobs[i].label)!));
  const ok = rows.every((row) => row.found === row.expected);
  if (p.json) out(JSON.stringify({ seed: p.seed, focus: p.focus ?? null, ok, rows }));
  else printScoreboard(rows);
  return ok ? 0 : 1;
}

/**
 * `chronovisor fuzz`: adversarial campaigns on every core (or, with --queue, on the workers
 * of a BullMQ queue: fuzz-queue.ts), counterexamples recorded as runs, and the scoreboard of
 * planted flaws.
 */
import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { availableParallelism } from 'node:os';
import { InputError } from '../events/errors.ts';
import { PROFILES } from '../events/schema.ts';
import { FLAWS, type FlawName } from '../core/hypervisor/flaws.ts';
import { ACTION_KINDS, type Action } from '../fuzz/actions.ts';
import type { Counterexample } from '../fuzz/campaign.ts';
import { SEED_LIMIT, shardSeed } from '../fuzz/jobs.ts';
import type { CorpusEntry } from '../fuzz/mutate.ts';
import type { Profile } from '../events/schema.ts';
import { note, openForReading, out, parseCount } from './context.ts';
import { Board, runJobs, type Hooks, type JobResult } from './fuzz-threads.ts';
import { campaignReport, loadCorpus, mergeCounterexamples, saveCorpus, type CampaignSpec } from './fuzz-results.ts';
import { parseQueueUrl, type QueueUrl } from './redis.ts';
import type { FuzzJob } from './workers/fuzz-worker.ts';

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
  guided?: boolean;
  queue?: string;
  resume?: string;
}

type Kind = Action['kind'];

/** A campaign as the arguments describe it, checked. */
export interface Plan extends CampaignSpec {
  seed: number;
  workers: number;
  runs: number | undefined;
  timeMs: number | undefined;
  path: string | undefined;
  json: boolean;
  /** Run on the workers of this queue instead of this machine's threads. */
  queue: QueueUrl | undefined;
}

export const DEFAULT_TIME = '60s';
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
  if (existsSync(db)) openForReading(db).close();
  else if (!existsSync(dirname(db) || '.')) throw new InputError('no-such-file', `--out ${db}: the folder ${dirname(db)} does not exist; create it or choose another --out`);
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
  checkModes(o);
  const queue = o.queue === undefined ? undefined : parseQueueUrl(o.queue);
  const db = o.scoreboard ? '' : checkOut(o.out ?? 'fuzz.db');
  return { profile, flaws, focus, maxActions, seed, workers, runs, timeMs, path, db, json: o.json === true, guided: o.guided === true, queue };
}

/** The guided mode, the queue and resuming exclude some options. */
function checkModes(o: FuzzOptions): void {
  if (o.guided && o.path !== undefined) throw new InputError('argument', `--guided --path ${o.path}: a path replays a random case; a guided counterexample replays from its recording (chronovisor verify DB --run R)`);
  if (o.queue !== undefined && o.workers !== undefined) throw new InputError('argument', `--queue --workers ${o.workers}: a queue campaign runs on 'chronovisor worker --queue URL' processes; drop --workers (give --concurrency to the workers)`);
  if (o.queue !== undefined && o.scoreboard) throw new InputError('argument', '--scoreboard --queue: the scoreboard runs on this machine\'s threads; drop --queue');
  if (o.queue !== undefined && o.path !== undefined) throw new InputError('argument', `--queue --path ${o.path}: replaying one case needs no queue; drop --queue`);
  if (o.resume !== undefined && o.queue === undefined) throw new InputError('argument', `--resume ${o.resume}: resuming a campaign needs the queue it runs on: add --queue redis://HOST:PORT`);
  if (o.resume !== undefined) {
    const shaping = [o.profile && '--profile', o.flaw.length > 0 && '--flaw', o.focus && '--focus', o.maxActions && '--max-actions', o.time && '--time', o.runs && '--runs', o.seed && '--seed', o.guided && '--guided'].filter(Boolean);
    if (shaping.length > 0) throw new InputError('argument', `--resume ${o.resume}: the campaign keeps the options it was started with; drop ${shaping.join(', ')}`);
  }
}

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

export function describeCampaign(p: Plan, workers: string): string {
  const budget = p.path !== undefined ? `the case at path ${p.path}, shrunk again` : p.runs !== undefined ? `${p.runs} runs` : `${(p.timeMs ?? parseDuration(DEFAULT_TIME, '--time')) / 1000} s (or until a counterexample)`;
  const what = `${p.profile}${p.flaws.length ? ` with ${p.flaws.join(', ')}` : ''}${p.focus ? `, actions ${p.focus.join(', ')}` : ''}${p.guided ? ', guided' : ''}`;
  return `fuzzing ${what}: seed ${p.seed}, ${workers}, ${budget}`;
}

async function localCampaign(p: Plan): Promise<number> {
  const existed = existsSync(p.db);
  const corpus = p.guided ? loadCorpus(p, existed) : [];
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
  process.stdout.write(campaignReport(p, totals, recorded, duplicates.length, p.json));
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

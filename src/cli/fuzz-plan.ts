/**
 * The arguments of `chronovisor fuzz`, checked into a plan before anything runs: each bad
 * argument is an input error that names it and says what was expected.
 */
import { availableParallelism } from 'node:os';
import { InputError } from '../events/errors.ts';
import { PROFILES, type Profile } from '../events/schema.ts';
import { FLAWS, type FlawName } from '../core/hypervisor/flaws.ts';
import { ACTION_KINDS, type Action } from '../fuzz/actions.ts';
import { SEED_LIMIT } from '../fuzz/jobs.ts';
import { checkRecordingTarget, parseCount } from './context.ts';
import type { CampaignSpec } from './fuzz-results.ts';
import { parseQueueUrl, type QueueUrl } from './redis.ts';

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

export function plan(o: FuzzOptions): Plan {
  const profile = parseProfile(o.profile);
  const flaws = parseFlaws(o.flaw);
  const focus = parseFocus(o.focus);
  const maxActions = o.maxActions === undefined ? undefined : parseCount(o.maxActions, '--max-actions');
  if (o.time !== undefined && o.runs !== undefined) throw new InputError('argument', `--time ${o.time} --runs ${o.runs}: give --time or --runs, not both`);
  const runs = o.runs === undefined ? undefined : parseCount(o.runs, '--runs');
  const timeMs = o.time === undefined ? undefined : parseDuration(o.time, '--time');
  const seed = parseSeed(o.seed);
  const workers = o.workers === undefined ? availableParallelism() : parseCount(o.workers, '--workers');
  checkModes(o);
  if (o.scoreboard) checkScoreboard(o);
  const path = parsePath(o.path, o);
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

export function describeCampaign(p: Plan, workers: string): string {
  const budget = p.path !== undefined ? `the case at path ${p.path}, shrunk again` : p.runs !== undefined ? `${p.runs} runs` : `${(p.timeMs ?? parseDuration(DEFAULT_TIME, '--time')) / 1000} s (or until a counterexample)`;
  const what = `${p.profile}${p.flaws.length ? ` with ${p.flaws.join(', ')}` : ''}${p.focus ? `, actions ${p.focus.join(', ')}` : ''}${p.guided ? ', guided' : ''}`;
  return `fuzzing ${what}: seed ${p.seed}, ${workers}, ${budget}`;
}

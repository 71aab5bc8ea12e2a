/**
 * A campaign as jobs: a shard is a seed with a share of the budget (cases or time), and, in
 * the guided mode, the corpus the campaign had when the shard was made. A shard is a pure
 * function of its payload, so a shard retried on another machine does the same work.
 * Payloads cross processes and machines: they are checked (`parseShard`) before anything
 * runs, and one of another format or chronovisor version is refused with the reason.
 */
import { z } from 'zod';
import { PROFILES } from '../events/schema.ts';
import { FLAWS } from '../core/hypervisor/flaws.ts';
import { ACTION_KINDS, ATTACKER, TENANTS, type Action } from './actions.ts';
import type { CampaignOptions, Counterexample } from './campaign.ts';
import type { PlainCoverage } from './fuzz-machine.ts';
import type { CorpusEntry } from './mutate.ts';
import { findingClass } from './shrink.ts';

/** Bumped whenever a payload's or a result's fields or meaning change. */
export const JOB_FORMAT = 1;

/** fast-check takes 32-bit seeds; ours stay in 0 .. 2^31-1 so that every printed seed reads back. */
export const SEED_LIMIT = 2 ** 31;

/** Cases per shard of a campaign bounded by cases (small enough that a lost shard costs little). */
export const SHARD_RUNS = 100;
/** Duration of a shard of a timed campaign, at most (a shorter campaign has one shorter shard per worker). */
export const SHARD_MS = 5_000;

export type ShardOptions = Omit<CampaignOptions, 'onProgress' | 'clock' | 'progressEvery'>;

export interface Shard {
  format: number;
  simVersion: string;
  campaign: string;
  index: number;
  options: ShardOptions;
  /**
   * A timed campaign's end (ms since the epoch, the coordinator's clock): a shard that starts
   * late runs only until then, so shards queued ahead never run past the campaign's time.
   */
  deadlineMs?: number;
}

/** What a shard sends back. A counterexample comes with the head hash of its recording on the worker. */
export interface ShardResult {
  runs: number;
  ms: number;
  coverage: PlainCoverage;
  counterexample: (Counterexample & { headHash?: string }) | undefined;
  corpus: CorpusEntry[];
}

/** The seed of shard `index` of a campaign seeded `seed` (worker w of a local campaign: the same rule). */
export const shardSeed = (seed: number, index: number): number => (seed + index) % SEED_LIMIT;

/** Cases per shard for a campaign of `runs` cases: SHARD_RUNS each, the last one the rest. */
export function runShares(runs: number): number[] {
  const shares = Array.from({ length: Math.floor(runs / SHARD_RUNS) }, () => SHARD_RUNS);
  if (runs % SHARD_RUNS > 0) shares.push(runs % SHARD_RUNS);
  return shares;
}

// ---- checking a payload ---------------------------------------------------------------------

const int = z.number().int();
const hex = z.string().regex(/^([0-9a-f]{2})*$/);
const tenant = z.enum(TENANTS);
const action: z.ZodType<Action> = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('guest'), domain: tenant, ops: z.array(z.unknown()).min(1) }),
  z.object({ kind: z.literal('dom0'), op: z.string(), domain: z.string(), args: z.tuple([int, int, int]).optional() }),
  z.object({ kind: z.literal('wire'), frame: hex }),
  z.object({ kind: z.literal('dma'), vf: int.min(1).max(4), write: z.boolean(), iova: int.nonnegative(), data: hex, len: int.positive() }),
  z.object({ kind: z.literal('msi'), sid: int.nonnegative(), address: int.nonnegative(), data: int.nonnegative() }),
  z.object({ kind: z.literal('x86'), image: hex }),
]) as z.ZodType<Action>;
const shape = z.object({ seed: int, pcpus: int.min(1).max(2), quantum: int.min(1), paging: z.enum(['ept', 'shadow']) });
export const corpusEntrySchema = z.object({ shape, actions: z.array(action), features: z.array(z.string()) });

const shardSchema = z.object({
  format: int,
  simVersion: z.string(),
  campaign: z.string().min(1),
  index: int.nonnegative(),
  deadlineMs: z.number().optional(),
  options: z.object({
    profile: z.enum(PROFILES),
    flaws: z.array(z.enum(FLAWS)),
    seed: int.nonnegative().max(SEED_LIMIT - 1),
    runs: int.positive().optional(),
    timeMs: z.number().positive().optional(),
    maxCommands: int.positive().optional(),
    focus: z.array(z.enum(ACTION_KINDS)).optional(),
    maxEvents: int.positive().optional(),
    guided: z.boolean().optional(),
    corpus: z.array(corpusEntrySchema).optional(),
  }).strict(),
});

/** A refused payload: what is wrong with it, for the worker's log and the job's failure. */
export class ShardRefused extends Error {}

/** Checks a payload from the queue; refuses one of another format or version, or a malformed one, saying why. */
export function parseShard(data: unknown, simVersion: string): Shard {
  const header = z.object({ format: z.unknown(), simVersion: z.unknown() }).safeParse(data);
  if (!header.success) throw new ShardRefused('malformed job payload: not an object with format and simVersion');
  if (header.data.format !== JOB_FORMAT) throw new ShardRefused(`job format ${String(header.data.format)}, this worker reads format ${JOB_FORMAT}: run workers of the coordinator's chronovisor version`);
  if (header.data.simVersion !== simVersion) throw new ShardRefused(`job from chronovisor ${String(header.data.simVersion)}, this worker is ${simVersion}: run workers of the coordinator's version`);
  const parsed = shardSchema.safeParse(data);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ShardRefused(`malformed job payload: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  return parsed.data as Shard;
}

// ---- findings -------------------------------------------------------------------------------

const DOMAIN_NAMES = new RegExp(`\\b(${[...TENANTS, ATTACKER, 'dom0'].join('|')})\\b`, 'g');

/**
 * What makes two findings the same bug: the invariant (or model check) and its message with
 * what differs between cases of one bug taken out: the domains involved (alice as bob, bob
 * as mallory), MAC addresses, frame numbers, ids and addresses.
 */
export function findingSignature(finding: string): string {
  const detail = finding.slice(findingClass(finding).length)
    .replace(DOMAIN_NAMES, '<domain>')
    .replace(/\b([0-9a-f]{2}:){5}[0-9a-f]{2}\b/gi, '<mac>')
    .replace(/0x[0-9a-f]+|\d+/gi, '#');
  return `${findingClass(finding)}${detail}`;
}

/**
 * `chronovisor fuzz --queue URL`: the coordinator of a campaign on BullMQ workers.
 *
 * The campaign lives in Redis, not in this process: its plan and counters in a hash, its
 * shards as BullMQ jobs (ids CAMPAIGN-INDEX), the shards already merged in a set. The
 * coordinator keeps one job per free worker slot waiting (so a guided shard starts from the
 * corpus merged so far), merges each finished shard (counterexamples into the recording,
 * de-duplicated by signature; corpus entries into the recording and the next shards), and
 * ends when the budget is spent. Killed, it is started again with --resume CAMPAIGN and
 * finds everything where it was: jobs finished meanwhile are merged then. A worker killed
 * mid-shard loses its lock; BullMQ's stalled-job check moves the shard back to waiting and
 * another worker runs it again (a shard is a pure function of its payload).
 */
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { Job, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { InputError } from '../events/errors.ts';
import { Coverage } from '../fuzz/fuzz-machine.ts';
import { CORPUS_MAX } from '../fuzz/guided.ts';
import { JOB_FORMAT, SHARD_MS, findingSignature, runShares, shardSeed, type Shard, type ShardResult } from '../fuzz/jobs.ts';
import type { CorpusEntry } from '../fuzz/mutate.ts';
import { CLI, SIM_VERSION, note, quote } from './context.ts';
import { DEFAULT_TIME, describeCampaign, parseDuration, type Plan } from './fuzz-plan.ts';
import { campaignReport, loadCorpus, mergeCounterexamples, saveCorpus, withExplanations, type CampaignSpec, type Recorded } from './fuzz-results.ts';
import { Board } from './fuzz-threads.ts';
import { checkRedis, redisClient, type QueueUrl } from './redis.ts';

/** The queue every campaign's shards go to, and the prefix of every key chronovisor keeps in Redis. */
export const QUEUE_NAME = 'fuzz';
export const QUEUE_PREFIX = 'chronovisor';
const campaignKey = (id: string): string => `${QUEUE_PREFIX}:campaign:${id}`;
const jobId = (campaign: string, index: number): string => `${campaign}-${index}`;

/** Attempts of a shard whose worker failed (a thread that died); a refused payload is not retried. */
const SHARD_ATTEMPTS = 3;
const POLL_MS = 500;
/** A guided shard carries at most the newest this many corpus entries (payloads stay small). */
const SHARD_CORPUS_MAX = 128;
/** A finished campaign's keys stay this long, for --resume to report it again. */
const FINISHED_TTL_S = 7 * 24 * 3600;

/** What Redis keeps of a campaign. */
interface Stored {
  spec: CampaignSpec & { seed: number; runs: number | undefined; timeMs: number | undefined };
  createdMs: number;
  /** Shards a --runs campaign has (undefined: a timed one, shards until the deadline). */
  shardRuns: number[] | undefined;
  deadlineMs: number | undefined;
}

/** Worker processes and their slots, from the names workers give their connections (worker.ts; BullMQ keeps it as `rawname`). */
async function workerSlots(queue: Queue): Promise<{ workers: number; slots: number }> {
  const names = new Set((await queue.getWorkers()).map((c) => c.rawname ?? c.name ?? ''));
  let slots = 0;
  for (const name of names) slots += Number(/chronovisor-c(\d+)-/.exec(name)?.[1] ?? 1);
  return { workers: names.size, slots };
}

class Coordinator {
  private readonly results = new Map<number, ShardResult>();
  private readonly progress = new Map<number, { runs: number; exits: number }>();
  private corpus: CorpusEntry[] = [];
  private shards = 0;
  private found = false;
  private readonly recorded: Recorded[] = [];
  private duplicates = 0;
  /** The most worker processes seen at once (this coordinator's polls only). */
  workersSeen = 0;

  constructor(private readonly redis: Redis, private readonly queue: Queue, readonly id: string, readonly stored: Stored, private readonly board: Board) {}

  async load(): Promise<void> {
    const h = await this.redis.hgetall(campaignKey(this.id));
    this.shards = Number(h.shards ?? 0);
    this.found = h.found === '1';
    this.corpus = (await this.redis.lrange(`${campaignKey(this.id)}:corpus`, 0, -1)).map((e) => JSON.parse(e) as CorpusEntry);
  }

  private get spec(): Stored['spec'] {
    return this.stored.spec;
  }

  /** Budget left for new shards: cases of the next shard, or milliseconds of it (undefined: none). */
  private nextBudget(now: number): { runs: number } | { timeMs: number } | undefined {
    if (this.found && this.stored.deadlineMs !== undefined) return undefined;
    if (this.stored.shardRuns !== undefined) return this.shards < this.stored.shardRuns.length ? { runs: this.stored.shardRuns[this.shards] } : undefined;
    const left = this.stored.deadlineMs! - now;
    return left > 0 ? { timeMs: Math.min(SHARD_MS, left) } : undefined;
  }

  private async addShard(budget: { runs: number } | { timeMs: number }): Promise<void> {
    const index = this.shards;
    const s = this.spec;
    const shard: Shard = {
      format: JOB_FORMAT, simVersion: SIM_VERSION, campaign: this.id, index, ...(this.stored.deadlineMs !== undefined ? { deadlineMs: this.stored.deadlineMs } : {}),
      options: {
        profile: s.profile, flaws: s.flaws, seed: shardSeed(s.seed, index), ...budget,
        ...(s.focus ? { focus: s.focus } : {}), ...(s.maxActions !== undefined ? { maxCommands: s.maxActions } : {}),
        ...(s.guided ? { guided: true, corpus: this.corpus.slice(-SHARD_CORPUS_MAX) } : {}),
      },
    };
    // A fixed job id: adding a shard twice (a coordinator killed between add and count) adds it once.
    await this.queue.add('shard', shard, { jobId: jobId(this.id, index), attempts: SHARD_ATTEMPTS, removeOnComplete: false, removeOnFail: false });
    this.shards = index + 1;
    await this.redis.hset(campaignKey(this.id), 'shards', String(this.shards));
  }

  /** Merges a finished shard once: its counterexample into the recording, its corpus entries into the campaign's. */
  private async collect(index: number, result: ShardResult): Promise<void> {
    this.results.set(index, result);
    this.progress.delete(index);
    this.board.update(`shard ${index}`, result.runs, Coverage.from(result.coverage));
    if (result.counterexample) {
      // Merging is idempotent (one run per signature and campaign): a shard merged before a restart finds its run again.
      const merged = mergeCounterexamples([result.counterexample], this.spec);
      for (const r of [...merged.recorded, ...merged.duplicates]) {
        const signature = findingSignature(r.c.finding);
        if (this.recorded.some((x) => findingSignature(x.c.finding) === signature)) this.duplicates++;
        else this.recorded.push(r);
      }
      this.found = true;
      await this.redis.hset(campaignKey(this.id), 'found', '1');
    }
    const collectedKey = `${campaignKey(this.id)}:collected`;
    if (await this.redis.sismember(collectedKey, String(index))) return;
    const fresh = result.corpus.filter((e) => e.features.some((f) => !this.corpus.some((c) => c.features.includes(f))));
    if (fresh.length > 0) {
      saveCorpus(fresh, this.spec);
      this.corpus = [...this.corpus, ...fresh].slice(-CORPUS_MAX);
      await this.redis.rpush(`${campaignKey(this.id)}:corpus`, ...fresh.map((e) => JSON.stringify(e)));
    }
    await this.redis.sadd(collectedKey, String(index));
  }

  /** One look at every shard not merged yet; returns how many are still to run. */
  private async poll(): Promise<number> {
    let outstanding = 0;
    for (let index = 0; index < this.shards; index++) {
      if (this.results.has(index)) continue;
      const job = await Job.fromId<Shard, ShardResult>(this.queue, jobId(this.id, index));
      if (job === undefined) {
        throw new InputError('argument', `campaign ${this.id}: shard ${index} is gone from ${QUEUE_PREFIX}:${QUEUE_NAME} (was Redis emptied?); start a new campaign`);
      }
      const state = await job.getState();
      // The job read before its state may predate its completion: its result is read again.
      const result = state === 'completed' ? (await Job.fromId<Shard, ShardResult>(this.queue, job.id!))?.returnvalue : undefined;
      if (result) {
        await this.collect(index, result);
      } else if (state === 'completed') {
        outstanding++;
      } else if (state === 'failed') {
        throw new InputError('argument', `campaign ${this.id}: shard ${index} failed on a worker: ${job.failedReason}`);
      } else if (this.stored.deadlineMs !== undefined && (this.found || Date.now() >= this.stored.deadlineMs) && state === 'waiting') {
        // A timed campaign ends at its first finding or its deadline: shards not started are dropped.
        await job.remove();
        this.results.set(index, { runs: 0, ms: 0, coverage: new Coverage().plain(), counterexample: undefined, corpus: [] });
      } else {
        outstanding++;
        const p = job.progress as { runs?: number; exits?: number };
        if (typeof p === 'object' && p !== null && typeof p.runs === 'number') this.progress.set(index, { runs: p.runs, exits: p.exits ?? 0 });
      }
    }
    return outstanding;
  }

  private updateBoard(workers: number): void {
    for (const [index, p] of this.progress) {
      const coverage = new Coverage();
      coverage.exits = p.exits;
      this.board.update(`shard ${index}`, p.runs, coverage);
    }
    this.board.status(workers, this.recorded.length + this.duplicates);
  }

  /** Polls, tops the queue up to one shard per free slot (plus one waiting), until the budget is spent and every shard merged. */
  async run(): Promise<void> {
    for (;;) {
      const outstanding = await this.poll();
      const { workers, slots } = await workerSlots(this.queue);
      this.workersSeen = Math.max(this.workersSeen, workers);
      let queued = outstanding;
      for (let budget = this.nextBudget(Date.now()); budget !== undefined && queued < Math.max(slots, 1) + 1; budget = this.nextBudget(Date.now())) {
        await this.addShard(budget);
        queued++;
      }
      this.updateBoard(workers);
      if (queued === 0 && this.nextBudget(Date.now()) === undefined) return;
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }

  totals(): { runs: number; coverage: Coverage } {
    const coverage = new Coverage();
    let runs = 0;
    for (const r of this.results.values()) {
      runs += r.runs;
      coverage.merge(r.coverage);
    }
    return { runs, coverage };
  }

  report(): { recorded: Recorded[]; duplicates: number; corpus: number } {
    return { recorded: this.recorded, duplicates: this.duplicates, corpus: this.corpus.length };
  }
}

async function createCampaign(redis: Redis, p: Plan): Promise<{ id: string; stored: Stored }> {
  const id = `${p.seed}-${randomBytes(3).toString('hex')}`;
  const timeMs = p.runs === undefined ? p.timeMs ?? parseDuration(DEFAULT_TIME, '--time') : undefined;
  const now = Date.now();
  const stored: Stored = {
    spec: { profile: p.profile, flaws: p.flaws, focus: p.focus, maxActions: p.maxActions, guided: p.guided, db: resolve(p.db), campaign: id, seed: p.seed, runs: p.runs, timeMs },
    createdMs: now, shardRuns: p.runs === undefined ? undefined : runShares(p.runs), deadlineMs: timeMs === undefined ? undefined : now + timeMs,
  };
  await redis.hset(campaignKey(id), { stored: JSON.stringify(stored), shards: '0' });
  // A guided campaign starts from the corpus its recording kept.
  const corpus = p.guided ? loadCorpus(stored.spec) : [];
  if (corpus.length > 0) await redis.rpush(`${campaignKey(id)}:corpus`, ...corpus.map((e) => JSON.stringify(e)));
  return { id, stored };
}

async function findCampaign(redis: Redis, id: string, q: QueueUrl): Promise<{ id: string; stored: Stored; finished: Finished | undefined }> {
  const h = await redis.hgetall(campaignKey(id));
  if (h.stored === undefined) {
    const known = [...new Set((await redis.keys(campaignKey('*'))).map((k) => k.split(':')[2]))];
    throw new InputError('argument', `--resume ${id}: no campaign ${id} on ${q.display}${known.length ? `; campaigns there: ${known.join(', ')}` : ''} (the id is printed when a campaign starts)`);
  }
  return { id, stored: JSON.parse(h.stored) as Stored, finished: h.finished === undefined ? undefined : JSON.parse(h.finished) as Finished };
}

/** What a finished campaign keeps for --resume: its exit code and report. */
interface Finished { exitCode: number; report: string }

/** Runs (or resumes) a campaign on the queue's workers; exit 1 when it found a counterexample. */
export async function queueCampaign(p: Plan, q: QueueUrl, resumeId: string | undefined): Promise<number> {
  await checkRedis(q);
  const redis = redisClient(q);
  // BullMQ leaves a connection it was given open: it is closed here, with ours.
  const queueConnection = redisClient(q);
  const queue = new Queue(QUEUE_NAME, { connection: queueConnection, prefix: QUEUE_PREFIX });
  try {
    const { id, stored, finished } = resumeId === undefined ? { ...(await createCampaign(redis, p)), finished: undefined } : await findCampaign(redis, resumeId, q);
    if (finished !== undefined) {
      note(`campaign ${id} has finished; its report:`);
      process.stdout.write(finished.report);
      return finished.exitCode;
    }
    const plan: Plan = { ...p, ...stored.spec, path: undefined };
    note(describeCampaign(plan, `workers of ${q.display}`));
    note(`campaign ${id}: if this process stops, resume with ${CLI} fuzz --queue ${quote(q.display)} --resume ${id}`);
    const board = new Board(`campaign ${id}`);
    const coordinator = new Coordinator(redis, queue, id, stored, board);
    await coordinator.load();
    await coordinator.run().finally(() => board.stop());
    const { recorded, duplicates, corpus } = coordinator.report();
    const totals = { ...coordinator.totals(), seconds: (Date.now() - stored.createdMs) / 1000, workers: coordinator.workersSeen, queue: q.display, seed: stored.spec.seed, corpus };
    const report = campaignReport(plan, totals, withExplanations(recorded, plan.db), duplicates, plan.json);
    const exitCode = recorded.length > 0 ? 1 : 0;
    process.stdout.write(report);
    await finish(redis, queue, id, { exitCode, report });
    return exitCode;
  } finally {
    await queue.close();
    queueConnection.disconnect();
    redis.disconnect();
  }
}

/** A finished campaign keeps its report (for --resume) a week and drops its jobs. */
async function finish(redis: Redis, queue: Queue, id: string, finished: Finished): Promise<void> {
  const shards = Number(await redis.hget(campaignKey(id), 'shards'));
  for (let index = 0; index < shards; index++) await (await Job.fromId(queue, jobId(id, index)))?.remove();
  await redis.hset(campaignKey(id), 'finished', JSON.stringify(finished));
  for (const key of [campaignKey(id), `${campaignKey(id)}:collected`, `${campaignKey(id)}:corpus`]) await redis.expire(key, FINISHED_TTL_S);
}

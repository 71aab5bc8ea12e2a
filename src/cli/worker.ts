/**
 * `chronovisor worker --queue URL [--concurrency N]`: runs the shards of fuzz campaigns from
 * a BullMQ queue, on any machine that reaches the Redis. Each shard runs on a thread of its
 * own pool, so this process's event loop stays free to renew the job's lock: a worker that
 * stops renewing (killed) loses the shard to another worker after LOCK_MS. A payload of
 * another format or version, or a malformed one, is refused (the job fails with the reason,
 * and is not retried); the worker goes on with the next.
 */
import { availableParallelism, hostname } from 'node:os';
import { UnrecoverableError, Worker, type Job } from 'bullmq';
import { parseShard, ShardRefused, type ShardResult } from '../fuzz/jobs.ts';
import { SIM_VERSION, note, parseCount } from './context.ts';
import { QUEUE_NAME, QUEUE_PREFIX } from './fuzz-queue.ts';
import { ThreadPool } from './fuzz-threads.ts';
import { checkRedis, parseQueueUrl, redisClient } from './redis.ts';

export interface WorkerOptions {
  queue: string;
  concurrency?: string;
}

/**
 * How long a shard's lock lasts without renewal, and how often workers look for shards whose
 * lock ran out. Short, so that a killed worker's shard moves on within seconds; safe, because
 * the lock is renewed by this event loop, which no shard blocks.
 */
const LOCK_MS = 6_000;
const STALLED_CHECK_MS = 3_000;
/** Times a shard may lose its worker before it fails (a shard that kills every worker). */
const STALLED_MAX = 5;
/** Progress goes to Redis at most this often per shard. */
const PROGRESS_MS = 1_000;

async function processShard(job: Job, pool: ThreadPool): Promise<ShardResult> {
  let shard;
  try {
    shard = parseShard(job.data, SIM_VERSION);
  } catch (error) {
    if (!(error instanceof ShardRefused)) throw error;
    note(`worker: refused job ${job.id}: ${error.message}`);
    throw new UnrecoverableError(`refused by worker ${hostname()}:${process.pid}: ${error.message}`);
  }
  // A shard of a timed campaign that starts late runs only until the campaign's end (clocks are assumed in step, as NTP keeps them).
  const left = shard.deadlineMs === undefined ? Infinity : shard.deadlineMs - Date.now();
  const options = shard.options.timeMs !== undefined && left < shard.options.timeMs ? { ...shard.options, timeMs: Math.max(1, left) } : shard.options;
  note(`worker: shard ${job.id}: seed ${options.seed}, ${options.runs !== undefined ? `${options.runs} cases` : `${options.timeMs} ms`}${options.guided ? `, guided, corpus ${options.corpus?.length ?? 0}` : ''}`);
  let reported = 0;
  const result = await pool.run({ label: String(job.id), options, hashCounterexample: true }, (runs, coverage) => {
    const now = Date.now();
    if (now - reported < PROGRESS_MS) return;
    reported = now;
    job.updateProgress({ runs, exits: coverage.exits }).catch(() => {});
  });
  note(`worker: shard ${job.id}: ${result.runs} cases${result.counterexample ? `, found ${result.counterexample.finding}` : ''}`);
  return result;
}

export async function workerCommand(o: WorkerOptions): Promise<number> {
  const q = parseQueueUrl(o.queue);
  const concurrency = o.concurrency === undefined ? availableParallelism() : parseCount(o.concurrency, '--concurrency');
  await checkRedis(q);
  const pool = new ThreadPool(concurrency);
  const connection = redisClient(q);
  // The name carries the concurrency: the coordinator keeps one shard per slot waiting.
  const worker = new Worker(QUEUE_NAME, (job) => processShard(job, pool), {
    connection, prefix: QUEUE_PREFIX, concurrency, name: `chronovisor-c${concurrency}-${hostname()}-${process.pid}`,
    lockDuration: LOCK_MS, stalledInterval: STALLED_CHECK_MS, maxStalledCount: STALLED_MAX,
  });
  // Connection trouble is reported and waited out (the client reconnects); it never ends the worker.
  worker.on('error', (error) => note(`worker: ${error.message}`));
  note(`worker: taking shards from ${q.display} with ${concurrency} thread${concurrency > 1 ? 's' : ''} (stop with Ctrl-C)`);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  note('worker: stopping after the shards it has');
  await worker.close();
  // BullMQ leaves a connection it was given open.
  connection.disconnect();
  await pool.close();
  return 0;
}

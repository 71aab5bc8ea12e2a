/**
 * Campaign throughput through the command line, as a user runs it: 15-second secure
 * campaigns on 1 and 2 worker threads of this machine, and on 1, 2 and 4 `chronovisor worker`
 * processes taking shards from a redis-server started here (the same machine: the processes
 * share its cores with Redis and the coordinator). Each rate is the campaign's own report:
 * cases (and VM exits) over the campaign's seconds. A local campaign's seconds include its
 * threads' start (about a second here). Queue workers are started before the campaign and
 * then run a second one: a worker in a farm lives for many campaigns, and a just-started one
 * spends its first seconds compiling (V8 optimises on helper threads: a 5-second campaign
 * took 2.3 s of CPU beside its fuzzing thread, a 30-second one 4.7 s), which two processes
 * starting together on two cores do at each other's expense.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { removeDir, startCli, tempDir } from '../test/helpers/cli.ts';
import { startRedis } from '../test/helpers/redis.ts';
import type { Figure } from './store.ts';

const BIN = fileURLToPath(new URL('../bin/chronovisor', import.meta.url));
const CAMPAIGN = '15s';
const SEED = '1';
const REDIS_SERVER = '/usr/bin/redis-server';

interface Rate { cases: number; casesPerSecond: number; exitsPerSecond: number }

function campaign(args: string[], cwd: string): Promise<Rate> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, 'fuzz', '--time', CAMPAIGN, '--seed', SEED, '--out', 'bench.db', '--json', ...args], { cwd, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString('utf8'); });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`fuzz ${args.join(' ')} exited ${code}`));
      const r = JSON.parse(out) as { runs: number; runsPerSecond: number; vmExitsPerSecond: number };
      resolve({ cases: r.runs, casesPerSecond: r.runsPerSecond, exitsPerSecond: r.vmExitsPerSecond });
    });
  });
}

/** Starts `count` workers of one thread each and waits until they take shards. */
async function startWorkers(url: string, count: number, cwd: string) {
  const workers = Array.from({ length: count }, () => startCli(['worker', '--queue', url, '--concurrency', '1'], cwd));
  await Promise.all(workers.map((w) => new Promise<void>((resolve, reject) => {
    let err = '';
    w.stderr!.on('data', (d: Buffer) => {
      err += d.toString('utf8');
      if (err.includes('taking shards')) resolve();
    });
    w.once('exit', (code) => reject(new Error(`worker exited ${code}: ${err}`)));
  })));
  return {
    stop: () => Promise.all(workers.map((w) => new Promise<void>((resolve) => {
      w.removeAllListeners('exit');
      w.once('exit', () => resolve());
      w.kill('SIGTERM');
    }))),
  };
}

const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];

/**
 * Rounds of the five set-ups, interleaved (1 thread, 2 threads, 1, 2 and 4 queue workers,
 * then again): other work on the machine then weighs on each set-up alike. Each
 * figure is the median of its rounds, with the best beside it.
 */
const ROUNDS = 3;

interface Setup {
  /** One label per rate a round of the set-up gives. */
  labels: string[];
  run: (dir: string, url: string | undefined) => Promise<Rate[]>;
}

const QUEUED = (n: number) => `${n} chronovisor worker process${n > 1 ? 'es' : ''} over Redis (same machine)`;
const SETUPS: Setup[] = [
  { labels: ['1 worker thread'], run: async (dir) => [await campaign(['--workers', '1'], dir)] },
  { labels: ['2 worker threads'], run: async (dir) => [await campaign(['--workers', '2'], dir)] },
  ...[1, 2, 4].map((n) => ({ labels: [`${QUEUED(n)}, just started`, `${QUEUED(n)}, warm (their second campaign)`], run: (dir: string, url: string | undefined) => queued(url!, n, dir) })),
];

/** Two campaigns, one after the other, on `workers` processes started for them: [just started, warm]. */
async function queued(url: string, workers: number, dir: string): Promise<Rate[]> {
  const started = await startWorkers(url, workers, dir);
  try {
    const first = await campaign(['--queue', url], dir);
    return [first, await campaign(['--queue', url], dir)];
  } finally {
    await started.stop();
  }
}

function rateFigures(label: string, rates: Rate[]): Figure[] {
  const cases = rates.map((r) => r.casesPerSecond);
  const exits = rates.map((r) => r.exitsPerSecond);
  return [
    { name: `cases/s, ${label} (median of ${rates.length}; best ${fmt(Math.max(...cases))})`, value: fmt(median(cases)) },
    { name: `VM exits/s, ${label} (median; best ${fmt(Math.max(...exits))})`, value: fmt(median(exits)) },
  ];
}

/** Throughput with threads and with queue workers, the scaling from 1 to 2, and the queue's overhead at 1. */
export async function queueScaling(): Promise<Figure[]> {
  const dir = tempDir('chronovisor-bench-fuzz');
  const hasRedis = existsSync(REDIS_SERVER) && spawnSync(REDIS_SERVER, ['--version']).status === 0;
  const redis = hasRedis ? await startRedis() : undefined;
  try {
    const load = loadavg()[0].toFixed(1);
    const setups = hasRedis ? SETUPS : SETUPS.slice(0, 2);
    const labels = setups.flatMap((setup) => setup.labels);
    const rates: Rate[][] = labels.map(() => []);
    for (let round = 0; round < ROUNDS; round++) {
      const results = [];
      for (const setup of setups) results.push(...(await setup.run(dir, redis?.url)));
      results.forEach((rate, i) => rates[i].push(rate));
    }
    const m = rates.map((r) => median(r.map((x) => x.casesPerSecond)));
    const figures: Figure[] = [
      { name: `throughput through the CLI, ${CAMPAIGN} secure campaigns, ${ROUNDS} rounds (load average ${load} when they began, ${loadavg()[0].toFixed(1)} at the end):`, value: '' },
      ...labels.flatMap((label, i) => rateFigures(label, rates[i])),
      { name: 'scaling, 2 threads / 1 thread (median cases/s)', value: `${(m[1] / m[0]).toFixed(2)}x` },
    ];
    if (!hasRedis) return [...figures, { name: `queue figures: no ${REDIS_SERVER} (apt-get install redis-server)`, value: 'skipped' }];
    const [thread1, , queued1, warm1, queued2, warm2, , warm4] = m;
    // Both include their start: the queue's cost is what is left.
    const overhead = 1 - queued1 / thread1;
    return [
      ...figures,
      { name: 'scaling, 2 worker processes / 1, just started (median cases/s)', value: `${(queued2 / queued1).toFixed(2)}x` },
      { name: 'scaling, 2 worker processes / 1, warm (median cases/s)', value: `${(warm2 / warm1).toFixed(2)}x`, goal: '>= 1.70x (within 15% of linear on 2 cores)', ok: warm2 / warm1 >= 1.7 },
      // Two cores: four processes can at best do what two do; the figure says what oversubscribing costs.
      { name: 'scaling, 4 worker processes / 1, warm (median cases/s; 2 cores, so at most 2x)', value: `${(warm4 / warm1).toFixed(2)}x` },
      { name: 'queue overhead at 1 worker: 1 - (queue cases/s) / (1 thread cases/s), both just started, medians', value: `${(overhead * 100).toFixed(1)}%`, goal: '<= 10%', ok: overhead <= 0.1 },
    ];
  } finally {
    await redis?.stop();
    removeDir(dir);
  }
}

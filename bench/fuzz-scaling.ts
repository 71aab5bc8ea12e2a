/**
 * Campaign throughput through the command line, as a user runs it: 10-second secure
 * campaigns on 1 and 2 worker threads of this machine, then on 1 and 2 `chronovisor worker`
 * processes taking shards from a redis-server started here (the same machine: the processes
 * share its cores with Redis and the coordinator). Each rate is the campaign's own report:
 * cases (and VM exits) over the campaign's seconds, start-up included.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { removeDir, startCli, tempDir } from '../test/helpers/cli.ts';
import { startRedis } from '../test/helpers/redis.ts';
import type { Figure } from './store.ts';

const BIN = fileURLToPath(new URL('../bin/chronovisor', import.meta.url));
const CAMPAIGN = '10s';
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

function rateFigures(label: string, r: Rate): Figure[] {
  return [
    { name: `cases/s, ${label} (${fmt(r.cases)} cases in ${CAMPAIGN})`, value: fmt(r.casesPerSecond) },
    { name: `VM exits/s, ${label}`, value: fmt(r.exitsPerSecond) },
  ];
}

/** Throughput with threads and with queue workers, the scaling from 1 to 2, and the queue's overhead at 1. */
export async function queueScaling(): Promise<Figure[]> {
  const dir = tempDir('chronovisor-bench-fuzz');
  try {
    const load = loadavg()[0].toFixed(1);
    const local1 = await campaign(['--workers', '1'], dir);
    const local2 = await campaign(['--workers', '2'], dir);
    const figures: Figure[] = [
      { name: `throughput through the CLI, ${CAMPAIGN} secure campaigns (load average ${load} when they began):`, value: '' },
      ...rateFigures('1 worker thread', local1),
      ...rateFigures('2 worker threads', local2),
      { name: 'scaling, 2 threads / 1 thread (cases/s)', value: `${(local2.casesPerSecond / local1.casesPerSecond).toFixed(2)}x` },
    ];
    if (!existsSync(REDIS_SERVER) || spawnSync(REDIS_SERVER, ['--version']).status !== 0) {
      return [...figures, { name: `queue figures: no ${REDIS_SERVER} (apt-get install redis-server)`, value: 'skipped' }];
    }
    const redis = await startRedis();
    try {
      const queued: Rate[] = [];
      for (const count of [1, 2]) {
        const workers = await startWorkers(redis.url, count, dir);
        try {
          queued.push(await campaign(['--queue', redis.url], dir));
        } finally {
          await workers.stop();
        }
      }
      const [queue1, queue2] = queued;
      const overhead = 1 - queue1.casesPerSecond / local1.casesPerSecond;
      return [
        ...figures,
        ...rateFigures('1 chronovisor worker process over Redis (same machine)', queue1),
        ...rateFigures('2 chronovisor worker processes over Redis (same machine)', queue2),
        { name: 'scaling, 2 worker processes / 1 (cases/s)', value: `${(queue2.casesPerSecond / queue1.casesPerSecond).toFixed(2)}x`, goal: '>= 1.70x (within 15% of linear on 2 cores)', ok: queue2.casesPerSecond / queue1.casesPerSecond >= 1.7 },
        { name: 'queue overhead at 1 worker: 1 - (queue cases/s) / (1 thread cases/s)', value: `${(overhead * 100).toFixed(1)}%`, goal: '<= 10%', ok: overhead <= 0.1 },
      ];
    } finally {
      await redis.stop();
    }
  } finally {
    removeDir(dir);
  }
}

/**
 * Fuzz jobs on worker threads: a local campaign deals its jobs to threads that end with them
 * (`runJobs`); a `chronovisor worker` keeps a pool of threads that take jobs one at a time
 * (`ThreadPool`). And the live progress line both show (`Board`).
 */
import { Worker } from 'node:worker_threads';
import cliProgress from 'cli-progress';
import { Coverage, type PlainCoverage } from '../fuzz/fuzz-machine.ts';
import type { ShardResult } from '../fuzz/jobs.ts';
import type { FuzzJob, WorkerMessage } from './workers/fuzz-worker.ts';
import { WORKER_BOOT, workerModule } from './workers/modules.ts';

const FUZZ_WORKER = workerModule('fuzz-worker');

export interface JobResult extends Omit<ShardResult, 'coverage'> {
  label: string;
  coverage: Coverage;
}

export interface Hooks {
  progress: (label: string, runs: number, coverage: Coverage) => void;
  /** Ends the other jobs at the first counterexample (a timed campaign has nothing to wait for). */
  stopOnFind: boolean;
}

const toResult = (m: Extract<WorkerMessage, { type: 'result' }>): JobResult => ({
  label: m.label, runs: m.runs, ms: m.ms, coverage: Coverage.from(m.coverage), corpus: m.corpus, counterexample: m.counterexample as JobResult['counterexample'],
});

/** Workers ended on purpose (stopOnFind): their exit is not a failure. */
const stopping = new WeakSet<Worker>();

/** Runs one thread's queue of jobs; `onResult` sees each finished job. */
function runQueue(queue: FuzzJob[], threads: Worker[], hooks: Hooks, onResult: (r: JobResult) => void): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const worker = new Worker(WORKER_BOOT, { workerData: { module: FUZZ_WORKER, jobs: queue } });
    threads.push(worker);
    worker.on('message', (m: WorkerMessage) => {
      if (m.type === 'error') return;
      hooks.progress(m.label, m.runs, Coverage.from(m.coverage));
      if (m.type === 'result') onResult(toResult(m));
    });
    worker.on('error', reject);
    // A worker ended by terminate() (stopOnFind) exits with 1: that is not a failure.
    worker.on('exit', (code) => (code === 0 || stopping.has(worker) ? resolve() : reject(new Error(`fuzz worker exited with ${code}`))));
  });
}

/** Runs jobs on `workers` threads (dealt round robin); results come back in the jobs' order. */
export async function runJobs(jobs: FuzzJob[], workers: number, hooks: Hooks): Promise<JobResult[]> {
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

/** Threads that stay and take one job at a time (a `chronovisor worker`'s processors); a thread that dies is replaced. */
export class ThreadPool {
  private readonly idle: Worker[] = [];
  private readonly waiting: ((w: Worker) => void)[] = [];
  private readonly all = new Set<Worker>();
  private closing = false;

  constructor(size: number) {
    for (let i = 0; i < size; i++) this.release(this.spawn());
  }

  private spawn(): Worker {
    const worker = new Worker(WORKER_BOOT, { workerData: { module: FUZZ_WORKER } });
    this.all.add(worker);
    worker.once('exit', () => {
      this.all.delete(worker);
      const at = this.idle.indexOf(worker);
      if (at >= 0) this.idle.splice(at, 1);
    });
    return worker;
  }

  /** Hands a thread to the next job waiting, or keeps it idle; a dead one is replaced first. */
  private release(worker: Worker): void {
    const live = this.all.has(worker) ? worker : this.closing ? undefined : this.spawn();
    if (live === undefined) return;
    const next = this.waiting.shift();
    if (next) next(live);
    else this.idle.push(live);
  }

  /** Runs a job on a free thread; `onProgress` sees its progress messages. */
  async run(job: FuzzJob, onProgress: (runs: number, coverage: PlainCoverage) => void): Promise<ShardResult> {
    const worker = this.idle.pop() ?? await new Promise<Worker>((resolve) => this.waiting.push(resolve));
    try {
      return await new Promise<ShardResult>((resolve, reject) => {
        const onMessage = (m: WorkerMessage): void => {
          if (m.label !== job.label) return;
          if (m.type === 'progress') return onProgress(m.runs, m.coverage);
          worker.off('message', onMessage).off('error', reject).off('exit', onExit);
          if (m.type === 'error') reject(new Error(m.message));
          else resolve({ runs: m.runs, ms: m.ms, coverage: m.coverage, corpus: m.corpus, counterexample: m.counterexample as ShardResult['counterexample'] });
        };
        // A thread that dies mid-job (out of memory) fails the job; BullMQ retries it.
        const onExit = (code: number): void => reject(new Error(`fuzz thread exited with ${code} during ${job.label}`));
        worker.on('message', onMessage).on('error', reject).once('exit', onExit);
        worker.postMessage(job);
      });
    } finally {
      this.release(worker);
    }
  }

  async close(): Promise<void> {
    this.closing = true;
    await Promise.all([...this.all].map((w) => w.terminate()));
  }
}

/** Live totals on stderr when it is a terminal (nothing otherwise): cases/s, exits/s, workers, findings, features. */
export class Board {
  private readonly runs = new Map<string, number>();
  private readonly coverage = new Map<string, Coverage>();
  private readonly started = performance.now();
  private workers = 0;
  private findings = 0;
  private readonly bar = process.stderr.isTTY
    ? new cliProgress.SingleBar({
      format: '{label} {runs} cases | {rate} cases/s | {exitRate} exits/s | workers {workers} | findings {findings} | exit reasons {exits} | fault reasons {faults} | features {features}',
      stream: process.stderr, clearOnComplete: true, fps: 4,
    })
    : undefined;

  constructor(private readonly label: string) {
    this.bar?.start(0, 0, this.fields());
  }

  update(job: string, runs: number, coverage: Coverage): void {
    this.runs.set(job, runs);
    this.coverage.set(job, coverage);
    this.bar?.update(0, this.fields());
  }

  status(workers: number, findings: number): void {
    this.workers = workers;
    this.findings = findings;
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
    const rate = (n: number): number => (seconds > 0 ? Math.round(n / seconds) : 0);
    return {
      label: this.label, runs, rate: rate(runs), exitRate: rate(coverage.exits), workers: this.workers, findings: this.findings,
      exits: coverage.exitReasons.size, faults: coverage.faultReasons.size, features: coverage.features.counts.size,
    };
  }

  stop(): void {
    this.bar?.stop();
  }
}

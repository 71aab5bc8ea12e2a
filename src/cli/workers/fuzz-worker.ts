/** A fuzz worker: runs campaigns the parent hands it and reports progress and results. */
import { parentPort, workerData } from 'node:worker_threads';
import { runCampaign, type CampaignOptions, type Counterexample } from '../../fuzz/campaign.ts';
import type { Coverage } from '../../fuzz/fuzz-machine.ts';

export interface FuzzJob {
  /** The job's label (a flaw for the scoreboard, or the worker's share of a campaign). */
  label: string;
  options: Omit<CampaignOptions, 'onProgress' | 'clock'>;
}

export const plainCoverage = (c: Coverage) => ({ exitReasons: [...c.exitReasons], faultReasons: [...c.faultReasons], kinds: [...c.kinds], exits: c.exits });

/** What a worker tells the parent: progress, or a job's result (with the time its campaign took). */
export interface WorkerMessage {
  type: 'progress' | 'result';
  label: string;
  runs: number;
  coverage: ReturnType<typeof plainCoverage>;
  counterexample?: Counterexample;
  ms?: number;
}

const post = (message: WorkerMessage): void => parentPort!.postMessage(message);

function runJob(job: FuzzJob): void {
  const started = performance.now();
  const result = runCampaign({
    ...job.options,
    clock: () => performance.now(),
    onProgress: ({ runs, coverage }) => post({ type: 'progress', label: job.label, runs, coverage: plainCoverage(coverage) }),
  });
  post({ type: 'result', label: job.label, runs: result.runs, coverage: plainCoverage(result.coverage), counterexample: result.counterexample, ms: performance.now() - started });
}

const { jobs } = workerData as { jobs: FuzzJob[] };
for (const job of jobs) runJob(job);

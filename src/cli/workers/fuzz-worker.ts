/**
 * A fuzz worker thread: runs campaigns and reports progress and results. Two ways in: the
 * jobs of a local campaign in workerData (run in turn, then the thread ends), or jobs sent
 * one at a time by a `chronovisor worker` process (the thread stays, with its prepared
 * machines warm, until the process ends).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { runCampaign, type CampaignResult } from '../../fuzz/campaign.ts';
import { runGuidedCampaign } from '../../fuzz/guided.ts';
import type { ShardOptions } from '../../fuzz/jobs.ts';
import type { PlainCoverage } from '../../fuzz/fuzz-machine.ts';
import { recordedHeadHash } from '../fuzz-results.ts';

export interface FuzzJob {
  /** The job's label (a flaw for the scoreboard, a worker's share of a campaign, a queue job's id). */
  label: string;
  options: ShardOptions;
  /** Record the counterexample here too and send its head hash (a queue job: the coordinator checks it). */
  hashCounterexample?: boolean;
}

/** What a worker tells its parent: progress, a job's result (with the time its campaign took), or a job's failure. */
export type WorkerMessage =
  | { type: 'progress'; label: string; runs: number; coverage: PlainCoverage }
  | { type: 'result'; label: string; runs: number; coverage: PlainCoverage; counterexample?: CampaignResult['counterexample'] & { headHash?: string }; corpus: CampaignResult['corpus']; ms: number }
  | { type: 'error'; label: string; message: string };

const post = (message: WorkerMessage): void => parentPort!.postMessage(message);

function runJob(job: FuzzJob): void {
  const started = performance.now();
  const run = job.options.guided ? runGuidedCampaign : runCampaign;
  const result = run({
    ...job.options,
    clock: () => performance.now(),
    onProgress: ({ runs, coverage }) => post({ type: 'progress', label: job.label, runs, coverage: coverage.plain() }),
  });
  const c = result.counterexample;
  const counterexample = c && job.hashCounterexample ? { ...c, headHash: recordedHeadHash(c) } : c;
  post({ type: 'result', label: job.label, runs: result.runs, coverage: result.coverage.plain(), counterexample, corpus: result.corpus, ms: performance.now() - started });
}

const { jobs } = workerData as { jobs?: FuzzJob[] };
if (jobs !== undefined) {
  for (const job of jobs) runJob(job);
} else {
  parentPort!.on('message', (job: FuzzJob) => {
    try {
      runJob(job);
    } catch (error) {
      // A job that breaks the campaign is the job's failure, reported with its stack; the thread takes the next.
      post({ type: 'error', label: job.label, message: (error as Error)?.stack ?? String(error) });
    }
  });
}

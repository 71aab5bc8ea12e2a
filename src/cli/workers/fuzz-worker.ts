/** A fuzz worker: runs campaigns the parent hands it and reports progress and results. */
import { parentPort, workerData } from 'node:worker_threads';
import { runCampaign, type CampaignOptions } from '../../fuzz/campaign.ts';
import type { Coverage } from '../../fuzz/fuzz-machine.ts';

export interface FuzzJob {
  /** The job's label (a flaw for the scoreboard, or the worker's share of a campaign). */
  label: string;
  options: Omit<CampaignOptions, 'onProgress' | 'clock'>;
}

export const plainCoverage = (c: Coverage) => ({ exitReasons: [...c.exitReasons], faultReasons: [...c.faultReasons], kinds: [...c.kinds], exits: c.exits });

const { jobs } = workerData as { jobs: FuzzJob[] };
for (const job of jobs) {
  const result = runCampaign({
    ...job.options,
    clock: () => performance.now(),
    onProgress: ({ runs, coverage }) => parentPort!.postMessage({ type: 'progress', label: job.label, runs, coverage: plainCoverage(coverage) }),
  });
  parentPort!.postMessage({ type: 'result', label: job.label, runs: result.runs, coverage: plainCoverage(result.coverage), counterexample: result.counterexample });
}

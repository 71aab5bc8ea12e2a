/**
 * Verify on every core: the segments between checkpoints are independent, so worker threads
 * re-execute them side by side. The report is the same as the sequential one: the earliest
 * mismatch wins.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { RecordingStore, RunRow } from '../events/store.ts';
import { prepareVerify, verifyRun, type Mismatch, type Segment, type VerifyReport } from '../replay/verify.ts';
import { WORKER_BOOT, workerModule } from './workers/modules.ts';

const VERIFY_WORKER = workerModule('verify-worker');
/**
 * A worker's young generation (V8's default lets it grow to 48 MB: three 16 MB semi-spaces).
 * Re-execution makes short-lived garbage at a high rate; a smaller nursery is swept more
 * often at little cost. On 10M events of the long workload with 2 workers (and verify's
 * small page cache): peak RSS 348-381 -> 285-295 MB, time within the noise (17-19 s).
 */
const WORKER_YOUNG_GENERATION_MB = 24;

export async function verifyRunParallel(
  store: RecordingStore, run: RunRow, workers = availableParallelism(), onProgress?: (done: number, total: number) => void,
): Promise<VerifyReport> {
  const { report, segments } = prepareVerify(store, run);
  if (report.mismatch) return report;
  if (workers <= 1 || segments.length < 2) return verifyRun(store, run, { onProgress });
  // Contiguous shares keep each worker's chunk cache useful.
  const share = Math.ceil(segments.length / workers);
  const shares = Array.from({ length: workers }, (_, i) => segments.slice(i * share, (i + 1) * share)).filter((s) => s.length > 0);
  let first: Mismatch | undefined;
  await Promise.all(shares.map((list) => new Promise<void>((resolve, reject) => {
    const worker = new Worker(WORKER_BOOT, { workerData: { module: VERIFY_WORKER, db: store.path, run: run.id, segments: list }, resourceLimits: { maxYoungGenerationSizeMb: WORKER_YOUNG_GENERATION_MB } });
    worker.on('message', ({ segment, mismatch }: { segment: Segment; mismatch?: Mismatch }) => {
      report.replayedEvents += segment.end - segment.start;
      onProgress?.(report.replayedEvents, run.eventCount);
      if (mismatch && (first === undefined || mismatch.seq < first.seq)) first = mismatch;
    });
    worker.on('error', reject);
    worker.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`verify worker exited with ${code}`))));
  })));
  return first ? { ...report, mismatch: first } : { ...report, ok: true };
}

/** A verify worker: re-executes its share of a run's segments and reports each one. */
import { parentPort, workerData } from 'node:worker_threads';
import { RecordingStore } from '../../events/store.ts';
import { replaySegment, verifyTimeline, type Segment } from '../../replay/verify.ts';

const { db, run, segments } = workerData as { db: string; run: number; segments: Segment[] };
const store = RecordingStore.open(db, { readonly: true });
const timeline = verifyTimeline(store, store.run(run));
for (const segment of segments) {
  const mismatch = replaySegment(timeline, segment);
  parentPort!.postMessage({ segment, mismatch });
  if (mismatch) break;
}
store.close();

// The store thread's entry. A worker thread starts without the TypeScript loader of its
// parent (bin/chronovisor registers tsx for its own thread only; a worker started with no
// execArgv has none either): for the TypeScript module (run from src/) it registers tsx; a
// built one (dist/) needs none. A failure to start is reported as the thread's failure,
// which the parent sees.
import { workerData } from 'node:worker_threads';

try {
  if (/\.tsx?$/.test(workerData.module)) (await import('tsx/esm/api')).register();
  await import(workerData.module);
} catch (error) {
  workerData.errors.postMessage(`the store thread did not start: ${error?.stack ?? error}`);
  Atomics.store(new Int32Array(workerData.signal), 1, 1); // SIGNAL_FAILED
}

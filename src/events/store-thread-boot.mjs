// The store thread's entry. A worker thread starts without the TypeScript loader of its
// parent (bin/chronovisor registers tsx for its own thread only; a worker started with no
// execArgv has none either): built (dist/), the thread's module is JavaScript beside this
// file; in src/ it is TypeScript, loaded through tsx registered here.
// A failure to start is reported as the thread's failure, which the parent sees.
import { existsSync } from 'node:fs';
import { workerData } from 'node:worker_threads';

try {
  const built = new URL('./store-thread-worker.js', import.meta.url);
  if (existsSync(built)) {
    await import(built.href);
  } else {
    const { register } = await import('tsx/esm/api');
    register();
    await import('./store-thread-worker.ts');
  }
} catch (error) {
  workerData.errors.postMessage(`the store thread did not start: ${error?.stack ?? error}`);
  Atomics.store(new Int32Array(workerData.signal), 1, 1); // SIGNAL_FAILED
}

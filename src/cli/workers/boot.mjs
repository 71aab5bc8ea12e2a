// Worker threads start without the parent's TypeScript loader: for a TypeScript module (run
// from src/) register tsx, with the project's tsconfig whatever the working folder; a built
// one (dist/) needs none. Then run the worker module named in workerData.
import { workerData } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';

if (/\.tsx?$/.test(workerData.module)) {
  const { register } = await import('tsx/esm/api');
  register({ tsconfig: fileURLToPath(new URL('../../../tsconfig.json', import.meta.url)) });
}
await import(workerData.module);

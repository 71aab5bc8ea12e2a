// Worker threads start without the parent's TypeScript loader: register tsx (with the
// project's tsconfig, whatever the working folder), then run the worker module named in workerData.
import { workerData } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { register } from 'tsx/esm/api';

register({ tsconfig: fileURLToPath(new URL('../../../tsconfig.json', import.meta.url)) });
await import(workerData.module);

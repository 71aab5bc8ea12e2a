/**
 * Where the worker threads' modules are: beside this one, TypeScript in src/ (the boot
 * registers the TypeScript loader for them) or JavaScript once built into dist/.
 */
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';

const EXTENSION = extname(fileURLToPath(import.meta.url));

/** The module every worker thread starts with: it loads the one named in its workerData. */
export const WORKER_BOOT = new URL('./boot.mjs', import.meta.url);

export const workerModule = (name: 'fuzz-worker' | 'verify-worker'): string => new URL(`./${name}${EXTENSION}`, import.meta.url).href;

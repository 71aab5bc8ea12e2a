/**
 * The benchmarks' settings from the environment (CHRONOVISOR_BENCH_*). A bad value is the
 * user's to fix: bench/index.ts prints the message and exits 2, with no stack trace.
 */
export class BenchSettingError extends Error {}

/** A whole number of at least `min` from `name`, or `fallback` when it is not set. */
export function envCount(env: NodeJS.ProcessEnv, name: string, fallback: number, min = 1): number {
  const text = env[name];
  if (text === undefined) return fallback;
  const n = Number(text.trim());
  if (text.trim() === '' || !Number.isSafeInteger(n) || n < min) throw new BenchSettingError(`${name}=${text}: expected a whole number of at least ${min}`);
  return n;
}

/** Whole numbers of at least `min`, separated by commas, from `name`; `fallback` when it is not set. */
export function envCounts(env: NodeJS.ProcessEnv, name: string, fallback: number[], min: number, example: string): number[] {
  const text = env[name];
  if (text === undefined) return fallback;
  const list = text.split(',').map((part) => Number(part.trim()));
  if (list.some((n, i) => text.split(',')[i].trim() === '' || !Number.isSafeInteger(n) || n < min)) {
    throw new BenchSettingError(`${name}=${text}: expected event counts of at least ${min}, separated by commas, such as ${example}`);
  }
  return list;
}

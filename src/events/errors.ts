/**
 * The second kind of trouble: the user gave bad input (a scenario, an argument, a damaged or
 * foreign database). Each error has a stable code, names what is wrong and how to fix it,
 * and maps to exit code 2. Programmer errors are assertions instead (see `assert`).
 */
export type InputErrorCode =
  | 'scenario'
  | 'argument'
  | 'not-a-recording'
  | 'schema-newer'
  | 'schema-older'
  /** A run recorded in another version of a format (see src/replay/formats.ts). */
  | 'format'
  | 'no-such-run'
  | 'no-such-file'
  | 'run-busy'
  | 'no-index'
  | 'damaged';

export class InputError extends Error {
  override readonly name = 'InputError';
  constructor(readonly code: InputErrorCode, message: string) {
    super(message);
  }
}

/** The third kind of trouble: the simulator itself is wrong. Never caught to go on. */
export class AssertionFailed extends Error {
  override readonly name = 'AssertionFailed';
}

export function assert(condition: unknown, message: string | (() => string)): asserts condition {
  if (!condition) throw new AssertionFailed(typeof message === 'string' ? message : message());
}

/**
 * A write the disk did not take: it is full, or the file reached a size limit (`ulimit -f`).
 * SQLite reports the first as SQLITE_FULL and the second as a failed write; both leave what
 * was committed before intact. The store thread hands it over as this error.
 */
export class StorageFull extends Error {
  override readonly name = 'StorageFull';
}

const STORAGE_FULL_CODES: readonly string[] = ['SQLITE_FULL', 'SQLITE_IOERR_WRITE'];

/** Whether `error` is a write the disk did not take (an SqliteError with one of those codes, or a StorageFull). */
export function isStorageFull(error: unknown): boolean {
  return error instanceof StorageFull || STORAGE_FULL_CODES.includes(String((error as { code?: unknown } | null)?.code));
}

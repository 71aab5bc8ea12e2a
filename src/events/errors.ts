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

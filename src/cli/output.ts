/**
 * Where an export writes. `--out FILE` is one of three things:
 * - `-`: standard output, so a capture can be piped (`--out - | tcpdump -r -`);
 * - something that exists and is not a regular file (a FIFO, a device, a terminal): written
 *   in place, never replaced (replacing /dev/null with a file would break the machine);
 * - a regular file, or nothing yet: written beside it under a temporary name and put in
 *   place at the end, so a failure leaves nothing half-written; an existing file is only
 *   replaced with --force.
 */
import { closeSync, existsSync, linkSync, openSync, realpathSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join, resolve } from 'node:path';
import { InputError } from '../events/errors.ts';

export type OutputKind = 'stdout' | 'in-place' | 'file';

export interface OutputTarget {
  path: string;
  kind: OutputKind;
  /** How messages name it: the path, or "standard output". */
  label: string;
}

/** The reader of a pipe went away (`| head`): that is its choice, not an error. */
export class ReaderGone extends Error {
  override readonly name = 'ReaderGone';
}

/** Whether `path` is the recording or one of SQLite's files beside it (its log, its index). */
function isPartOfRecording(path: string, db: string): boolean {
  const real = (p: string): string => (existsSync(p) ? realpathSync(p) : resolve(p));
  const target = real(path);
  const base = real(db);
  return ['', '-wal', '-shm', '-journal'].some((suffix) => target === base + suffix || target === resolve(db) + suffix);
}

/**
 * What --out is, refusing what would lose data: an existing regular file without --force,
 * the recording itself, a folder. Nothing is opened yet (opening a FIFO waits for a reader).
 * @param example a file name to suggest, such as frames.pcap
 */
export function checkOutput(path: string, db: string, force: boolean, example: string): OutputTarget {
  if (path === '-') return { path, kind: 'stdout', label: 'standard output' };
  const folder = dirname(path) || '.';
  if (!existsSync(folder) || !statSync(folder).isDirectory()) {
    throw new InputError('argument', `--out ${path}: the folder ${folder} does not exist; create it or choose another --out`);
  }
  if (isPartOfRecording(path, db)) {
    throw new InputError('argument', `--out ${path}: is part of the recording ${db}; give another file name, such as ${example}`);
  }
  if (!existsSync(path)) return { path, kind: 'file', label: path };
  const stat = statSync(path);
  if (stat.isDirectory()) throw new InputError('argument', `--out ${path}: is a folder; give a file name such as ${join(path, example)}`);
  if (!stat.isFile()) return { path, kind: 'in-place', label: path };
  if (!force) throw new InputError('argument', `--out ${path}: already exists; add --force to replace it, or choose another --out`);
  return { path, kind: 'file', label: path };
}

const BUFFER_BYTES = 1 << 16;
/** How long to wait when a non-blocking pipe is full before trying again. */
const PIPE_FULL_WAIT_MS = 2;
const sleeper = new Int32Array(new SharedArrayBuffer(4));

/** Writes all of `bytes` to `fd`: short writes go on, a full pipe is waited for, a closed one is ReaderGone. */
function writeAll(fd: number, bytes: Uint8Array): void {
  for (let at = 0; at < bytes.length;) {
    try {
      at += writeSync(fd, bytes, at, bytes.length - at);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN') { Atomics.wait(sleeper, 0, 0, PIPE_FULL_WAIT_MS); continue; }
      if (code === 'EPIPE') throw new ReaderGone('the reader of the output went away');
      throw error;
    }
  }
}

/** An open output: buffered writes, then commit (or discard after a failure). */
export class Output {
  private fd: number | undefined;
  private readonly temp: string | undefined;
  private readonly buffer = Buffer.allocUnsafe(BUFFER_BYTES);
  private used = 0;

  constructor(readonly target: OutputTarget, private readonly force: boolean) {
    if (target.kind === 'stdout') {
      this.fd = 1;
      return;
    }
    const path = target.kind === 'file' ? join(dirname(target.path) || '.', `.${basename(target.path)}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`) : target.path;
    this.temp = target.kind === 'file' ? path : undefined;
    try {
      // A FIFO or device is opened as it is: 'w' truncates nothing there and creates nothing.
      this.fd = openSync(path, target.kind === 'file' ? 'wx' : 'w');
    } catch (error) {
      throw new InputError('argument', `--out ${target.path}: cannot write ${target.kind === 'file' ? `in ${dirname(target.path) || '.'}` : 'to it'} (${(error as NodeJS.ErrnoException).code}); choose a place you can write to`);
    }
  }

  write(data: Uint8Array | string): void {
    const bytes = typeof data === 'string' ? Buffer.from(data) : data;
    if (this.used + bytes.length > BUFFER_BYTES) this.flush();
    if (bytes.length >= BUFFER_BYTES) { writeAll(this.fd!, bytes); return; }
    this.buffer.set(bytes, this.used);
    this.used += bytes.length;
  }

  /** Everything written reaches the target; a regular file is put in place (without --force, never over one that appeared meanwhile). */
  commit(): void {
    this.flush();
    this.close();
    if (this.temp === undefined) return;
    if (this.force) return renameSync(this.temp, this.target.path);
    try {
      linkSync(this.temp, this.target.path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw new InputError('argument', `--out ${this.target.path}: already exists; add --force to replace it, or choose another --out`);
      // A file system without hard links: check, then rename.
      if (existsSync(this.target.path)) throw error;
      return renameSync(this.temp, this.target.path);
    }
    unlinkSync(this.temp);
  }

  /** Removes the temporary file, if any (after a failure, or after commit linked it). */
  discard(): void {
    this.close();
    if (this.temp !== undefined && existsSync(this.temp)) unlinkSync(this.temp);
  }

  private flush(): void {
    if (this.used === 0) return;
    const used = this.used;
    this.used = 0;
    writeAll(this.fd!, this.buffer.subarray(0, used));
  }

  private close(): void {
    if (this.fd !== undefined && this.fd !== 1) closeSync(this.fd);
    this.fd = undefined;
  }
}

/**
 * Writes an export: checks --out first (before the recording is read), then opens it, lets
 * `write` fill it, and commits it; on any failure a temporary file is removed.
 */
export function withOutput<T>(target: OutputTarget, force: boolean, write: (output: Output) => T): T {
  const output = new Output(target, force);
  try {
    const result = write(output);
    output.commit();
    return result;
  } finally {
    output.discard();
  }
}

/**
 * Reading the files a scenario names (x86 guest sources and their %include files).
 *
 * A scenario may come from someone else, and the recording keeps every file it read, so a
 * recording shared onwards would carry whatever the scenario could reach. The files are
 * therefore confined: each must lie, after symlinks are followed, inside the scenario's
 * folder or a folder the user allowed with --guest-path. Their total size is capped, and the
 * size is taken from the open file before its bytes are read, so an oversized file costs
 * nothing.
 */
import { closeSync, fstatSync, openSync, readSync, realpathSync, statSync } from 'node:fs';
import { dirname, isAbsolute, relative, resolve } from 'node:path';
import { InputError } from '../events/errors.ts';
import type { ReadInclude } from '../core/machine/scenario.ts';

/** What one scenario's guest files may total, each file counted every time it is read. */
export const GUEST_SOURCE_KIB_MAX_DEFAULT = 1024;

export interface GuestFileOptions {
  /** Folders besides the scenario's own that guest files may come from (--guest-path). */
  guestPaths?: readonly string[];
  /** The budget, in KiB, for all guest files of the scenario (--max-source-kib). */
  sourceKibMax?: number;
}

export interface GuestFiles {
  /** Reads a file by the name the scenario or an %include gives, relative to the scenario. */
  read: ReadInclude;
  /** Every file read, by that name: what the recording keeps. */
  files: Record<string, string>;
}

interface Folder {
  /** As the user named it, made absolute: symlinked folders are allowed by this name too. */
  given: string;
  real: string;
}

const inside = (folder: string, path: string): boolean => {
  const rest = relative(folder, path);
  return rest === '' || (!rest.startsWith('..') && !isAbsolute(rest));
};

function allowedFolder(path: string, what: string): Folder {
  let stats;
  try {
    stats = statSync(path);
  } catch {
    throw new InputError('argument', `${what} ${path}: no such folder`);
  }
  if (!stats.isDirectory()) throw new InputError('argument', `${what} ${path}: not a folder`);
  return { given: resolve(path), real: realpathSync(path) };
}

/** Reads a regular file of at most `bytesMax` bytes, checking the size before reading. */
function readBounded(path: string, bytesMax: number, tooBig: (sizeBytes: number) => string): Buffer {
  const fd = openSync(path, 'r');
  try {
    const sizeBytes = fstatSync(fd).size;
    if (sizeBytes > bytesMax) throw new InputError('scenario', tooBig(sizeBytes));
    // One byte more than the size, to notice a file that grew since fstat.
    const buffer = Buffer.alloc(sizeBytes + 1);
    let length = 0;
    for (let n = -1; n !== 0 && length < buffer.length; length += n) n = readSync(fd, buffer, length, buffer.length - length, null);
    if (length !== sizeBytes) throw new InputError('scenario', `${path}: the file changed while it was read; try again`);
    return buffer.subarray(0, length);
  } finally {
    closeSync(fd);
  }
}

/**
 * The reader of one scenario's guest files. Names are resolved against the scenario's
 * folder; anything that leads elsewhere (`../`, an absolute path, a symlink) is refused
 * unless it lands in a --guest-path folder.
 */
export function guestFiles(scenarioPath: string, options: GuestFileOptions = {}): GuestFiles {
  const home = dirname(scenarioPath);
  const folders = [allowedFolder(home, 'the scenario folder'), ...(options.guestPaths ?? []).map((path) => allowedFolder(path, '--guest-path'))];
  const kibMax = options.sourceKibMax ?? GUEST_SOURCE_KIB_MAX_DEFAULT;
  let bytesLeft = kibMax * 1024;
  const files: Record<string, string> = {};
  const refuse = (message: string): never => {
    throw new InputError('scenario', `${scenarioPath}: guest source ${message}`);
  };
  const outside = (name: string, full: string, how: string): never => refuse(
    `${name} ${how} outside the scenario's folder ${folders[0].given}${folders.length > 1 ? ' and the --guest-path folders' : ''}: ` +
    `guest sources and %include files must stay there (move the file in, or allow its folder with --guest-path ${dirname(full)})`);

  const read = (name: string): string => {
    const full = resolve(home, name);
    if (!folders.some((f) => inside(f.given, full) || inside(f.real, full))) {
      outside(name, full, isAbsolute(name) ? 'is an absolute path' : `leads to ${full},`);
    }
    try {
      const real = realpathSync(full);
      if (!folders.some((f) => inside(f.real, real))) outside(name, real, `leads through a symlink to ${real},`);
      const stats = statSync(real);
      if (stats.isDirectory()) refuse(`${name} is a folder (${full}); name the .asm file in it`);
      if (!stats.isFile()) refuse(`${name} is not a regular file (${full})`);
      const bytes = readBounded(real, bytesLeft, (sizeBytes) =>
        `${scenarioPath}: guest source ${name} (${sizeBytes} bytes) goes over the limit of ${kibMax} KiB for all guest sources of a scenario ` +
        `(${kibMax * 1024 - bytesLeft} bytes were read before it, an %include counting each time); raise it with --max-source-kib N`);
      bytesLeft -= bytes.length;
      files[name] = bytes.toString('utf8');
      return files[name];
    } catch (error) {
      if (error instanceof InputError) throw error;
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') refuse(`${name} not found (looked for ${full})`);
      if (code !== undefined) refuse(`${name} cannot be read (${full}: ${code})`);
      throw error;
    }
  };
  return { read, files };
}

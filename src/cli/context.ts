/**
 * What the commands share: opening recordings safely, reading arguments, and reporting.
 * The command line is the only layer that touches files, processes and terminals.
 */
import { existsSync, readFileSync, rmSync, statSync, statfsSync } from 'node:fs';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { InputError, StorageFull, isStorageFull } from '../events/errors.ts';
import { RecordingStore, type RunRow, type RunStatus } from '../events/store.ts';
import { parseScenario } from '../core/machine/scenario.ts';
import type { MachineConfig } from '../core/hypervisor/config.ts';
import { checkRunFormats } from '../replay/formats.ts';
import { guestFiles, type GuestFileOptions } from './guest-files.ts';

const packageJson = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
export const SIM_VERSION: string = packageJson.version;

/** Opens an existing recording for reading only: a reader never changes the file. */
export function openForReading(path: string): RecordingStore {
  return RecordingStore.open(path, { readonly: true });
}

/**
 * Refuses, before any work, a place a recording cannot be written to: standard output (SQLite
 * needs a file it can seek in), anything there that is not a chronovisor recording (a FIFO, a
 * device, another database), or a folder that does not exist.
 */
export function checkRecordingTarget(path: string, option = '--out'): void {
  if (path === '-') {
    throw new InputError('argument', `${option} -: a recording is an SQLite file, which cannot go to standard output; give a file name such as run.db`);
  }
  if (existsSync(path)) {
    // Validate read-only first, so that a file that is not ours is never opened for writing.
    openForReading(path).close();
  } else if (!existsSync(dirname(path) || '.')) {
    throw new InputError('no-such-file', `${option} ${path}: the folder ${dirname(path)} does not exist; create it or choose another ${option}`);
  }
}

/** Opens (or creates) a recording to add runs to; a foreign or newer file is refused untouched. */
export function openForWriting(path: string): RecordingStore {
  checkRecordingTarget(path);
  if (existsSync(path)) return RecordingStore.open(path);
  try {
    return RecordingStore.create(path, SIM_VERSION);
  } catch (error) {
    if (!isStorageFull(error)) throw error;
    // Half a new file is no recording: nothing is left behind.
    for (const file of [path, `${path}-wal`, `${path}-shm`]) rmSync(file, { force: true });
    throw new StorageFull(`creating ${path} failed (SQLite: ${(error as Error).message}); ${freeSpace(path)}; nothing was left behind`);
  }
}

/**
 * Reads a scenario and the files it names (guest sources, relative to it, confined to its
 * folder and the --guest-path folders). The files are returned too: the recording keeps
 * them, so verify never needs the outside again.
 */
export function readScenario(path: string, options: GuestFileOptions = {}): { text: string; config: MachineConfig; files: Record<string, string> } {
  if (!existsSync(path)) throw new InputError('no-such-file', `${path}: no such scenario file`);
  if (statSync(path).isDirectory()) throw new InputError('scenario', `${path}: a folder, not a scenario file; name the .yaml file in it`);
  const text = readFileSync(path, 'utf8');
  const guest = guestFiles(path, options);
  const config = parseScenario(text, path, guest.read, note);
  return { text, config, files: guest.files };
}

/** Where `run` records by default: the scenario's name with .db, beside it. */
export function defaultRecordingPath(scenarioPath: string): string {
  return join(dirname(scenarioPath), `${basename(scenarioPath, extname(scenarioPath))}.db`);
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A run still marked 'recording' whose writer is gone was cut short: it is incomplete. */
export function effectiveStatus(run: RunRow): RunStatus {
  if (run.status !== 'recording') return run.status;
  return run.writerPid !== null && processAlive(run.writerPid) ? 'recording' : 'incomplete';
}

/** The run `ref` names (default: the newest), refused if this chronovisor cannot read its formats. */
export function resolveRun(store: RecordingStore, ref: string | undefined): RunRow {
  const run = ref === undefined ? store.latestRun() : store.run(ref);
  checkRunFormats(store, run);
  return { ...run, status: effectiveStatus(run) };
}

export function parseSeq(text: string, option: string): number {
  if (!/^\d+$/.test(text)) throw new InputError('argument', `${option} ${text}: expected a seq, a whole number >= 0`);
  return Number(text);
}

export function parseCount(text: string, option: string): number {
  if (!/^[1-9]\d*$/.test(text)) throw new InputError('argument', `${option} ${text}: expected a whole number >= 1`);
  return Number(text);
}

/** Parses KEY=VALUE pairs given with --set. */
export function parseSets(sets: string[]): [string, string][] {
  return sets.map((set) => {
    const at = set.indexOf('=');
    if (at <= 0) throw new InputError('argument', `--set ${set}: expected KEY=VALUE, for example --set profile=vanilla`);
    return [set.slice(0, at), set.slice(at + 1)];
  });
}

/** How the commands we suggest are run from the project folder, right after `npm ci`. */
export const CLI = 'npx chronovisor';

export const out = (line: string): void => { process.stdout.write(`${line}\n`); };
export const note = (line: string): void => { process.stderr.write(`${line}\n`); };

/** Bytes, as a person reads them (1.5 MB). */
function formatBytes(bytes: number): string {
  const units = ['bytes', 'kB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  for (; value >= 1000 && unit < units.length - 1; unit++) value /= 1000;
  return unit === 0 ? `${value} bytes` : `${value.toFixed(1)} ${units[unit]}`;
}

/** The free space of the file system that holds `path`, and a hint when there is plenty. */
function freeSpace(path: string): string {
  const folder = dirname(resolve(path));
  const stat = statfsSync(folder);
  const bytes = stat.bavail * stat.bsize;
  // Plenty of room, yet a write failed: the process's file size limit is the likelier cause.
  return `${formatBytes(bytes)} free on its file system (${folder})${bytes > 100e6 ? ', so the file may have reached a size limit (ulimit -f)' : ''}`;
}

/**
 * Says that a recording stopped because the disk did not take a write, with the free space
 * of its file system and what is left readable. Returns the exit code (1: the recording is
 * shorter than asked, but what it holds is sound).
 */
export function reportStorageFull(db: string, run: RunRow, status: RunStatus, sqlite: string): number {
  note(`chronovisor: the disk did not take more of ${db} (SQLite: ${sqlite}); ${freeSpace(db)}`);
  note(status === 'stopped'
    ? `  run ${run.id} is stopped at seq ${run.eventCount}, where its committed chunks end; they are readable (${CLI} verify ${quote(db)} --run ${run.id})`
    : `  run ${run.id} ends at seq ${run.eventCount}, where its committed chunks end, but marking it stopped failed too: it reads as incomplete; its chunks are readable`);
  note('  free some space, or record onto another disk (--out)');
  return 1;
}

/** Shell-quotes an argument for the commands we print for people to paste. */
export function quote(arg: string | number): string {
  const text = String(arg);
  return /^[\w@%+=:,./-]+$/.test(text) ? text : `'${text.replace(/'/g, `'\\''`)}'`;
}

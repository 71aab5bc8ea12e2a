/**
 * Shared helpers for the CLI tests: run `bin/chronovisor` in a child process, make and
 * remove scratch folders, and fingerprint recording files so a test can prove that a
 * failed command left them byte for byte as they were.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';

export const BIN = fileURLToPath(new URL('../../bin/chronovisor', import.meta.url));
export const DEMO_SCENARIO = fileURLToPath(new URL('../../recordings/two-tenants.yaml', import.meta.url));

export interface CliResult {
  /** The exit code, or null when the process was ended by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** A safety net against a hung child only; no assertion depends on how long anything takes. */
const HANG_LIMIT_MS = 120_000;

/** The environment for children: this process's, minus the test runner's own markers. */
export function childEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.NODE_TEST_CONTEXT;
  delete env.NODE_OPTIONS;
  return env;
}

/** Starts `chronovisor ARGS` in `cwd` with piped stdio (so stderr is never a terminal). */
export function startCli(args: readonly string[], cwd: string): ChildProcess {
  return spawn(process.execPath, [BIN, ...args], { cwd, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Runs `chronovisor ARGS` in `cwd` to completion. */
export function cli(args: readonly string[], cwd: string): Promise<CliResult> {
  return collect(startCli(args, cwd));
}

/** Waits for a child started with piped stdout and stderr, killing it past the hang limit. */
export function collect(child: ChildProcess): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout!.on('data', (d: Buffer) => stdout.push(d));
    child.stderr!.on('data', (d: Buffer) => stderr.push(d));
    const timer = setTimeout(() => child.kill('SIGKILL'), HANG_LIMIT_MS);
    child.on('error', (error) => { clearTimeout(timer); reject(error); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(stdout).toString('utf8'), stderr: Buffer.concat(stderr).toString('utf8') });
    });
  });
}

/** A readable account of a result, for assertion messages. */
export function describeResult(args: readonly string[], r: CliResult): string {
  return `chronovisor ${args.join(' ')} -> code ${r.code}${r.signal ? ` (signal ${r.signal})` : ''}\n--- stdout ---\n${r.stdout}--- stderr ---\n${r.stderr}`;
}

/** A fresh scratch folder under the OS temp dir. */
export function tempDir(label = 'chronovisor-test'): string {
  return mkdtempSync(join(tmpdir(), `${label}-`));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

export function writeText(dir: string, name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

export function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

export interface Fingerprint {
  /** sha256 of the database file, or 'absent'. */
  db: string;
  /**
   * sha256 of the write-ahead log's contents. An absent -wal and an empty one both hold no
   * frames (SQLite creates and removes empty ones as connections come and go), so both
   * fingerprint as the hash of no bytes; any frame written to it changes this.
   */
  wal: string;
}

const EMPTY_SHA256 = createHash('sha256').digest('hex');

export function fingerprint(dbPath: string): Fingerprint {
  return {
    db: existsSync(dbPath) ? sha256File(dbPath) : 'absent',
    wal: existsSync(`${dbPath}-wal`) ? sha256File(`${dbPath}-wal`) : EMPTY_SHA256,
  };
}

/** The names in a folder, sorted; `ignoreSqliteSidecars` drops -wal and -shm files. */
export function listing(dir: string, ignoreSqliteSidecars = false): string[] {
  return readdirSync(dir).filter((n) => !ignoreSqliteSidecars || !/-(wal|shm)$/.test(n)).sort();
}

/** Parses `runs --json` output: one JSON object per line. */
export function parseJsonLines<T = Record<string, unknown>>(text: string): T[] {
  return text.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as T);
}

/** A scripted single-guest scenario whose loop makes about 8 events per iteration. */
export function loopScenario(options: { seed: number; times: number }): string {
  return `# a guest that writes, reads and yields in a loop
seed: ${options.seed}
machine:
  memoryMiB: 4
  pcpus: 1
  profile: secure
  quantum: 3
dom0:
  memoryKiB: 256
domains:
  - name: alice
    memoryKiB: 64
    guest:
      ops:
        - repeat:
            times: ${options.times}
            ops:
              - write: { gpa: 0x1000, hex: "deadbeef" }
              - read: { gpa: 0x1000, len: 4 }
              - yield
`;
}

/** Chunks committed so far, or -1 while the file or its tables are not there yet. */
export function committedChunks(path: string): number {
  // Wait for the write-ahead log: the writer switches to WAL mode first thing, and a reader
  // holding the file before then could make that switch fail.
  if (!existsSync(path) || !existsSync(`${path}-wal`)) return -1;
  let db: Database.Database | undefined;
  try {
    db = new Database(path, { readonly: true, fileMustExist: true });
    return (db.prepare('SELECT count(*) AS n FROM chunks').get() as { n: number }).n;
  } catch {
    return -1; // tables not created yet
  } finally {
    db?.close();
  }
}

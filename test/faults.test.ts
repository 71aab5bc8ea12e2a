/**
 * Faults while recording the long workload (recordings/long.yaml):
 * - a disk that does not take more (here a file size limit, `ulimit -f`: the same failed
 *   write SQLite sees on a full disk) stops the run cleanly: exit 1, a message naming the
 *   free space, the run `stopped` where its committed chunks end, and verify proves them;
 *   a recording that cannot even be created leaves nothing behind;
 * - SIGKILL once the store thread is storing (more than 8 chunks in), with chunks in flight,
 *   leaves every committed chunk readable and the run `incomplete`.
 * (test/crash.test.ts kills a writer before its store thread takes over.)
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { CHUNK_EVENTS } from '../src/events/store.ts';
import { BIN, childEnv, cli, collect, committedChunks, describeResult, parseJsonLines, removeDir, startCli, tempDir, type CliResult } from './helpers/cli.ts';

const LONG = fileURLToPath(new URL('../recordings/long.yaml', import.meta.url));
/** Only a guard against a writer that never commits; the test waits on the database, not on time. */
const GIVE_UP_MS = 120_000;

let dir: string;

/** `chronovisor ARGS` with the file size limit at `kib` KiB (bash's ulimit -f). */
function cliLimited(kib: number, args: string[]): Promise<CliResult> {
  return collect(spawn('bash', ['-c', `ulimit -f ${kib} && exec "$0" "$@"`, process.execPath, BIN, ...args], { cwd: dir, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] }));
}

async function runs(db: string): Promise<{ id: number; status: string; events: number }[]> {
  const r = await cli(['runs', db, '--json'], dir);
  assert.equal(r.code, 0, describeResult(['runs', db, '--json'], r));
  return parseJsonLines(r.stdout);
}

async function verifyJson(db: string): Promise<{ ok: boolean; events: number; replayedEvents: number }> {
  const r = await cli(['verify', db, '--json'], dir);
  assert.equal(r.code, 0, describeResult(['verify', db, '--json'], r));
  return parseJsonLines<{ ok: boolean; events: number; replayedEvents: number }>(r.stdout)[0];
}

before(() => {
  dir = tempDir('chronovisor-faults');
});

after(() => removeDir(dir));

describe('a disk that does not take more', () => {
  test('stops the run cleanly where its committed chunks end, naming the free space; verify proves them', async () => {
    const args = ['run', LONG, '--max-events', '1000000', '--out', 'full.db'];
    const r = await cliLimited(2048, args);
    assert.equal(r.code, 1, describeResult(args, r));
    assert.match(r.stderr, /^chronovisor: the disk did not take more of full\.db \(SQLite: [^)]+\); [\d.]+ (bytes|kB|MB|GB|TB) free on its file system \(/m);
    assert.match(r.stderr, /run 1 is stopped at seq \d+, where its committed chunks end/);
    assert.doesNotMatch(r.stderr, /internal error|    at /, 'no stack trace');
    const [run] = await runs('full.db');
    assert.equal(run.status, 'stopped');
    assert.ok(run.events > 0 && run.events < 1_000_000, `events: ${run.events}`);
    assert.equal(run.events % CHUNK_EVENTS, 0, 'a run cut by the disk ends at a whole chunk');
    assert.match(r.stderr, new RegExp(`stopped at seq ${run.events},`));
    const report = await verifyJson('full.db');
    assert.equal(report.ok, true);
    assert.equal(report.replayedEvents, run.events);
  });

  test('a recording that cannot be created leaves nothing behind: exit 1, no stack trace', async () => {
    const args = ['run', LONG, '--max-events', '1000000', '--out', 'tiny.db'];
    const r = await cliLimited(60, args);
    assert.equal(r.code, 1, describeResult(args, r));
    assert.match(r.stderr, /^chronovisor: the disk did not take a write: creating tiny\.db failed .* free on its file system .*nothing was left behind$/m);
    assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith('tiny.db')), []);
  });
});

describe('SIGKILL while the store thread stores', () => {
  test('every committed chunk is readable, the run incomplete, verify proves it', async () => {
    const path = join(dir, 'killed.db');
    const writer = startCli(['run', LONG, '--out', 'killed.db'], dir);
    writer.stdout!.resume();
    let stderr = '';
    writer.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
    let running = true;
    const closed = new Promise<NodeJS.Signals | null>((resolve) => writer.on('close', (_code, signal) => { running = false; resolve(signal); }));
    const giveUp = Date.now() + GIVE_UP_MS;
    // Past the chunks the recording thread stores itself (8), into the store thread's.
    while (running && committedChunks(path) < 20) {
      if (Date.now() > giveUp) { writer.kill('SIGKILL'); assert.fail(`no 20 chunks committed; stderr:\n${stderr}`); }
      await sleep(20);
    }
    assert.ok(running, `the writer ended on its own; stderr:\n${stderr}`);
    writer.kill('SIGKILL');
    assert.equal(await closed, 'SIGKILL');
    const chunks = committedChunks(path);
    const [run] = await runs('killed.db');
    assert.equal(run.status, 'incomplete');
    assert.equal(run.events, chunks * CHUNK_EVENTS, 'the run counts exactly its committed chunks');
    const last = run.events - 1;
    const log = await cli(['log', 'killed.db', '--from', String(last - 1), '--json'], dir);
    assert.equal(log.code, 0, describeResult(['log'], log));
    assert.deepEqual(parseJsonLines<{ seq: number }>(log.stdout).map((l) => l.seq), [last - 1, last]);
    const report = await verifyJson('killed.db');
    assert.equal(report.ok, true);
    assert.equal(report.replayedEvents, run.events);
  });
});

/**
 * A recording killed mid-run (SIGKILL: no handler, no final flush) keeps what it committed:
 * whole chunks, each in its own transaction. Readers see the run as incomplete, every
 * committed chunk decodes, and verify proves what is there.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { CHUNK_EVENTS } from '../src/events/store.ts';
import { cli, committedChunks, describeResult, loopScenario, parseJsonLines, removeDir, startCli, tempDir, writeText, type CliResult } from './helpers/cli.ts';

const MIN_CHUNKS = 3;
/** Only a guard against a writer that never commits; the test waits on the database, not on time. */
const GIVE_UP_MS = 90_000;

let dir: string;
let child: ChildProcess | undefined;
let running = false;
let childPid: number;
let killedBy: NodeJS.Signals | null;
let exitCode: number | null;
let stderrText = '';
/** What the chunks table holds once the writer is dead. */
let chunkRows: { first_seq: number; count: number }[];
let runRow: { id: number; status: string; event_count: number; writer_pid: number | null };
/** `verify --json` run while the writer was alive. */
let liveVerify: CliResult;

before(async () => {
  dir = tempDir('chronovisor-crash');
  // ~8 events per iteration and a billion iterations: it runs until it is killed.
  writeText(dir, 'endless.yaml', loopScenario({ seed: 9, times: 1_000_000_000 }));
  const path = join(dir, 'endless.db');
  const writer = startCli(['run', 'endless.yaml', '--out', 'endless.db'], dir);
  child = writer;
  running = true;
  childPid = writer.pid!;
  writer.stderr!.on('data', (d: Buffer) => { stderrText += d.toString('utf8'); });
  writer.stdout!.resume();
  const exited = new Promise<void>((resolve) => writer.on('close', (code, signal) => { exitCode = code; killedBy = signal; resolve(); }));
  writer.on('exit', () => { running = false; });
  const giveUp = Date.now() + GIVE_UP_MS;
  while (running && committedChunks(path) < MIN_CHUNKS) {
    if (Date.now() > giveUp) {
      writer.kill('SIGKILL');
      assert.fail(`no ${MIN_CHUNKS} chunks committed; writer stderr:\n${stderrText}`);
    }
    await sleep(20);
  }
  assert.ok(running, `the writer ended on its own (code ${exitCode}) before it was killed; stderr:\n${stderrText}`);
  // While it is still writing: verify checks what is committed and says the run is live.
  liveVerify = await cli(['verify', 'endless.db', '--json'], dir);
  assert.ok(running, `the writer ended on its own (code ${exitCode}) while verify ran; stderr:\n${stderrText}`);
  writer.kill('SIGKILL');
  await exited;
  const db = new Database(path, { readonly: true, fileMustExist: true });
  chunkRows = db.prepare('SELECT first_seq, count FROM chunks WHERE run = 1 ORDER BY first_seq').all() as typeof chunkRows;
  runRow = db.prepare('SELECT id, status, event_count, writer_pid FROM runs WHERE id = 1').get() as typeof runRow;
  db.close();
});

after(() => {
  if (running) child?.kill('SIGKILL');
  removeDir(dir);
});

describe('a recording killed mid-run', () => {
  test('the writer died of SIGKILL with at least 3 whole chunks committed, and nothing else', (t) => {
    t.diagnostic(`${chunkRows.length} chunks committed before the kill`);
    assert.equal(killedBy, 'SIGKILL', `the writer should have been killed, not exit ${exitCode}`);
    assert.ok(chunkRows.length >= MIN_CHUNKS, `chunks: ${chunkRows.length}`);
    chunkRows.forEach((row, i) => {
      assert.equal(row.first_seq, i * CHUNK_EVENTS, `chunk ${i} starts at its aligned seq`);
      assert.equal(row.count, CHUNK_EVENTS, `chunk ${i} is whole (a killed writer never flushes a short one)`);
    });
    // The run row was committed with each chunk: its count is exactly what the chunks hold.
    assert.equal(runRow.event_count, chunkRows.length * CHUNK_EVENTS);
    assert.equal(runRow.status, 'recording', 'nobody marked the run finished');
    assert.equal(runRow.writer_pid, childPid, 'the run names its (dead) writer');
  });

  test('runs --json shows the run as incomplete with every committed event', async () => {
    const r = await cli(['runs', 'endless.db', '--json'], dir);
    assert.equal(r.code, 0, describeResult(['runs', '--json'], r));
    const runs = parseJsonLines<{ id: number; name: string; status: string; events: number; violations: number | null }>(r.stdout);
    assert.equal(runs.length, 1);
    assert.equal(runs[0].status, 'incomplete');
    assert.equal(runs[0].events, chunkRows.length * CHUNK_EVENTS);
    assert.equal(runs[0].name, 'endless-secure');
  });

  test('log --from 0 --limit N prints every committed event, in order: every chunk decodes', async () => {
    const events = chunkRows.length * CHUNK_EVENTS;
    const r = await cli(['log', 'endless.db', '--from', '0', '--limit', String(events + 10), '--json'], dir);
    assert.equal(r.code, 0, describeResult(['log', '--from', '0'], r));
    const lines = parseJsonLines<{ seq: number; kind: string }>(r.stdout);
    assert.equal(lines.length, events);
    lines.forEach((line, i) => { if (line.seq !== i) assert.fail(`line ${i} has seq ${line.seq}`); });
    assert.equal(lines[0].kind, 'machine.boot');
  });

  test('log of the last few events stops at the last committed seq', async () => {
    const last = chunkRows.length * CHUNK_EVENTS - 1;
    const r = await cli(['log', 'endless.db', '--from', String(last - 2), '--json'], dir);
    assert.equal(r.code, 0, describeResult(['log', '--from', String(last - 2)], r));
    assert.deepEqual(parseJsonLines<{ seq: number }>(r.stdout).map((l) => l.seq), [last - 2, last - 1, last]);
  });

  test('state --at the last seq, and at the end, work', async () => {
    const events = chunkRows.length * CHUNK_EVENTS;
    for (const at of [String(events - 1), 'end']) {
      const r = await cli(['state', 'endless.db', '--at', at, '--json'], dir);
      assert.equal(r.code, 0, describeResult(['state', '--at', at], r));
      const state = JSON.parse(r.stdout) as { seq: number; halted: boolean; domains: { name: string }[] };
      assert.equal(state.seq, at === 'end' ? events : events - 1);
      assert.equal(state.halted, false);
      assert.ok(state.domains.some((d) => d.name === 'alice'));
    }
  });

  test('verify of the run while it was being recorded: ok up to its last committed chunk, said to be live', () => {
    assert.equal(liveVerify.code, 0, describeResult(['verify', '--json'], liveVerify));
    const [report] = parseJsonLines<{ ok: boolean; live: boolean; events: number; chunks: number; replayedEvents: number }>(liveVerify.stdout);
    assert.equal(report.ok, true);
    assert.equal(report.live, true);
    assert.ok(report.events >= MIN_CHUNKS * CHUNK_EVENTS && report.events % CHUNK_EVENTS === 0, `verified up to a chunk boundary: ${report.events}`);
    assert.equal(report.chunks, report.events / CHUNK_EVENTS);
    assert.equal(report.replayedEvents, report.events, 'every committed event was re-executed');
    assert.ok(report.events <= chunkRows.length * CHUNK_EVENTS);
  });

  test('verify exits 0 on what was committed', async () => {
    const r = await cli(['verify', 'endless.db'], dir);
    assert.equal(r.code, 0, describeResult(['verify', 'endless.db'], r));
    assert.match(r.stdout, new RegExp(`^ok +run 1 \\(endless-secure, incomplete\\): ${chunkRows.length * CHUNK_EVENTS} events, ${chunkRows.length} chunks`, 'm'));
  });
});

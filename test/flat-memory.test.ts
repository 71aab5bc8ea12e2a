/**
 * What a reader keeps of a recording does not grow with it: the TUI's block index (built
 * from the chunk index), a search for text far away and a sweep of the timeline over the
 * whole run hold the same heap on a run of 1M events as on one of 4M, within a margin far
 * below what anything kept per chunk would add. Measured in this process after a full GC,
 * never timed. The runs are made of synthetic events appended straight to the store (no
 * machine: quick to make), so the figures are the readers' alone.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { makeEvent } from '../src/events/make-event.ts';
import type { Event } from '../src/events/schema.ts';
import { GENESIS_HASH, RecordingStore, RunWriter, type RunRow } from '../src/events/store.ts';
import { Timeline } from '../src/replay/timeline.ts';
import { BlockIndex, SUMMARIES_FROM_EVENTS } from '../src/tui/block-index.ts';
import { SearchJob, parseQuery } from '../src/tui/search.ts';
import { removeDir, tempDir } from './helpers/cli.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const MILLION = 1_000_000;
/**
 * The heap may differ by this much between the two runs (3M events apart): GC noise stays
 * under half of it, and a structure that keeps an eighth of a byte per event, or a
 * hundred bytes per 1,000 events, would pass it.
 */
const MARGIN_BYTES = 384 * 1024;

let dir: string;
let store: RecordingStore;

/** A run of `count` events: a domain created, then instructions, a VM exit now and then, a console line at 95%. */
function appendRun(name: string, count: number): RunRow {
  const run = store.createRun({
    name, parentRun: null, forkSeq: null, baseSeq: 0, seed: 'flat', scenario: '', scenarioPath: '',
    config: '{}', formats: {}, simVersion: 'test', headHash: GENESIS_HASH, writerPid: process.pid,
  });
  const writer = new RunWriter(store, run, 0, GENESIS_HASH);
  const batch: Event[] = [makeEvent('domain.create', { dom: 1, name: 'alice', memoryKiB: 64, vcpus: 1 })];
  for (let seq = 1; seq < count; seq++) {
    if (seq === Math.floor(count * 0.95)) batch.push(makeEvent('hypercall', { dom: 1, vcpu: 0, op: 'console_write', args: [], text: 'the far away line', result: 0 }));
    else if (seq % 5000 === 0) batch.push(makeEvent('vm.exit', { dom: 1, vcpu: 0, pcpu: 0, reason: 10, qualification: 0, gla: -1, gpa: -1, length: 2, vector: -1, errorCode: -1 }));
    else batch.push({ kind: 'cpu.step', dom: 1, vcpu: 0, pcpu: 0, eip: 0x1000 + (seq % 64), next: 0x1002 + (seq % 64), delta: [0, seq] });
    if (batch.length === 4096) writer.append(batch.splice(0));
  }
  writer.append(batch);
  writer.flush();
  store.finishRun(run, 'complete', '{}');
  return store.run(run);
}

/**
 * Indexes the run, searches it for the far line, sweeps the timeline, and measures the heap
 * while all of them are still reachable; they are dropped on return, so that one reading
 * never counts in the next one's figure.
 */
function readRun(run: RunRow): number {
  const timeline = new Timeline(store, run);
  const index = new BlockIndex(() => new Timeline(store, run));
  index.length = run.eventCount;
  assert.equal(index.scan(Infinity, () => 0), true);
  assert.equal(index.names.get(1), 'alice');
  const matcher = parseQuery('"far away line"', index.names);
  assert.ok(typeof matcher !== 'string');
  const search = new SearchJob(timeline, index, matcher, 0, 1, index.names);
  assert.equal(search.step(Infinity, () => 0), true);
  assert.equal(search.found, Math.floor(run.eventCount * 0.95));
  for (let seq = 0; seq < run.eventCount; seq += 3001) timeline.event(seq);
  const kept = [timeline, index, search];
  gc();
  gc();
  const heap = process.memoryUsage().heapUsed;
  assert.equal(kept.length, 3);
  return heap;
}

before(() => {
  dir = tempDir('chronovisor-flat');
  store = RecordingStore.create(join(dir, 'flat.db'), 'test');
});

after(() => {
  store?.close();
  removeDir(dir);
});

test('the block index, a far search and a timeline sweep hold the same heap at 1M and at 4M events', () => {
  const small = appendRun('1M', MILLION);
  const large = appendRun('4M', 4 * MILLION);
  assert.ok(small.eventCount >= SUMMARIES_FROM_EVENTS, 'both are read from the chunk index');
  // The first readings warm up code and caches that any reading has; measure the next ones,
  // taking the smaller of two for each size, read in turns: what is compiled meanwhile (code
  // is on the heap too) then counts for neither size. Under the load of two test suites at
  // once, a single reading of each differed by 393 KB the wrong way (4M below 1M).
  readRun(small);
  readRun(large);
  const readings = [readRun(small), readRun(large), readRun(small), readRun(large)];
  const one = Math.min(readings[0], readings[2]);
  const four = Math.min(readings[1], readings[3]);
  const growth = four - one;
  assert.ok(Math.abs(growth) < MARGIN_BYTES, `heap at 1M events ${one} bytes, at 4M ${four}: ${growth} bytes more`);
});

/**
 * SQLite's page cache is native memory, outside the heap measured above: a reader of a long
 * recording fills it (better-sqlite3 builds SQLite with 16 MB), and `verify` holds one per
 * worker. Every connection a recording is opened with keeps it within 4 MiB.
 */
test('every connection to a recording keeps a page cache of at most 4 MiB', () => {
  const path = join(dir, 'flat.db');
  const cacheKiB = (s: RecordingStore): number => {
    const size = s.db.pragma('cache_size', { simple: true }) as number;
    return size < 0 ? -size : (size * (s.db.pragma('page_size', { simple: true }) as number)) / 1024;
  };
  assert.ok(cacheKiB(store) <= 4096, `a new recording: ${cacheKiB(store)} KiB`);
  for (const readonly of [true, false]) {
    const opened = RecordingStore.open(path, { readonly });
    try {
      assert.ok(cacheKiB(opened) <= 4096, `opened ${readonly ? 'read-only' : 'to write'}: ${cacheKiB(opened)} KiB`);
    } finally {
      opened.close();
    }
  }
});

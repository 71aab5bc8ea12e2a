/**
 * The store thread (src/events/store-thread*.ts): a long run's chunks and checkpoints stored
 * on the thread are row for row what the recording thread stores itself; the thread is
 * reused run after run; a failure on it reaches the recording thread; and it starts under
 * bin/chronovisor's way of loading TypeScript (tsx registered in the main thread only).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { CHUNK_EVENTS, GENESIS_HASH, RecordingStore, RunWriter } from '../src/events/store.ts';
import { chunkHash } from '../src/events/chunk-storer.ts';
import { StoreThread } from '../src/events/store-thread.ts';
import { SIGNAL_FAILED, SIGNAL_HANDLED, SIGNAL_WORDS, StoreThreadServer } from '../src/events/store-thread-worker.ts';
import type { Event } from '../src/events/schema.ts';
import { anyEvent } from '../property-tests/arbitraries.ts';
import { runs } from '../property-tests/helpers.ts';
import { childEnv, removeDir, tempDir } from './helpers/cli.ts';

const dir = tempDir('chronovisor-store-thread');
test.after(() => removeDir(dir));
let files = 0;

interface Checkpoint { seq: number; state: Uint8Array; pages: [Uint8Array, Uint8Array][] }

/** Writes `events` with `checkpoints` (each given once its seq is reached) as run 1 of a new store. */
function record(path: string, events: Event[], checkpoints: Checkpoint[]): { store: RecordingStore; byThread: number } {
  const store = RecordingStore.create(path, 'test');
  const run = store.createRun({
    name: 'r', parentRun: null, forkSeq: null, baseSeq: 0, seed: 's', scenario: '', scenarioPath: '',
    config: '{}', formats: {}, simVersion: 'test', headHash: GENESIS_HASH, writerPid: process.pid,
  });
  const writer = new RunWriter(store, run, 0, GENESIS_HASH);
  let next = 0;
  for (const c of [...checkpoints].sort((a, b) => a.seq - b.seq)) {
    writer.append(events.slice(next, c.seq));
    next = c.seq;
    writer.checkpoint(c.seq, c.state, c.pages);
  }
  writer.append(events.slice(next));
  writer.flush();
  store.finishRun(run, 'complete', '{}');
  return { store, byThread: writer.chunksByThread };
}

/** Everything a run stored, as comparable rows. */
function contents(store: RecordingStore): unknown {
  const all = (sql: string) => store.db.prepare(sql).all();
  return {
    chunks: all('SELECT run, first_seq, count, hash, bytes FROM chunks ORDER BY run, first_seq'),
    checkpoints: all('SELECT run, seq, state FROM checkpoints ORDER BY run, seq'),
    pages: all('SELECT hash, bytes FROM pages ORDER BY hash'),
    runs: all('SELECT id, head_hash, event_count FROM runs'),
  };
}

const bytes = fc.uint8Array({ maxLength: 64 });

test('a long run stored by the store thread is row for row what the recording thread stores', () => {
  StoreThread.waitUntilReady();
  // Events of every kind, repeated to a run of 9 to 11 chunks (the thread takes over after 8),
  // with checkpoints anywhere, some of them sharing pages.
  const run = fc.record({
    sample: fc.array(anyEvent, { minLength: 1, maxLength: 300 }),
    length: fc.integer({ min: 8 * CHUNK_EVENTS + 1, max: 11 * CHUNK_EVENTS }),
    checkpoints: fc.array(fc.record({ at: fc.double({ min: 0, max: 1, noNaN: true }), state: bytes, pages: fc.array(fc.tuple(fc.uint8Array({ minLength: 32, maxLength: 32 }), bytes), { maxLength: 3 }) }), { maxLength: 12 }),
  });
  fc.assert(fc.property(run, ({ sample, length, checkpoints }) => {
    const events = Array.from({ length }, (_, i) => sample[i % sample.length]);
    const points = checkpoints.map((c) => ({ seq: Math.floor(c.at * length), state: c.state, pages: c.pages }));
    const threaded = record(join(dir, `t${files++}.db`), events, points);
    const alone = record(':memory:', events, points);
    try {
      assert.ok(threaded.byThread > 0, 'the store thread stored none of the chunks');
      assert.equal(alone.byThread, 0);
      assert.deepEqual(contents(threaded.store), contents(alone.store));
    } finally {
      threaded.store.close();
      alone.store.close();
    }
  }), { numRuns: runs(4) });
});

test('a failure on the store thread reaches the recording thread, and the next run gets a new thread', () => {
  StoreThread.waitUntilReady();
  const thread = StoreThread.acquire();
  assert.ok(thread !== undefined, 'a ready thread is lent');
  assert.equal(StoreThread.acquire(), undefined, 'a thread is lent to one writer at a time');
  thread.open(join(dir, 'no-such.db'), 1, 0, GENESIS_HASH);
  assert.throws(() => thread.release(), /the store thread failed: .*no-such\.db|unable to open/);
  StoreThread.waitUntilReady();
  const next = StoreThread.acquire();
  assert.ok(next !== undefined && next !== thread, 'a new thread after a failure');
  next.release();
});

test('the thread\'s server counts every message, stores a chunk onto the chain, and stops at its first failure', () => {
  const path = join(dir, `s${files++}.db`);
  const store = RecordingStore.create(path, 'test');
  const run = store.createRun({
    name: 'r', parentRun: null, forkSeq: null, baseSeq: 0, seed: 's', scenario: '', scenarioPath: '',
    config: '{}', formats: {}, simVersion: 'test', headHash: GENESIS_HASH, writerPid: process.pid,
  });
  const signal = new SharedArrayBuffer(SIGNAL_WORDS * 4);
  const head = new SharedArrayBuffer(32);
  const { port1, port2 } = new MessageChannel();
  const server = new StoreThreadServer({ storeThread: true, module: import.meta.url, signal, head, errors: port2 as unknown as import('node:worker_threads').MessagePort });
  const words = new Int32Array(signal);
  const raw = Uint8Array.of(0x91, 0x00);
  try {
    server.handle({ t: 'open', path, run, committed: 0, head: GENESIS_HASH });
    server.handle({ t: 'chunk', firstSeq: 0, count: 1, journal: { count: 1, words: Uint32Array.of(2), bytes: Uint8Array.of(0x00), stepPrefix: new Uint8Array(0) } });
    assert.deepEqual(Buffer.from(new Uint8Array(head)), chunkHash(GENESIS_HASH, 0, 1, raw), 'the head after the chunk');
    assert.equal(Atomics.load(words, SIGNAL_FAILED), 0);
    // A second open while a run is open is a bug of the owner: the thread fails and stops.
    server.handle({ t: 'open', path, run, committed: 0, head: GENESIS_HASH });
    server.handle({ t: 'chunk', firstSeq: 1, count: 1, journal: { count: 1, words: Uint32Array.of(2), bytes: Uint8Array.of(0x00), stepPrefix: new Uint8Array(0) } });
    assert.equal(Atomics.load(words, SIGNAL_FAILED), 1);
    assert.equal(Atomics.load(words, SIGNAL_HANDLED), 4, 'every message is counted, failed or not');
    assert.equal(store.run(run).eventCount, 1, 'nothing stored after the failure');
  } finally {
    port1.close();
    store.close();
  }
});

test('the store thread starts and stores under bin/chronovisor\'s loader (tsx registered in the main thread only)', () => {
  const fixture = fileURLToPath(new URL('./fixtures/store-thread-under-register.mjs', import.meta.url));
  const child = spawnSync(process.execPath, [fixture, join(dir, `cli${files++}.db`)], { env: childEnv(), encoding: 'utf8' });
  assert.equal(child.status, 0, child.stderr);
  const { byThread, head, memoryHead } = JSON.parse(child.stdout) as { byThread: number; head: string; memoryHead: string };
  assert.ok(byThread > 0, 'the store thread stored none of the chunks');
  assert.equal(head, memoryHead);
});

/**
 * Store benchmark (issue 2): on a 10-million-event recording of a real secure-profile
 * workload, measures
 * - the record rate end to end (machine + store) and the store's append rate alone,
 * - bytes per event on disk (the whole SQLite file: chunks, checkpoints, pages),
 * - the read rate of every chunk as read commands read it, and the share of checking hashes,
 * - seek latency p50/p99 to random positions (a fresh timeline, and one with warm caches),
 * - verify rate: hash chain alone, and the full check (chain + re-execution).
 */
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RecordingStore, RunWriter, GENESIS_HASH, chunkHash, inflateChunk } from '../src/events/store.ts';
import { parseScenario } from '../src/core/machine/scenario.ts';
import { recordScenario } from '../src/replay/recorder.ts';
import { RUN_FORMATS } from '../src/replay/formats.ts';
import { Timeline } from '../src/replay/timeline.ts';
import { checkChainShape, verifyRun } from '../src/replay/verify.ts';
import { verifyRunParallel } from '../src/cli/parallel-verify.ts';
import { seedPrng, nextU32 } from '../src/core/machine/prng.ts';

export interface Figure { name: string; value: string; goal?: string; ok?: boolean }

const seconds = (start: bigint): number => Number(process.hrtime.bigint() - start) / 1e9;

/** A tenant mix that keeps every part of the slice busy: writes, reads, ownership churn. */
function scenario(events: number): string {
  // Every iteration emits at least ten events; the recording is cut at `events`.
  const times = Math.ceil(events / 10);
  return `
seed: bench
machine: { memoryMiB: 64, pcpus: 2, profile: secure, quantum: 4 }
domains:
  - name: alice
    memoryKiB: 256
    guest:
      ops:
        - canary: { gpa: 0x1000 }
        - repeat:
            times: ${times}
            ops:
              - write: { gpa: 0x2000, text: "balance: 1000000" }
              - read: { gpa: 0x2000, len: 16 }
              - write: { gpa: 0x2ff8, hex: "00112233445566778899aabbccddeeff" }
              - yield
  - name: bob
    memoryKiB: 256
    guest:
      ops:
        - repeat:
            times: ${times}
            ops:
              - hypercall: { op: populate_physmap, gfn: 100, count: 4 }
              - write: { gpa: 0x64000, text: "scratch" }
              - hypercall: { op: decrease_reservation, gfns: [100, 101, 102, 103] }
              - hypercall: { op: console_write, text: "bob" }
  - name: carol
    memoryKiB: 128
    guest:
      ops:
        - repeat:
            times: ${times}
            ops:
              - read: { gpa: 0x0, len: 64 }
              - hypercall: { op: sched_yield }
`;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

export async function benchStore(eventsWanted = 10_000_000): Promise<Figure[]> {
  const dir = mkdtempSync(join(tmpdir(), 'chronovisor-bench-'));
  try {
    const yamlPath = join(dir, 'bench.yaml');
    const text = scenario(eventsWanted);
    writeFileSync(yamlPath, text);
    const config = parseScenario(text, yamlPath);
    const dbPath = join(dir, 'bench.db');
    const store = RecordingStore.create(dbPath, 'bench');
    let t = process.hrtime.bigint();
    const recorded = recordScenario(store, config, {
      name: 'bench', scenarioText: text, scenarioPath: yamlPath, config: '{}', simVersion: 'bench', writerPid: process.pid,
    }, { maxEvents: eventsWanted });
    const recordSeconds = seconds(t);
    const run = store.run(recorded.run);
    const events = run.eventCount;
    store.close();
    const bytes = statSync(dbPath).size;

    const { rate: appendRate, rawBytes } = measureAppend(dbPath, join(dir, 'append.db'), run.id);

    const reader = RecordingStore.open(dbPath, { readonly: true });
    const reads = measureChunkReads(reader, run.id);
    const seeks = measureSeeks(reader, run.id, events);

    t = process.hrtime.bigint();
    const chain = checkChainShape(reader, reader.run(run.id));
    const chainSeconds = seconds(t);
    t = process.hrtime.bigint();
    const report = verifyRun(reader, reader.run(run.id));
    const verifySeconds = seconds(t);
    t = process.hrtime.bigint();
    const parallel = await verifyRunParallel(reader, reader.run(run.id));
    const parallelSeconds = seconds(t);
    reader.close();
    const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');
    return [
      { name: 'events recorded', value: fmt(events) },
      { name: 'record rate, machine + store (events/s)', value: fmt(events / recordSeconds) },
      { name: 'append rate, store alone (events/s)', value: fmt(appendRate), goal: '>= 1,500,000', ok: appendRate >= 1_500_000 },
      { name: 'bytes per event on disk', value: (bytes / events).toFixed(2), goal: '<= 16', ok: bytes / events <= 16 },
      { name: 'bytes per event before deflate (msgpack)', value: (rawBytes / events).toFixed(2) },
      { name: 'read rate, every chunk inflated, hash-checked, decoded (events/s)', value: fmt(events / reads.seconds) },
      { name: 'of which checking each chunk\'s hash (% of the read)', value: (100 * reads.hashSeconds / reads.seconds).toFixed(1) },
      { name: 'seek latency p50 / p99, cold timeline (ms)', value: `${seeks.cold.p50.toFixed(1)} / ${seeks.cold.p99.toFixed(1)}`, goal: 'p99 <= 50', ok: seeks.cold.p99 <= 50 },
      { name: 'seek latency p50 / p99, warm timeline (ms)', value: `${seeks.warm.p50.toFixed(1)} / ${seeks.warm.p99.toFixed(1)}`, goal: 'p99 <= 50', ok: seeks.warm.p99 <= 50 },
      { name: 'verify rate, chain shape from the chunk rows (events/s)', value: chain.mismatch ? 'FAILED' : fmt(events / chainSeconds) },
      { name: 'verify rate, chain + re-execution, 1 thread (events/s)', value: report.ok ? fmt(events / verifySeconds) : `FAILED: ${report.mismatch?.message}` },
      { name: 'verify rate, as `chronovisor verify` runs it, one worker per core (events/s)', value: parallel.ok ? fmt(events / parallelSeconds) : `FAILED: ${parallel.mismatch?.message}` },
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Re-appends the recording's events to a fresh store, timing only the appends. */
function measureAppend(source: string, target: string, runId: number): { rate: number; rawBytes: number } {
  const from = RecordingStore.open(source, { readonly: true });
  const to = RecordingStore.create(target, 'bench');
  const run = to.createRun({
    name: 'append', parentRun: null, forkSeq: null, baseSeq: 0, seed: 'bench', scenario: '', scenarioPath: '',
    config: '{}', formats: RUN_FORMATS, simVersion: 'bench', headHash: GENESIS_HASH, writerPid: process.pid,
  });
  const writer = new RunWriter(to, run, 0, GENESIS_HASH);
  let appended = 0;
  let spent = 0;
  let rawBytes = 0;
  let previous: Uint8Array = GENESIS_HASH;
  for (const row of from.chunkRows(runId)) {
    rawBytes += inflateChunk(row.bytes).length;
    const { events } = from.decodeChunk(row, previous);
    previous = row.hash;
    const t = process.hrtime.bigint();
    writer.append(events);
    spent += seconds(t);
    appended += events.length;
  }
  const t = process.hrtime.bigint();
  writer.flush();
  spent += seconds(t);
  const ok = writer.headHash.equals(from.run(runId).headHash);
  from.close();
  to.close();
  if (!ok) throw new Error('re-appended events hash differently from the recording');
  return { rate: appended / spent, rawBytes };
}

/**
 * Reads every chunk as a reader does (inflate, check its hash against the chain, decode), and
 * times the hash check alone on the same bytes: what checking costs a read command.
 */
function measureChunkReads(store: RecordingStore, runId: number): { seconds: number; hashSeconds: number } {
  let previous: Uint8Array = GENESIS_HASH;
  let seconds = 0;
  let hashSeconds = 0;
  for (const row of store.chunkRows(runId)) {
    let t = process.hrtime.bigint();
    store.decodeChunk(row, previous);
    seconds += Number(process.hrtime.bigint() - t) / 1e9;
    const raw = inflateChunk(row.bytes);
    t = process.hrtime.bigint();
    chunkHash(previous, row.firstSeq, row.count, raw);
    hashSeconds += Number(process.hrtime.bigint() - t) / 1e9;
    previous = row.hash;
  }
  return { seconds, hashSeconds };
}

/** Seeks made before the timed ones (see measureSeeks). */
const WARM_UP_SEEKS = 20;

/** Seeks to random positions: each on a fresh timeline (cold) and all on one (warm). */
export function measureSeeks(store: RecordingStore, runId: number, events: number) {
  const randomPositions = (seed: string, count: number): number[] => {
    const prng = seedPrng(seed);
    return Array.from({ length: count }, () => nextU32(prng) % (events + 1));
  };
  const positions = randomPositions('seek-bench', 200);
  const time = (timeline: () => Timeline, at = positions): number[] => at.map((seq) => {
    const tl = timeline();
    const t = process.hrtime.bigint();
    tl.stateAt(seq);
    return seconds(t) * 1000;
  }).sort((a, b) => a - b);
  const run = store.run(runId);
  // Untimed seeks elsewhere first: the first seeks of a process compile the fold's code (the
  // first few took 40-80 ms against 10-20 ms after), which is the process's start, not a seek's.
  time(() => new Timeline(store, run), randomPositions('seek-bench-warm-up', WARM_UP_SEEKS));
  const shared = new Timeline(store, run);
  const warm = time(() => shared);
  const cold = time(() => new Timeline(store, run));
  return {
    cold: { p50: percentile(cold, 0.5), p99: percentile(cold, 0.99) },
    warm: { p50: percentile(warm, 0.5), p99: percentile(warm, 0.99) },
  };
}

/**
 * Forensics benchmark (issue 13), on recordings of N events (1M and 10M by default; set
 * CHRONOVISOR_BENCH_FORENSICS_EVENTS to a comma list): the bundled network scenario in the
 * vanilla profile (alice's x86 pinger, bob's echo, mallory's attacks through dom0's netback
 * and the switch) with three scripted tenants beside it that keep memory busy until N.
 *
 * - the machine alone, recording it, and building the forensic index (the index is built on
 *   first query, after recording): recording overhead without and with the index;
 * - the index's bytes per event;
 * - p50/p99 of `who-wrote` of 64 bytes at a random seq of a random frame, and of `history`
 *   of a random frame from a random seq (its next 100 accesses, a screen of the TUI), each a
 *   fresh session as one CLI command opens;
 * - p50/p99 of `provenance` of the 62 bytes bob received at each netback copy into his
 *   buffer, with the fewest hops on the chain to an origin (goal: >= 5).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Seq } from '../src/events/schema.ts';
import { CHUNK_EVENTS, RecordingStore, type RunRow } from '../src/events/store.ts';
import { ForensicIndexStore } from '../src/events/forensic-index.ts';
import { Machine } from '../src/core/machine/machine.ts';
import { parseScenario } from '../src/core/machine/scenario.ts';
import { initialState } from '../src/core/machine/state.ts';
import type { MachineConfig } from '../src/core/hypervisor/config.ts';
import { nextStep, recordScenario } from '../src/replay/recorder.ts';
import { IndexBuild } from '../src/replay/forensics/index-build.ts';
import { ForensicSession } from '../src/replay/forensics/session.ts';
import { history, whoWrote } from '../src/replay/forensics/history.ts';
import { provenance, type Provenance } from '../src/replay/forensics/provenance.ts';
import { seedPrng, nextU32 } from '../src/core/machine/prng.ts';
import type { Figure } from './store.ts';
import { envCounts } from './env.ts';

const seconds = (start: bigint): number => Number(process.hrtime.bigint() - start) / 1e9;
const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');
const QUERIES = 50;
const PROVENANCE_QUERIES = 10;

function scenario(events: number): { text: string; config: MachineConfig } {
  const readGuest = (name: string): string => readFileSync(new URL(`../recordings/${name}`, import.meta.url), 'utf8');
  const network = readFileSync(new URL('../recordings/network.yaml', import.meta.url), 'utf8')
    .replace('profile: secure', 'profile: vanilla').replace('memoryMiB: 8', 'memoryMiB: 16');
  // Each iteration of the filler makes about ten events; the recording is cut at `events`.
  const times = Math.ceil(events / 10);
  const filler = `
  - name: t1
    memoryKiB: 256
    guest:
      ops:
        - canary: { gpa: 0x1000 }
        - repeat: { times: ${times}, ops: [ { write: { gpa: 0x2000, text: "balance: 1000000" } }, { read: { gpa: 0x2000, len: 16 } }, yield ] }
  - name: t2
    memoryKiB: 256
    guest:
      ops:
        - repeat: { times: ${times}, ops: [ { hypercall: { op: populate_physmap, gfn: 100, count: 4 } }, { write: { gpa: 0x64000, text: "scratch" } }, { hypercall: { op: decrease_reservation, gfns: [100, 101, 102, 103] } } ] }
  - name: t3
    memoryKiB: 128
    guest:
      ops:
        - repeat: { times: ${times}, ops: [ { read: { gpa: 0x0, len: 64 } }, { hypercall: { op: sched_yield } } ] }
`;
  const text = network.replace('\nnetwork:', `${filler}network:`);
  return { text, config: parseScenario(text, 'forensics-bench.yaml', readGuest) };
}

function percentiles(ms: number[]): { p50: number; p99: number } {
  const sorted = [...ms].sort((a, b) => a - b);
  const at = (p: number): number => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
  return { p50: at(0.5), p99: at(0.99) };
}

const pq = (p: { p50: number; p99: number }): string => `${p.p50.toFixed(1)} / ${p.p99.toFixed(1)}`;

/** p50/p99 figures of a query, cold and warm; the goal applies to the cold p99 (one CLI command). */
function queryFigures(name: string, ms: { cold: number[]; warm: number[] }, goalMs: number | undefined): Figure[] {
  if (ms.cold.length === 0) return [{ name, value: 'no query' }];
  const cold = percentiles(ms.cold);
  return [
    { name: `${name}, cold p50 / p99 (ms)`, value: pq(cold), ...(goalMs !== undefined ? { goal: `p99 <= ${goalMs}`, ok: cold.p99 <= goalMs } : {}) },
    { name: `${name}, warm p50 / p99 (ms)`, value: pq(percentiles(ms.warm)) },
  ];
}

/** The machine alone to `events` events (recording off). */
function runBare(config: MachineConfig, events: number): number {
  const machine = new Machine(initialState(config));
  let n = 0;
  const t = process.hrtime.bigint();
  while (!machine.state.halted && n < events) n += nextStep(machine).length;
  return seconds(t);
}

/**
 * Times `query`: cold, on a fresh session each time (as one CLI command opens one), and warm,
 * all on one session (as the TUI keeps one).
 */
function timeQueries(store: RecordingStore, run: RunRow, count: number, query: (session: ForensicSession, i: number) => void): { cold: number[]; warm: number[] } {
  const time = (session: () => ForensicSession): number[] => Array.from({ length: count }, (_, i) => {
    const t = process.hrtime.bigint();
    query(session(), i);
    return seconds(t) * 1000;
  });
  const cold = time(() => new ForensicSession(store, run));
  const shared = new ForensicSession(store, run);
  return { cold, warm: time(() => shared) };
}

/** Hops on the shortest chain from a root to an origin. */
function shortestChain(p: Provenance): number {
  const depth = (id: number, seen: Set<number>): number => {
    const hop = p.hops[id];
    if (hop.from.length === 0 || seen.has(id)) return 1;
    seen.add(id);
    return 1 + Math.min(...hop.from.map((f) => depth(f, seen)));
  };
  return Math.min(...p.roots.map((r) => depth(r, new Set())));
}

/**
 * p50/p99 of `who-wrote` of 64 bytes at a random seq of a random frame, and of `history` of
 * a random frame from a random seq (its next 100 accesses, a screen of the TUI), cold and warm.
 */
export function frameQueryFigures(store: RecordingStore, run: RunRow, label: string, goalMs: number | undefined): Figure[] {
  const events = run.eventCount;
  // Frames and positions to ask about: the frames a chunk touched, anywhere in the run.
  const prng = seedPrng('forensics-bench');
  const probe = new ForensicSession(store, run);
  const targets = Array.from({ length: QUERIES }, () => {
    const at = 1 + (nextU32(prng) % (events - 1));
    const frames = probe.index.chunkFrames(Math.floor(at / CHUNK_EVENTS) * CHUNK_EVENTS);
    const mfn = frames.length === 0 ? 0 : frames[nextU32(prng) % frames.length].mfn;
    return { at, mfn };
  });
  const whoWroteMs = timeQueries(store, run, QUERIES, (s, i) => void whoWrote(s, { kind: 'memory', ranges: [{ mfn: targets[i].mfn, offset: 0, length: 64 }] }, targets[i].at));
  const historyMs = timeQueries(store, run, QUERIES, (s, i) => {
    for (const _row of history(s, { kind: 'memory', ranges: [{ mfn: targets[i].mfn, offset: 0, length: 4096 }] }, { from: targets[i].at, to: events, kinds: [], limit: 100 })) { /* drain */ }
  });
  return [
    ...queryFigures(`${label}: who-wrote 64 bytes`, whoWroteMs, goalMs),
    ...queryFigures(`${label}: history, next 100 accesses`, historyMs, goalMs),
  ];
}

/** Bytes to ask the provenance of, at a position. */
export interface ProvenanceTarget { at: Seq; mfn: number; offset: number; length: number }

/** p50/p99 of `provenance` of each target's bytes, and the fewest hops to an origin. */
export function provenanceFigures(store: RecordingStore, run: RunRow, writes: ProvenanceTarget[], label: string, what: string, goalMs: number | undefined): Figure[] {
  let fewestHops = Infinity;
  const ms = timeQueries(store, run, writes.length, (s, i) => {
    const { at, mfn, offset, length } = writes[i];
    fewestHops = Math.min(fewestHops, shortestChain(provenance(s, { kind: 'memory', ranges: [{ mfn, offset, length }] }, at)));
  });
  return [
    ...queryFigures(`${label}: ${what} (${writes.length} queries)`, ms, goalMs),
    writes.length === 0
      ? { name: `${label}: provenance, fewest hops to an origin`, value: `no ${what} recorded yet` }
      : { name: `${label}: provenance, fewest hops to an origin`, value: String(fewestHops), goal: '>= 5', ok: fewestHops >= 5 },
  ];
}

async function benchOne(dir: string, eventsWanted: number): Promise<Figure[]> {
  const { text, config } = scenario(eventsWanted);
  const bareSeconds = runBare(config, eventsWanted);
  const path = join(dir, `forensics-${eventsWanted}.db`);
  const store = RecordingStore.create(path, 'bench');
  try {
    let t = process.hrtime.bigint();
    const recorded = recordScenario(store, config, {
      name: 'forensics', scenarioText: text, scenarioPath: 'forensics-bench.yaml', config: '{}', simVersion: 'bench', writerPid: process.pid,
    }, { maxEvents: eventsWanted });
    const recordSeconds = seconds(t);
    const run = store.run(recorded.run);
    t = process.hrtime.bigint();
    const build = new IndexBuild(store, run);
    build.work();
    build.commit();
    const indexSeconds = seconds(t);
    const indexBytes = new ForensicIndexStore(store.db).status(run.id)?.bytes ?? 0;
    const events = run.eventCount;

    // Bob's receive buffers, written by netback's grant copies.
    const receives: ProvenanceTarget[] = [];
    for (const [seq, e] of new ForensicSession(store, run).timeline.iterate()) {
      if (e.kind === 'mem.write' && e.dom === 2 && e.stored.length === 62) receives.push({ at: seq + 1, mfn: e.mfn, offset: e.offset, length: 62 });
      if (receives.length >= PROVENANCE_QUERIES) break;
    }
    const m = `${eventsWanted / 1e6}M`;
    const tenM = eventsWanted >= 10_000_000;
    const overheadIndexed = (recordSeconds + indexSeconds) / bareSeconds;
    return [
      { name: `${m}: events recorded`, value: fmt(events) },
      { name: `${m}: machine alone / recording / index build (s)`, value: `${bareSeconds.toFixed(1)} / ${recordSeconds.toFixed(1)} / ${indexSeconds.toFixed(1)}` },
      { name: `${m}: recording overhead without the index (x)`, value: (recordSeconds / bareSeconds).toFixed(2) },
      { name: `${m}: recording overhead with the index (x)`, value: overheadIndexed.toFixed(2), goal: '<= 1.25', ok: overheadIndexed <= 1.25 },
      { name: `${m}: index bytes per event`, value: (indexBytes / events).toFixed(2) },
      ...frameQueryFigures(store, run, m, tenM ? 100 : undefined),
      ...provenanceFigures(store, run, receives, m, 'provenance of 62 bytes', tenM ? 2000 : undefined),
    ];
  } finally {
    store.close();
  }
}

/** The recording sizes to measure: CHRONOVISOR_BENCH_FORENSICS_EVENTS, a comma list of event counts. */
export function forensicsSizes(env: NodeJS.ProcessEnv): number[] {
  return envCounts(env, 'CHRONOVISOR_BENCH_FORENSICS_EVENTS', [1_000_000, 10_000_000], 1000, '1000000,10000000');
}

export async function benchForensics(): Promise<Figure[]> {
  const sizes = forensicsSizes(process.env);
  const dir = mkdtempSync(join(tmpdir(), 'chronovisor-bench-forensics-'));
  try {
    const figures: Figure[] = [];
    for (const size of sizes) figures.push(...await benchOne(dir, size));
    return figures;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * diff: where two runs part ways, and how their states differ.
 *
 * Chunks carry a hash chain, so equal chunk hashes at the same position mean equal
 * histories up to there: the search skips shared prefixes (a fork's, for instance) without
 * decoding them and compares events only inside the first chunk that differs.
 */
import type { Event, Seq } from '../events/schema.ts';
import { CHUNK_EVENTS, type RecordingStore, type RunRow } from '../events/store.ts';
import type { MachineState } from '../core/machine/state.ts';
import { Timeline } from './timeline.ts';
import { createHash } from 'node:crypto';

export interface StateDifference {
  area: 'domains' | 'ownership' | 'memory' | 'violations' | 'machine';
  what: string;
  a: string;
  b: string;
}

export interface RunDiff {
  a: { run: number; name: string; events: Seq };
  b: { run: number; name: string; events: Seq };
  /** The first seq where the runs differ, or undefined when they are identical. */
  divergedAt: Seq | undefined;
  /** Events from the divergence on, a few from each side. */
  aEvents: [Seq, Event][];
  bEvents: [Seq, Event][];
  /** Differences between the final states. */
  state: StateDifference[];
}

/** The first seq where the two timelines differ (undefined: identical). */
export function firstDivergence(a: Timeline, b: Timeline): Seq | undefined {
  const codec = a.store.codec;
  const shorter = Math.min(a.length, b.length);
  let seq = 0;
  // Skip whole chunks whose chained hashes agree.
  while (seq + CHUNK_EVENTS <= shorter) {
    const ha = chunkHashAt(a.store, a.run, seq);
    const hb = chunkHashAt(b.store, b.run, seq);
    if (ha === undefined || hb === undefined || !ha.equals(hb)) break;
    seq += CHUNK_EVENTS;
  }
  for (; seq < shorter; seq++) {
    if (!codec.encodeEvent(a.event(seq)).equals(codec.encodeEvent(b.event(seq)))) return seq;
  }
  return a.length === b.length ? undefined : shorter;
}

function chunkHashAt(store: RecordingStore, run: RunRow, seq: Seq): Buffer | undefined {
  const row = store.chunkRowAt(store.ownerOf(run, seq).id, seq);
  return row !== undefined && row.firstSeq === seq && row.count === CHUNK_EVENTS ? row.hash : undefined;
}

export function diffRuns(store: RecordingStore, runA: RunRow, runB: RunRow, context = 8): RunDiff {
  const a = new Timeline(store, runA);
  const b = new Timeline(store, runB);
  const divergedAt = firstDivergence(a, b);
  const from = divergedAt ?? 0;
  return {
    a: { run: runA.id, name: runA.name, events: a.length },
    b: { run: runB.id, name: runB.name, events: b.length },
    divergedAt,
    aEvents: divergedAt === undefined ? [] : [...a.iterate(from, from + context)],
    bEvents: divergedAt === undefined ? [] : [...b.iterate(from, from + context)],
    state: diffStates(a.stateAt(a.length), b.stateAt(b.length)),
  };
}

const pageHash = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex').slice(0, 16);

/** Differences between two states, area by area, for people to read. */
export function diffStates(a: MachineState, b: MachineState): StateDifference[] {
  const out: StateDifference[] = [];
  const add = (area: StateDifference['area'], what: string, x: unknown, y: unknown): void => {
    if (String(x) !== String(y)) out.push({ area, what, a: String(x), b: String(y) });
  };
  add('machine', 'profile', a.profile, b.profile);
  add('machine', 'tick', a.tick, b.tick);
  add('machine', 'halted', a.halted, b.halted);
  const ids = new Set([...a.domains.keys(), ...b.domains.keys()]);
  for (const id of [...ids].sort((x, y) => x - y)) {
    const da = a.domains.get(id);
    const db = b.domains.get(id);
    const describe = (d: typeof da): string =>
      d === undefined ? 'absent' : `${d.name} ${d.status}, ${d.p2m.size} pages, pc ${d.vcpus.map((v) => v.pc).join('/') || '-'}`;
    add('domains', `domain ${id}`, describe(da), describe(db));
  }
  const frames = new Set([...a.ppt.keys(), ...b.ppt.keys()]);
  for (const mfn of [...frames].sort((x, y) => x - y)) {
    add('ownership', `frame ${mfn} owner`, a.ppt.get(mfn)?.owner ?? 'free', b.ppt.get(mfn)?.owner ?? 'free');
  }
  const pages = new Set([...a.memory.keys(), ...b.memory.keys()]);
  for (const mfn of [...pages].sort((x, y) => x - y)) {
    const pa = a.memory.get(mfn);
    const pb = b.memory.get(mfn);
    add('memory', `frame ${mfn} content`, pa ? pageHash(pa.bytes) : 'zero', pb ? pageHash(pb.bytes) : 'zero');
  }
  add('violations', 'violations', a.violations, b.violations);
  return out;
}

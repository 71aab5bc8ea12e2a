/**
 * diff: where two runs part ways, and how their states differ.
 *
 * Chunks carry a hash chain, so equal chunk hashes at the same position mean equal
 * histories up to there: the search skips shared prefixes (a fork's, for instance) without
 * decoding them and compares events only inside the first chunk that differs. From there the
 * runs are aligned by tick and actor (align.ts), which finds the regions where their
 * behaviour differs even when the same steps sit at different seqs (two profiles).
 */
import { createHash } from 'node:crypto';
import type { Event, Seq } from '../events/schema.ts';
import { CHUNK_EVENTS, type RecordingStore, type RunRow } from '../events/store.ts';
import { ownerPlaintext } from '../core/hypervisor/memory/smm.ts';
import type { MachineState } from '../core/machine/state.ts';
import { align, type Region } from './align.ts';
import { Timeline } from './timeline.ts';
import { PAGE_SIZE } from '../core/hypervisor/config.ts';

export interface StateDifference {
  area: 'domains' | 'ownership' | 'memory' | 'violations' | 'machine';
  what: string;
  a: string;
  b: string;
}

export interface RegionDiff extends Region {
  /** How the states differ after the region that they did not before it (what it changed). */
  state: StateDifference[];
}

export interface RunDiff {
  a: { run: number; name: string; events: Seq };
  b: { run: number; name: string; events: Seq };
  /** The first seq where the runs' events differ, or undefined when they are identical. */
  divergedAt: Seq | undefined;
  /** Events from the divergence on, a few from each side. */
  aEvents: [Seq, Event][];
  bEvents: [Seq, Event][];
  /**
   * The runs aligned by tick and actor from the last step boundary before they diverge (see
   * align.ts): steps alike, and the regions where behaviour differs, first first.
   */
  alignedFrom: Seq;
  alike: number;
  regionCount: number;
  regions: RegionDiff[];
  /** Differences between the final states. */
  state: StateDifference[];
}

/**
 * The first seq where the two timelines differ (undefined: identical). Each chunk's hash is
 * chained to every chunk before it, so two runs have equal hashes at a chunk exactly while
 * their histories are equal up to its end: a binary search over chunk hashes finds the first
 * chunk that differs in O(log chunks) lookups, whatever the length, and only that chunk's
 * events are compared.
 */
export function firstDivergence(a: Timeline, b: Timeline): Seq | undefined {
  const codec = a.store.codec;
  const shorter = Math.min(a.length, b.length);
  // Chunks [0, low) are known equal; the first differing chunk is below high.
  let low = 0;
  let high = Math.floor(shorter / CHUNK_EVENTS);
  while (low < high) {
    const middle = Math.floor((low + high) / 2);
    const ha = a.chunkHash(middle * CHUNK_EVENTS);
    const hb = b.chunkHash(middle * CHUNK_EVENTS);
    if (ha !== undefined && hb !== undefined && ha.equals(hb)) low = middle + 1;
    else high = middle;
  }
  for (let seq = low * CHUNK_EVENTS; seq < shorter; seq++) {
    if (!codec.encodeEvent(a.event(seq)).equals(codec.encodeEvent(b.event(seq)))) return seq;
  }
  return a.length === b.length ? undefined : shorter;
}

const key = (d: StateDifference): string => `${d.area}\u0000${d.what}`;

/** The differences in `after` that `before` did not have, or had with other values. */
function introduced(before: StateDifference[], after: StateDifference[]): StateDifference[] {
  const known = new Map(before.map((d) => [key(d), d]));
  return after.filter((d) => {
    const old = known.get(key(d));
    return old === undefined || old.a !== d.a || old.b !== d.b;
  });
}

/**
 * Where two runs part and how. `regions` regions are described in full (with the state each
 * changed); all of them are counted.
 */
export function diffRuns(store: RecordingStore, runA: RunRow, runB: RunRow, context = 8, regions = 10): RunDiff {
  const a = new Timeline(store, runA);
  const b = new Timeline(store, runB);
  const divergedAt = firstDivergence(a, b);
  const from = divergedAt ?? 0;
  // The shared prefix needs no aligning: start at the step it diverges in.
  const alignedFrom = divergedAt === undefined ? Math.min(a.length, b.length) : a.stepBoundaryAtOrBefore(divergedAt);
  const alignment = align(a, b, alignedFrom, regions);
  const statesAt = (ra: Seq, rb: Seq): StateDifference[] => diffStates(a.stateAt(ra), b.stateAt(rb));
  return {
    a: { run: runA.id, name: runA.name, events: a.length },
    b: { run: runB.id, name: runB.name, events: b.length },
    divergedAt,
    aEvents: divergedAt === undefined ? [] : [...a.iterate(from, from + context)],
    bEvents: divergedAt === undefined ? [] : [...b.iterate(from, from + context)],
    alignedFrom,
    alike: alignment.alike,
    regionCount: alignment.regionCount,
    regions: alignment.regions.map((r) => ({ ...r, state: introduced(statesAt(r.a[0], r.b[0]), statesAt(r.a[1], r.b[1])) })),
    state: statesAt(a.length, b.length),
  };
}

const plaintextHash = (state: MachineState, mfn: number): string => createHash('sha256').update(ownerPlaintext(state, mfn, 0, PAGE_SIZE)).digest('hex').slice(0, 16);

/**
 * Differences between two states, area by area, for people to read. A frame differs when
 * both its stored bytes and its plaintext (as its owner reads it) do: two profiles of one
 * scenario then differ only where the data does, not everywhere SMM encrypts, and a fork
 * that switched profile does not differ in pages it never wrote.
 */
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
    // The same bytes stored are the same page, whatever a profile would make of them.
    if (pa !== undefined && pb !== undefined && Buffer.compare(pa.bytes, pb.bytes) === 0) continue;
    add('memory', `frame ${mfn} plaintext`, pa ? plaintextHash(a, mfn) : 'zero', pb ? plaintextHash(b, mfn) : 'zero');
  }
  add('violations', 'violations', a.violations, b.violations);
  return out;
}

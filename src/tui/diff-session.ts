/**
 * Two runs side by side. They are aligned seq for seq from the first divergence (found by
 * replay's firstDivergence, which skips a shared prefix by chunk hashes); the cursor moves
 * through both at once, differing events are marked, and the states at the cursor are
 * compared with replay's diffStates. A "divergence" after the first is the start of a
 * stretch of differing events that follows equal ones; finding the next one is a sliced job.
 */
import type { Event, Seq } from '../events/schema.ts';
import { diffStates, firstDivergence, type StateDifference } from '../replay/diff.ts';
import type { Timeline } from '../replay/timeline.ts';

export interface DiffRow {
  seq: Seq;
  a: Event | undefined;
  b: Event | undefined;
  same: boolean;
}

export class DiffSession {
  readonly divergedAt: Seq | undefined;
  cursor: Seq;
  /** First state difference shown. */
  scroll = 0;
  private differencesAt: Seq = -1;
  private differences: StateDifference[] = [];

  constructor(readonly a: Timeline, readonly b: Timeline) {
    this.divergedAt = firstDivergence(a, b);
    this.cursor = this.divergedAt ?? 0;
  }

  /** The last position: the end of the longer run. */
  get length(): Seq {
    return Math.max(this.a.length, this.b.length);
  }

  private eventOf(timeline: Timeline, seq: Seq): Event | undefined {
    return seq < timeline.length ? timeline.event(seq) : undefined;
  }

  /** Whether both runs hold the same event at `seq` (byte for byte, as stored). */
  same(seq: Seq): boolean {
    if (this.divergedAt === undefined || seq < this.divergedAt) return true;
    const a = this.eventOf(this.a, seq);
    const b = this.eventOf(this.b, seq);
    if (a === undefined || b === undefined) return a === b;
    const codec = this.a.store.codec;
    return codec.encodeEvent(a).equals(codec.encodeEvent(b));
  }

  rows(from: Seq, count: number): DiffRow[] {
    const rows: DiffRow[] = [];
    for (let seq = Math.max(0, from); seq < Math.min(this.length, from + count); seq++) {
      rows.push({ seq, a: this.eventOf(this.a, seq), b: this.eventOf(this.b, seq), same: this.same(seq) });
    }
    return rows;
  }

  /** How the two states differ at the cursor (each run's state clamped to its end). */
  stateDifferences(): StateDifference[] {
    if (this.differencesAt !== this.cursor) {
      const a = this.a.stateAt(Math.min(this.cursor, this.a.length));
      const b = this.b.stateAt(Math.min(this.cursor, this.b.length));
      this.differences = diffStates(a, b);
      this.differencesAt = this.cursor;
    }
    return this.differences;
  }

  /** Whether a differing stretch starts at `seq`. */
  startsDivergence(seq: Seq): boolean {
    return !this.same(seq) && (seq === 0 || this.same(seq - 1));
  }
}

/** The search for the next (or previous) divergence from the cursor, in slices. */
export class DivergenceJob {
  cursor: Seq;
  found: Seq | undefined;

  constructor(private readonly session: DiffSession, readonly direction: 1 | -1) {
    this.cursor = session.cursor + direction;
  }

  step(deadline: number, now: () => number): boolean {
    const { session } = this;
    // Nothing differs before the first divergence: a backward search ends there.
    const floor = session.divergedAt ?? session.length;
    let tested = 0;
    while (this.direction > 0 ? this.cursor < session.length : this.cursor >= floor) {
      if (session.startsDivergence(this.cursor)) {
        this.found = this.cursor;
        return true;
      }
      this.cursor += this.direction;
      if (++tested % 256 === 0 && now() >= deadline) return false;
    }
    return true;
  }
}

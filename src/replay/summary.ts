/**
 * What happened in a run, at a glance: events by kind, violations by invariant with the
 * first seq of each, and how far the run got.
 */
import type { Event, Seq } from '../events/schema.ts';

export interface RunSummary {
  events: number;
  ticks: number;
  byKind: Record<string, number>;
  violations: Record<string, { count: number; firstSeq: Seq; detail: string }>;
  halted: boolean;
}

export class SummaryBuilder {
  private readonly summary: RunSummary = { events: 0, ticks: 0, byKind: {}, violations: {}, halted: false };
  /** Counts by kind, in the order kinds first appear (a Map: this runs per event). */
  private readonly counts = new Map<string, number>();
  /** The current run of events of one kind, counted into `counts` when another kind comes. */
  private runKind: string | null = null;
  private runLength = 0;

  add(seq: Seq, event: Event): void {
    const s = this.summary;
    s.events = seq + 1;
    const kind = event.kind;
    if (kind === this.runKind) {
      this.runLength++;
    } else {
      this.countRun();
      this.runKind = kind;
      this.runLength = 1;
    }
    if (event.kind === 'violation') {
      const entry = s.violations[event.invariant];
      if (entry === undefined) s.violations[event.invariant] = { count: 1, firstSeq: seq, detail: event.detail };
      else entry.count += 1;
    }
    if (event.kind === 'machine.halt') s.halted = true;
  }

  private countRun(): void {
    if (this.runKind !== null) this.counts.set(this.runKind, (this.counts.get(this.runKind) ?? 0) + this.runLength);
    this.runKind = null;
    this.runLength = 0;
  }

  finish(ticks: number): RunSummary {
    this.countRun();
    this.summary.ticks = ticks;
    this.summary.byKind = Object.fromEntries(this.counts);
    return this.summary;
  }
}

export function violationCount(summary: RunSummary): number {
  return Object.values(summary.violations).reduce((sum, v) => sum + v.count, 0);
}

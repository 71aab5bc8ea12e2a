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

  add(seq: Seq, event: Event): void {
    const s = this.summary;
    s.events = seq + 1;
    s.byKind[event.kind] = (s.byKind[event.kind] ?? 0) + 1;
    if (event.kind === 'violation') {
      const entry = s.violations[event.invariant];
      if (entry === undefined) s.violations[event.invariant] = { count: 1, firstSeq: seq, detail: event.detail };
      else entry.count += 1;
    }
    if (event.kind === 'machine.halt') s.halted = true;
  }

  finish(ticks: number): RunSummary {
    this.summary.ticks = ticks;
    return this.summary;
  }
}

export function violationCount(summary: RunSummary): number {
  return Object.values(summary.violations).reduce((sum, v) => sum + v.count, 0);
}

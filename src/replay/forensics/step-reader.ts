/**
 * The steps of a run by seq, for the queries that explain individual accesses: the step
 * that holds a seq, walked (StepWalker) from the nearest checkpoint, and from the last step
 * asked when that is closer. Asking in ascending order walks each stretch once; what costs
 * is a jump to a new checkpoint (a fold of at most CHECKPOINT_EVERY events' worth).
 */
import { assert } from '../../events/errors.ts';
import type { Event, Seq } from '../../events/schema.ts';
import type { Timeline } from '../timeline.ts';
import { StepWalker, type StepRecord } from './steps.ts';

/** Steps remembered once walked (a query revisits the few steps its hops pass through). */
const RECORDS_KEPT = 4096;

export class StepReader {
  private walker: StepWalker | undefined;
  private events: Generator<[Seq, Event]> | undefined;
  /** The next seq the walker is fed. */
  private position: Seq = -1;
  private readonly records = new Map<Seq, StepRecord>();
  /** Step start by any seq of the steps walked (bounded like the records). */
  private readonly starts: Seq[] = [];
  /** Checkpoint loads, for the benchmark and tests. */
  jumps = 0;

  constructor(readonly timeline: Timeline, private readonly keepBytes = true) {}

  /** The step that holds event `seq`. */
  stepAt(seq: Seq): StepRecord {
    assert(seq >= 0 && seq < this.timeline.length, () => `seq ${seq} outside the run (0..${this.timeline.length - 1})`);
    const known = this.knownStep(seq);
    if (known !== undefined) return known;
    const checkpoint = this.timeline.checkpointAtOrBefore(seq).seq;
    if (this.walker === undefined || seq < this.position || checkpoint > this.position) this.load(seq);
    for (;;) {
      const found = this.knownStep(seq);
      if (found !== undefined) return found;
      if (!this.feedOne()) {
        const last = this.knownStep(seq);
        assert(last !== undefined, () => `the walk ended before the step of seq ${seq}`);
        return last;
      }
    }
  }

  private knownStep(seq: Seq): StepRecord | undefined {
    // The records are few and kept in seq order of their starts.
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.starts[mid] <= seq) lo = mid + 1;
      else hi = mid - 1;
    }
    if (hi < 0) return undefined;
    const record = this.records.get(this.starts[hi]);
    return record !== undefined && seq < record.seq + record.events.length ? record : undefined;
  }

  private load(seq: Seq): void {
    this.jumps++;
    const start = this.timeline.loadCheckpoint(seq);
    this.walker = new StepWalker(start.state, (record) => this.remember(record), this.keepBytes);
    this.events = this.timeline.iterate(start.seq);
    this.position = start.seq;
  }

  /** Feeds the next event; false when there is none left (the last step is then handed over). */
  private feedOne(): boolean {
    const next = this.events!.next();
    if (next.done) {
      this.walker!.finish();
      return false;
    }
    const [seq, event] = next.value;
    this.walker!.feed(seq, event);
    this.position = seq + 1;
    return true;
  }

  private remember(record: StepRecord): void {
    if (this.records.has(record.seq)) return;
    this.records.set(record.seq, record);
    const at = this.starts.findIndex((s) => s > record.seq);
    if (at < 0) this.starts.push(record.seq);
    else this.starts.splice(at, 0, record.seq);
    if (this.starts.length > RECORDS_KEPT) {
      // Forget the step furthest from this one.
      const drop = Math.abs(this.starts[0] - record.seq) > Math.abs(this.starts.at(-1)! - record.seq) ? this.starts.shift()! : this.starts.pop()!;
      this.records.delete(drop);
    }
  }
}

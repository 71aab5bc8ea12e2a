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

/**
 * Steps remembered once walked: a checkpoint's stretch of a CPU-bound run (up to 32768
 * instructions), so that a backward slice within it walks it once.
 */
const RECORDS_KEPT = 40_000;

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
  private checkpoints: Seq[] | undefined;

  constructor(readonly timeline: Timeline, private readonly keepBytes = true) {}

  /** The step that holds event `seq`. */
  stepAt(seq: Seq): StepRecord {
    assert(seq >= 0 && seq < this.timeline.length, () => `seq ${seq} outside the run (0..${this.timeline.length - 1})`);
    const known = this.knownStep(seq);
    if (known !== undefined) return known;
    // The walker can reach `seq` by going on, unless it is past it (the step in progress began
    // after it) or a checkpoint nearer than where it is.
    const reachable = this.walker !== undefined && seq >= Math.min(this.position, this.walker.stepInProgress);
    if (!reachable || this.checkpointBefore(seq) > this.position) this.load(seq);
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

  /** The seq of the checkpoint a load for `seq` would start from (their seqs read once: this runs per step). */
  private checkpointBefore(seq: Seq): Seq {
    this.checkpoints ??= this.timeline.checkpointSeqs();
    let best = 0;
    for (let lo = 0, hi = this.checkpoints.length - 1; lo <= hi;) {
      const mid = (lo + hi) >> 1;
      if (this.checkpoints[mid] <= seq) { best = this.checkpoints[mid]; lo = mid + 1; } else hi = mid - 1;
    }
    return best;
  }

  /** The index of the first start above `seq`. */
  private insertionPoint(seq: Seq): number {
    let lo = 0;
    let hi = this.starts.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.starts[mid] <= seq) lo = mid + 1;
      else hi = mid;
    }
    return lo;
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
    // Walks go forwards: a new step is almost always the latest.
    if (this.starts.length === 0 || this.starts[this.starts.length - 1] < record.seq) this.starts.push(record.seq);
    else this.starts.splice(this.insertionPoint(record.seq), 0, record.seq);
    if (this.starts.length > RECORDS_KEPT) {
      // Forget the step furthest from this one.
      const drop = Math.abs(this.starts[0] - record.seq) > Math.abs(this.starts.at(-1)! - record.seq) ? this.starts.shift()! : this.starts.pop()!;
      this.records.delete(drop);
    }
  }
}

/**
 * The steps of a run by seq, for the queries that explain individual accesses: the step
 * that holds a seq, walked (StepWalker) from the nearest checkpoint, and from the last step
 * asked when that is closer. Asking in ascending order walks each stretch once; what costs
 * is a jump to a new checkpoint (a fold of at most CHECKPOINT_EVERY events' worth).
 */
import { assert } from '../../events/errors.ts';
import { STEP_OPENERS, type Event, type Seq } from '../../events/schema.ts';
import type { Timeline } from '../timeline.ts';
import { evolve } from '../../core/machine/evolve.ts';
import type { MachineState } from '../../core/machine/state.ts';
import { StepWalker, type StepRecord } from './steps.ts';

/**
 * Steps remembered once walked: a checkpoint's stretch of a CPU-bound run (up to 32768
 * instructions), so that a backward slice within it walks it once.
 */
const RECORDS_KEPT = 40_000;
/** Steps walked alone (stepAlone), kept for a query that describes the same access twice. */
const ALONE_KEPT = 1024;

/**
 * The steps remembered of one checkpoint's stretch. A walk from the checkpoint goes
 * forwards, so its starts are appended in order: nothing is inserted in the middle, and a
 * stretch is forgotten whole.
 */
interface Stretch {
  checkpoint: Seq;
  starts: Seq[];
  records: Map<Seq, StepRecord>;
}

export class StepReader {
  private walker: StepWalker | undefined;
  private events: Generator<[Seq, Event]> | undefined;
  /** The next seq the walker is fed. */
  private position: Seq = -1;
  /** The stretches remembered, by checkpoint; the one the walker fills is `current`. */
  private readonly stretches = new Map<Seq, Stretch>();
  private current: Stretch | undefined;
  private kept = 0;
  /** A plain fold for stepAlone: the state before event `position`. */
  private skim: { state: MachineState; position: Seq } | undefined;
  private readonly alone = new Map<Seq, StepRecord>();
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

  /**
   * The step that holds event `seq` when no other step near it is wanted (describing one
   * access): the state is folded to the step's start without re-executing the steps before
   * it with their accesses, about three times cheaper than a walk, but nothing before it is
   * remembered. Asking in ascending order folds each stretch once.
   */
  stepAlone(seq: Seq): StepRecord {
    assert(seq >= 0 && seq < this.timeline.length, () => `seq ${seq} outside the run (0..${this.timeline.length - 1})`);
    const known = this.knownStep(seq) ?? this.aloneStep(seq);
    if (known !== undefined) return known;
    let start = seq;
    while (start > 0 && !STEP_OPENERS.has(this.timeline.event(start).kind)) start--;
    if (this.skim === undefined || this.skim.position > start || this.checkpointBefore(start) > this.skim.position) {
      this.jumps++;
      const loaded = this.timeline.loadCheckpoint(start, { lazyPages: true });
      this.skim = { state: loaded.state, position: loaded.seq };
    }
    const skim = this.skim;
    // The skim state is this reader's alone (loaded here): its own page copies are written in place.
    for (const [, event] of this.timeline.iterate(skim.position, start)) evolve(skim.state, event, true);
    let record: StepRecord | undefined;
    const walker = new StepWalker(skim.state, (r) => { record = r; }, this.keepBytes);
    let next = start;
    for (const [s, event] of this.timeline.iterate(start)) {
      if (s > start && STEP_OPENERS.has(event.kind)) break;
      walker.feed(s, event);
      next = s + 1;
    }
    walker.finish();
    skim.position = next;
    this.alone.set(record!.seq, record!);
    if (this.alone.size > ALONE_KEPT) this.alone.delete(this.alone.keys().next().value as Seq);
    return record!;
  }

  private aloneStep(seq: Seq): StepRecord | undefined {
    for (const record of this.alone.values()) if (seq >= record.seq && seq < record.seq + record.events.length) return record;
    return undefined;
  }

  private knownStep(seq: Seq): StepRecord | undefined {
    // A step of one stretch may run past the next checkpoint's seq only if no checkpoint
    // falls inside a step, which the recorder guarantees (it checkpoints between steps).
    const stretch = this.stretches.get(this.checkpointBefore(seq));
    if (stretch === undefined) return undefined;
    const starts = stretch.starts;
    let lo = 0;
    let hi = starts.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (starts[mid] <= seq) lo = mid + 1;
      else hi = mid - 1;
    }
    if (hi < 0) return undefined;
    const record = stretch.records.get(starts[hi]);
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

  private load(seq: Seq): void {
    this.jumps++;
    const start = this.timeline.loadCheckpoint(seq, { lazyPages: true });
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
    // A walk goes on past the next checkpoint when its target lies beyond: the steps there
    // belong to that checkpoint's stretch.
    const checkpoint = this.checkpointBefore(record.seq);
    if (this.current?.checkpoint !== checkpoint) {
      this.current = this.stretches.get(checkpoint) ?? { checkpoint, starts: [], records: new Map() };
      this.stretches.set(checkpoint, this.current);
    }
    const stretch = this.current;
    if (stretch.records.has(record.seq)) return;
    assert(stretch.starts.length === 0 || stretch.starts.at(-1)! < record.seq, () => `step ${record.seq} walked out of order`);
    stretch.records.set(record.seq, record);
    stretch.starts.push(record.seq);
    if (++this.kept > RECORDS_KEPT) this.forgetFurthest(stretch);
  }

  /** Forgets the stretch furthest from `current` (never the one being walked). */
  private forgetFurthest(current: Stretch): void {
    let furthest: Stretch | undefined;
    for (const s of this.stretches.values()) {
      if (s !== current && (furthest === undefined || Math.abs(s.checkpoint - current.checkpoint) > Math.abs(furthest.checkpoint - current.checkpoint))) furthest = s;
    }
    if (furthest === undefined) return;
    this.stretches.delete(furthest.checkpoint);
    this.kept -= furthest.starts.length;
  }
}

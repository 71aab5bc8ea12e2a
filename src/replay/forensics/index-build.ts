/**
 * Builds the forensic index of a run (src/events/forensic-index.ts holds the tables): one
 * walk over the run's own events, step by step, re-executing every x86 step to see its
 * fetches, loads and page walks, and writing per chunk the exact accesses to each frame and
 * the registers each vCPU wrote. Memory stays flat: a chunk's rows are written when the walk
 * has passed it, and the only other thing held is the machine state.
 *
 * A build is one transaction (a failed or cancelled build leaves the recording as it was)
 * and can be run in slices (the TUI's), since nothing in src/replay may read a clock: the
 * caller says when a slice's time is up.
 */
import { assert } from '../../events/errors.ts';
import type { Event, Seq } from '../../events/schema.ts';
import { CHUNK_EVENTS, type RecordingStore, type RunRow } from '../../events/store.ts';
import { FORENSIC_INDEX_VERSION, ForensicIndexStore, encodeAccesses, lineMask, type FrameAccess } from '../../events/forensic-index.ts';
import { Timeline } from '../timeline.ts';
import { PAGE_SIZE } from '../../core/hypervisor/config.ts';
import { StepWalker, WRITE_KINDS, type StepRecord } from './steps.ts';
import { deltaDefs, stepDefs, writtenSlots } from './x86-flows.ts';

/** The runs whose own chunks a query on `run` reads: the run and its ancestors (a fork's prefix is its parent's). */
export function lineageOf(store: RecordingStore, run: RunRow): RunRow[] {
  const rows = [run];
  while (rows.at(-1)!.parentRun !== null) rows.push(store.run(rows.at(-1)!.parentRun!));
  return rows;
}

/** True when `run`'s index is missing, of another version, or behind the events recorded. */
export function indexStale(index: ForensicIndexStore | undefined, run: RunRow): boolean {
  const status = index?.status(run.id);
  return status === undefined || status.version !== FORENSIC_INDEX_VERSION || status.indexedTo < run.eventCount;
}

const chunkOf = (seq: Seq): Seq => Math.floor(seq / CHUNK_EVENTS) * CHUNK_EVENTS;

/** Rows of the chunks being walked, written once the walk has passed them. */
class ChunkRows {
  private readonly frames = new Map<Seq, Map<number, FrameAccess[]>>();
  private readonly registers = new Map<Seq, Map<string, number>>();
  /** Per frame, the bytes written so far (bounded by the machine's frames, not the run's length). */
  private readonly written = new Map<number, Uint8Array>();
  bytes = 0;

  constructor(private readonly index: ForensicIndexStore, private readonly run: number, private readonly from: Seq) {}

  add(step: StepRecord): void {
    for (const a of step.accesses) {
      if (a.seq < this.from) continue;
      const chunk = chunkOf(a.seq);
      let byFrame = this.frames.get(chunk);
      if (byFrame === undefined) this.frames.set(chunk, (byFrame = new Map()));
      const list = byFrame.get(a.mfn);
      const row = { seq: a.seq, kind: a.kind, offset: a.offset, length: a.length, dataOffset: a.dataOffset, dataLength: a.dataLength };
      if (list === undefined) byFrame.set(a.mfn, [row]);
      else list.push(row);
    }
    if (step.seq >= this.from) this.addRegisters(step);
  }

  /** Registers the step wrote: the instruction's destinations (silent writes too), and what the hypervisor or a delivery set. */
  private addRegisters(step: StepRecord): void {
    const opener = step.events[0];
    const chunk = chunkOf(step.seq);
    const note = (dom: number, vcpu: number, mask: number): void => {
      if (mask === 0) return;
      let byVcpu = this.registers.get(chunk);
      if (byVcpu === undefined) this.registers.set(chunk, (byVcpu = new Map()));
      const key = `${dom}.${vcpu}`;
      byVcpu.set(key, (byVcpu.get(key) ?? 0) | mask);
    };
    if (step.replay !== undefined) note(step.replay.dom, step.replay.vcpu, writtenSlots(stepDefs(step.replay), step.replay.dom, step.replay.vcpu));
    for (const event of step.events) {
      if (event === opener && event.kind === 'cpu.step') continue;
      if (event.kind === 'vmcs.write' || event.kind === 'vm.entry' || event.kind === 'exception' || event.kind === 'vcpu.halt') {
        note(event.dom, event.vcpu, writtenSlots(deltaDefs(event.dom, event.vcpu, event.delta, 'hypervisor'), event.dom, event.vcpu));
      }
    }
  }

  /** Writes the chunks that end at or before `seq`. */
  flushBefore(seq: Seq): void {
    for (const chunk of [...this.frames.keys(), ...this.registers.keys()].sort((a, b) => a - b)) {
      if (chunk + CHUNK_EVENTS > seq) continue;
      this.write(chunk);
    }
  }

  flushAll(): void {
    for (const chunk of new Set([...this.frames.keys(), ...this.registers.keys()])) this.write(chunk);
    for (const [mfn, bitmap] of this.written) this.bytes += this.index.addWritten(this.run, mfn, bitmap);
    this.written.clear();
  }

  private markWritten(mfn: number, offset: number, length: number): void {
    let bitmap = this.written.get(mfn);
    if (bitmap === undefined) this.written.set(mfn, (bitmap = new Uint8Array(PAGE_SIZE / 8)));
    for (let b = offset; b < Math.min(offset + length, PAGE_SIZE); b++) bitmap[b >> 3] |= 1 << (b & 7);
  }

  private write(chunk: Seq): void {
    for (const [mfn, accesses] of this.frames.get(chunk) ?? []) {
      let kinds = 0;
      let lines = 0;
      for (const a of accesses) {
        kinds |= 1 << a.kind;
        if (((1 << a.kind) & WRITE_KINDS) !== 0) {
          lines |= lineMask(a.offset, a.length);
          this.markWritten(mfn, a.offset, a.length);
        }
      }
      const blob = encodeAccesses(accesses, chunk);
      this.bytes += blob.length;
      this.index.putFrame(this.run, mfn, chunk, kinds, lines, blob);
    }
    for (const [key, mask] of this.registers.get(chunk) ?? []) {
      const [dom, vcpu] = key.split('.').map(Number);
      this.index.putRegisters(this.run, dom, vcpu, chunk, mask);
    }
    this.frames.delete(chunk);
    this.registers.delete(chunk);
  }
}

/** Building one run's index: from where it stopped (or its base) to the events recorded. */
class RunBuild {
  readonly from: Seq;
  readonly to: Seq;
  private readonly events: Generator<[Seq, Event]>;
  private readonly walker: StepWalker;
  private readonly rows: ChunkRows;
  private seq: Seq;
  private readonly previousBytes: number;

  constructor(store: RecordingStore, private readonly index: ForensicIndexStore, readonly run: RunRow) {
    const status = index.status(run.id);
    const current = status !== undefined && status.version === FORENSIC_INDEX_VERSION;
    if (!current) index.clear(run.id);
    // A run that grew since: its last chunk may have been short, so it is indexed again.
    this.from = current ? Math.max(run.baseSeq, chunkOf(status.indexedTo)) : run.baseSeq;
    this.previousBytes = current ? status.bytes : 0;
    this.to = run.eventCount;
    const timeline = new Timeline(store, run);
    const start = timeline.loadCheckpoint(this.from);
    this.seq = start.seq;
    this.rows = new ChunkRows(index, run.id, this.from);
    this.walker = new StepWalker(start.state, (step) => {
      this.rows.add(step);
      this.rows.flushBefore(step.seq + step.events.length);
    });
    // Read once, in order: no chunk is kept decoded.
    this.events = timeline.iterate(start.seq, this.to, { cache: false });
  }

  /** Events walked so far, counted from the first one this build indexes. */
  get done(): number {
    return Math.max(0, this.seq - this.from);
  }

  /** Walks up to `budget` events; true when the run is done (its status written). */
  advance(budget: number): boolean {
    for (let n = 0; n < budget; n++) {
      const next = this.events.next();
      if (next.done) {
        this.walker.finish();
        this.rows.flushAll();
        this.index.setStatus(this.run.id, { version: FORENSIC_INDEX_VERSION, indexedTo: this.to, complete: this.run.status === 'complete' || this.run.status === 'stopped', bytes: this.previousBytes + this.rows.bytes });
        return true;
      }
      const [seq, event] = next.value;
      this.walker.feed(seq, event);
      this.seq = seq + 1;
    }
    return false;
  }
}

/** Events walked between checks of the caller's clock. */
const SLICE_EVENTS = 2048;

/**
 * Builds or extends the index of every run a query on `run` needs (its lineage), in one
 * transaction on a writable store. Call `work` until it returns true, then `commit`; or
 * `abort` to leave the recording as it was.
 */
export class IndexBuild {
  private readonly index: ForensicIndexStore;
  private readonly pending: RunRow[];
  private current: RunBuild | undefined;
  private finishedEvents = 0;
  readonly total: number;

  constructor(private readonly store: RecordingStore, run: RunRow, force = false) {
    assert(!store.readonly, 'an index build needs a writable recording');
    ForensicIndexStore.ensureTables(store.db);
    this.index = new ForensicIndexStore(store.db);
    this.index.begin();
    if (force) for (const r of lineageOf(store, run)) this.index.clear(r.id);
    // Ancestors first: their chunks come first in seq order.
    this.pending = lineageOf(store, run).reverse().filter((r) => indexStale(this.index, r));
    this.total = this.pending.reduce((sum, r) => sum + r.eventCount - Math.min(r.eventCount, this.index.status(r.id)?.indexedTo ?? r.baseSeq), 0);
  }

  /** Events walked so far (of `total`, roughly: a run that grew re-walks its last chunk). */
  get done(): number {
    return Math.min(this.total, this.finishedEvents + (this.current?.done ?? 0));
  }

  /** Works until `timeUp` says so or everything is indexed (then true). */
  work(timeUp: () => boolean = () => false): boolean {
    for (;;) {
      if (this.current === undefined) {
        const next = this.pending.shift();
        if (next === undefined) return true;
        this.current = new RunBuild(this.store, this.index, next);
      }
      if (this.current.advance(SLICE_EVENTS)) {
        this.finishedEvents += this.current.to - this.current.from;
        this.current = undefined;
      }
      if (timeUp()) return this.pending.length === 0 && this.current === undefined;
    }
  }

  commit(): void {
    this.index.commit();
  }

  abort(): void {
    this.index.rollback();
  }
}

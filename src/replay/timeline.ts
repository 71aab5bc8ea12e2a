/**
 * The timeline of one run: its events by seq and the machine state at any seq.
 *
 * A position is a seq: the state "at seq N" is the state after events [0, N). Seeking is
 * "restore the nearest checkpoint (or a state already in the cache) and fold forwards", so
 * going backwards costs what going forwards costs: at most CHECKPOINT_EVERY events of fold
 * (more cpu.step events, which fold faster; see the recorder).
 * States handed out are frozen immer snapshots that share everything unchanged.
 */
import { enableMapSet, freeze, produce } from 'immer';
import { assert } from '../events/errors.ts';
import { STEP_OPENERS, type Event, type Seq } from '../events/schema.ts';
import type { ChunkRow, ChunkSummaryRow, DecodedChunk, RecordingStore, RunRow } from '../events/store.ts';
import { CHUNK_EVENTS, GENESIS_HASH, damaged } from '../events/store.ts';
import { evolve } from '../core/machine/evolve.ts';
import { BlobCache, hydrate } from '../core/machine/snapshot.ts';
import type { MachineState } from '../core/machine/state.ts';

enableMapSet();

/**
 * Chunks kept decoded: 64k events, two checkpoint stretches of a CPU-bound run, which is what
 * stepping back and forth and a seek's fold revisit. Each decoded chunk is ~0.6 MB of objects
 * that outlive young-generation collections: 64 of them (as before) cost the TUI ~150 MB more
 * at its peak (the TUI benchmark on 3M events of the long workload: 674-684 MB against
 * 502-534), for no key faster.
 */
const CHUNK_CACHE_SIZE = 16;
const STATE_CACHE_SIZE = 64;
/**
 * Checkpoint blobs (pages, mostly) kept decoded: 16 MiB of pages. The cache's default holds
 * 64k of them, 256 MiB, which a long run's checkpoints fill: a reader's memory would grow
 * with the recording.
 */
const BLOB_CACHE_SIZE = 4096;
/**
 * Folding inside immer costs several times a plain fold: from a cached snapshot only short
 * distances (stepping, paging) are cheaper than a private fold from the checkpoint.
 */
const DRAFT_FOLD_MAX = 512;
/**
 * How far before a position reached by a fold from a checkpoint a snapshot is kept when
 * moving backwards. Stepping back (the TUI's h) then costs a short fold inside immer until
 * that far, rather than a whole stretch's fold for every step: on 10M events of the long
 * workload, h's slowest 77 ms -> 31-39 ms (npm run bench -- tui).
 */
const BACK_SNAPSHOT = 128;

/** A small least-recently-used map. */
class Lru<K, V> {
  private readonly map = new Map<K, V>();
  constructor(private readonly limit: number) {}
  get(key: K): V | undefined {
    const value = this.map.get(key);
    if (value !== undefined) { this.map.delete(key); this.map.set(key, value); }
    return value;
  }
  set(key: K, value: V): void {
    this.map.delete(key);
    this.map.set(key, value);
    if (this.map.size > this.limit) this.map.delete(this.map.keys().next().value as K);
  }
  keys(): IterableIterator<K> { return this.map.keys(); }
  clear(): void { this.map.clear(); }
}

export class Timeline {
  private readonly chunks = new Lru<number, DecodedChunk>(CHUNK_CACHE_SIZE);
  private readonly states = new Lru<Seq, MachineState>(STATE_CACHE_SIZE);
  readonly blobs: BlobCache;
  private lineage: RunRow[];
  /** The checkpoint the last fold started from (see mutableStateAt). */
  private lastFoldFrom: Seq | undefined;

  constructor(readonly store: RecordingStore, public run: RunRow, { blobCachePages = BLOB_CACHE_SIZE } = {}) {
    this.blobs = new BlobCache((hash) => store.page(hash), blobCachePages);
    this.lineage = this.loadLineage();
  }

  /** Events in the run (including a fork's inherited prefix). */
  get length(): Seq {
    return this.run.eventCount;
  }

  /** Re-reads the run row: a recording still being written has grown. */
  refresh(): void {
    this.run = this.store.run(this.run.id);
    this.lineage = this.loadLineage();
    // The last chunk may have been short before (a run's final chunk); forget it.
    this.chunks.clear();
  }

  private loadLineage(): RunRow[] {
    return this.store.lineage(this.run);
  }

  /** The run whose chunks hold `seq` for this run. */
  private ownerOf(seq: Seq): RunRow {
    return this.lineage.find((r) => seq >= r.baseSeq)!;
  }

  /**
   * The chunk holding `seq`, its hash checked against the chain (one extra lookup: the hash
   * of the chunk before it). A chunk that is missing, or shorter than the run's event count
   * says, is damage, reported with the run and seq.
   */
  private chunk(seq: Seq, cache = true): DecodedChunk {
    const first = Math.floor(seq / CHUNK_EVENTS) * CHUNK_EVENTS;
    let chunk = this.chunks.get(first);
    if (chunk === undefined) {
      const owner = this.ownerOf(first);
      const row = this.store.chunkRowAt(owner.id, seq);
      if (row === undefined || row.firstSeq !== first) {
        throw damaged(this.store.path, this.run.id, first, `the chunk of events ${first}..${first + CHUNK_EVENTS - 1}${owner.id === this.run.id ? '' : ` (stored by run ${owner.id})`} is missing`);
      }
      chunk = this.store.decodeChunk(row, this.chainHashBefore(first));
      if (cache) this.chunks.set(first, chunk);
    }
    if (seq >= chunk.firstSeq + chunk.events.length) {
      throw damaged(this.store.path, this.run.id, seq, `the run says it holds ${this.length} events, but its chunks end at seq ${chunk.firstSeq + chunk.events.length}`);
    }
    return chunk;
  }

  /** The stored row of the chunk that starts at `first` (its own run's, or an ancestor's), if it is there. */
  chunkRow(first: Seq): ChunkRow | undefined {
    const row = this.store.chunkRowAt(this.ownerOf(first).id, first);
    return row?.firstSeq === first ? row : undefined;
  }

  /** The chain hash stored with the chunk that starts at `first` (undefined: no such chunk). */
  chunkHash(first: Seq): Buffer | undefined {
    return this.store.chunkHashAt(this.ownerOf(first).id, first);
  }

  /** The chain hash before the chunk starting at `first`: the hash stored with the chunk before it. */
  private chainHashBefore(first: Seq): Uint8Array {
    if (first === 0) return GENESIS_HASH;
    const previous = first - CHUNK_EVENTS;
    const hash = this.chunkHash(previous);
    if (hash === undefined) {
      throw damaged(this.store.path, this.run.id, previous, `the chunk of events ${previous}..${first - 1} is missing, so the chunk after it cannot be checked`);
    }
    return hash;
  }

  event(seq: Seq): Event {
    const chunk = this.chunk(this.inRun(seq));
    return chunk.events[seq - chunk.firstSeq];
  }

  private inRun(seq: Seq): Seq {
    assert(seq >= 0 && seq < this.length, () => `seq ${seq} outside run ${this.run.id} (0..${this.length - 1})`);
    return seq;
  }

  /**
   * The decoded chunk holding `seq`, not kept unless it already was: for a pass that reads
   * each chunk once, such as a search (kept, chunks a pass drops outlive young-generation
   * collections, and the heap grows with the pass).
   */
  chunkOnce(seq: Seq): DecodedChunk {
    return this.chunk(this.inRun(seq), false);
  }

  /**
   * Events [from, to) in order. `cache: false` reads each chunk once without keeping it (a
   * pass over a whole run then holds one chunk at a time: memory stays flat).
   */
  *iterate(from: Seq = 0, to: Seq = this.length, { cache = true } = {}): Generator<[Seq, Event]> {
    const end = Math.min(to, this.length);
    for (let seq = Math.max(0, from); seq < end;) {
      const chunk = this.chunk(seq, cache);
      const stop = Math.min(end, chunk.firstSeq + chunk.events.length);
      for (; seq < stop; seq++) yield [seq, chunk.events[seq - chunk.firstSeq]];
    }
  }

  events(from: Seq, to: Seq): Event[] {
    return [...this.iterate(from, to)].map(([, e]) => e);
  }

  /**
   * The chunk index rows of up to `max` consecutive chunks of this run (its lineage's, for a
   * fork), from the one holding `from` towards the end (direction 1) or the start (-1); a
   * chunk without a row (recorded before the index) comes with none. One query per run of
   * the lineage crossed.
   */
  summaryRows(from: Seq, direction: 1 | -1, max: number): { first: Seq; row: ChunkSummaryRow | undefined }[] {
    const out: { first: Seq; row: ChunkSummaryRow | undefined }[] = [];
    let first = Math.floor(from / CHUNK_EVENTS) * CHUNK_EVENTS;
    while (out.length < max && first >= 0 && first < this.length) {
      const owner = this.ownerOf(first);
      // The owner's share of this run's chunks: [owner.baseSeq, end).
      const end = Math.min(this.length, ...this.lineage.slice(0, this.lineage.indexOf(owner)).map((r) => r.baseSeq));
      const want = max - out.length;
      const rows = direction > 0 ? this.store.chunkSummaries(owner.id, first, end, 1, want) : this.store.chunkSummaries(owner.id, first, owner.baseSeq, -1, want);
      let i = 0;
      for (; out.length < max && (direction > 0 ? first < end : first >= owner.baseSeq); first += direction * CHUNK_EVENTS) {
        const row = rows[i]?.firstSeq === first ? rows[i++] : undefined;
        out.push({ first, row });
      }
    }
    return out;
  }

  /** The checkpoint nearest at or before `seq` across the lineage. */
  checkpointAtOrBefore(seq: Seq): { seq: Seq; state: Buffer } {
    let limit = seq;
    for (const run of this.lineage) {
      if (run.forkSeq === null || limit >= run.forkSeq) {
        const found = this.store.checkpointAtOrBefore(run.id, limit);
        if (found !== undefined) return found;
      }
      if (run.forkSeq !== null) limit = Math.min(limit, run.forkSeq);
    }
    throw damaged(this.store.path, this.run.id, seq, `it has no checkpoint at or before seq ${seq} (every run has one at its start)`);
  }

  /** Seqs of the checkpoints this run can start from. */
  checkpointSeqs(): Seq[] {
    const seqs: Seq[] = [];
    let limit = Infinity;
    for (const run of this.lineage) {
      for (const seq of this.store.checkpointSeqs(run.id)) if (seq <= limit && (run.forkSeq === null || seq >= run.forkSeq)) seqs.push(seq);
      if (run.forkSeq !== null) limit = Math.min(limit, run.forkSeq);
    }
    return [...new Set(seqs)].sort((a, b) => a - b);
  }

  /**
   * A private, mutable copy of the checkpoint's state. A checkpoint (and the pages it names,
   * re-hashed as they load) that does not decode is damage, reported with the run and seq.
   * With `lazyPages` (seeks) memory pages load when first touched, each checked then.
   */
  loadCheckpoint(seq: Seq, { lazyPages = false } = {}): { seq: Seq; state: MachineState } {
    const checkpoint = this.checkpointAtOrBefore(seq);
    try {
      return { seq: checkpoint.seq, state: hydrate(checkpoint.state, this.blobs, { lazyPages }) };
    } catch (error) {
      const message = (error as Error).message.replace(`${this.store.path}: `, '');
      throw damaged(this.store.path, this.run.id, checkpoint.seq, `the checkpoint at seq ${checkpoint.seq} cannot be loaded: ${message}`);
    }
  }

  /**
   * The machine state after events [0, seq): frozen, shared with other snapshots. Costs a
   * fold of at most CHECKPOINT_EVERY events' worth, less when a nearby state is cached.
   */
  stateAt(seq: Seq): MachineState {
    assert(seq >= 0 && seq <= this.length, () => `seq ${seq} outside run ${this.run.id} (0..${this.length})`);
    const cached = this.states.get(seq);
    if (cached !== undefined) return cached;
    const checkpointSeq = this.checkpointAtOrBefore(seq).seq;
    const near = this.nearestCached(seq, checkpointSeq);
    let state: MachineState;
    if (near !== undefined) {
      state = this.foldFrom(this.states.get(near)!, near, seq);
    } else {
      state = this.foldFromCheckpoint(seq, checkpointSeq);
    }
    this.states.set(seq, state);
    return state;
  }

  /**
   * A fold from the checkpoint. Moving backwards (a state just after `seq` is cached), it
   * leaves a snapshot BACK_SNAPSHOT events before `seq` on its way: the next steps back fold
   * a few events from that snapshot instead of the whole stretch again for every step. (Not
   * on other seeks: the last part of the fold, inside immer, costs a random seek half again.)
   */
  private foldFromCheckpoint(seq: Seq, checkpointSeq: Seq): MachineState {
    const back = seq - BACK_SNAPSHOT;
    // A hydrated checkpoint is ours alone: fold in place, then freeze it for sharing.
    if (back <= checkpointSeq || !this.cachedJustAfter(seq)) return freeze(this.mutableStateAt(seq), true);
    const earlier = freeze(this.mutableStateAt(back), true);
    this.states.set(back, earlier);
    return this.foldFrom(earlier, back, seq);
  }

  /** A frozen state at `from`, folded to `seq` inside immer: a new snapshot sharing what did not change. */
  private foldFrom(base: MachineState, from: Seq, seq: Seq): MachineState {
    return produce(base, (draft) => { for (const [, e] of this.iterate(from, seq)) evolve(draft as MachineState, e); });
  }

  /**
   * A private, mutable state at `seq` (not cached): for callers that roll a state forward
   * event by event themselves, such as a log that disassembles as it goes. It is theirs
   * alone, so they fold with evolve's `live` (pages copied once, then written in place).
   */
  mutableStateAt(seq: Seq): MachineState {
    const loaded = this.loadCheckpoint(seq, { lazyPages: true });
    // A reader that comes back to the stretch of its last fold (stepping, paging) folds it
    // again: its chunks are kept. A jump elsewhere folds through chunks without keeping them:
    // kept, they outlive a young-generation collection only to be dropped, and copying them
    // made the slowest seeks (cold seek p99 on 3M events of the long workload 44-48 -> 19-24 ms).
    const revisit = this.lastFoldFrom === loaded.seq;
    this.lastFoldFrom = loaded.seq;
    // The loaded state is this fold's alone: a page it copied once is written in place after
    // (a history query on 10M events of the long workload: 420 -> 340 ms).
    for (const [, e] of this.iterate(loaded.seq, seq, { cache: revisit })) evolve(loaded.state, e, true);
    return loaded.state;
  }

  /** Whether a state at most BACK_SNAPSHOT events after `seq` is cached: the reader is moving backwards. */
  private cachedJustAfter(seq: Seq): boolean {
    for (const s of this.states.keys()) if (s > seq && s - seq <= BACK_SNAPSHOT) return true;
    return false;
  }

  /** The cached state closest below `seq`, if closer than the checkpoint. */
  private nearestCached(seq: Seq, checkpointSeq: Seq): Seq | undefined {
    let best: Seq | undefined;
    for (const s of this.states.keys()) if (s <= seq && s >= checkpointSeq && (best === undefined || s > best)) best = s;
    return best !== undefined && seq - best <= DRAFT_FOLD_MAX ? best : undefined;
  }

  /** The step boundary at or before `seq`: where the decider can resume (forks start here). */
  stepBoundaryAtOrBefore(seq: Seq): Seq {
    // The end of a finished run is a boundary; a run cut short may end inside a step.
    if (seq >= this.length && this.run.status !== 'recording' && this.run.status !== 'incomplete') return this.length;
    for (let s = Math.min(seq, this.length - 1); s > 0; s--) if (STEP_OPENERS.has(this.event(s).kind)) return s;
    return 0;
  }
}

/**
 * A summary of the run by blocks of events: which kinds and which domains occur in each
 * block. It is built in the background (a slice at a time) and drives the timeline bar's
 * markers, and it lets searches and marker jumps skip every block that cannot hold a match.
 *
 * A long run is read from the recording's chunk index (events/chunk-summary.ts), a row per
 * chunk, so that opening a run of 100 million events takes seconds, not minutes; a short
 * one (or a chunk without a row) is read event by event, for blocks finer than a chunk.
 * Memory is bounded: at most BLOCKS_MAX blocks; a longer run doubles the block size
 * (merging neighbours) instead of growing the arrays.
 */
import { domainBit, kindMask, type KindMask } from '../events/chunk-summary.ts';
import { EVENT_KINDS, eventDomains, type DomainId, type Event, type EventKind, type Seq } from '../events/schema.ts';
import { CHUNK_EVENTS, type ChunkSummaryRow } from '../events/store.ts';
import type { Timeline } from '../replay/timeline.ts';

export { domainBit, kindMask, type KindMask };

export const BLOCKS_MAX = 1 << 16;
/** Runs at least this long are indexed from the chunk index, in blocks of whole chunks. */
export const SUMMARIES_FROM_EVENTS = 64 * CHUNK_EVENTS;
/** Chunk index rows read per query. */
const ROWS_PER_READ = 256;
const CHUNK_SHIFT = Math.log2(CHUNK_EVENTS);

const KIND_CODE = new Map<EventKind, number>(EVENT_KINDS.map((kind, i) => [kind, i]));
const DOMAIN_CREATE = kindMask(['domain.create']);

export const NO_KINDS: KindMask = { lo: 0, hi: 0 };

export function hasAny(mask: KindMask, of: KindMask): boolean {
  return (mask.lo & of.lo) !== 0 || (mask.hi & of.hi) !== 0;
}

export class BlockIndex {
  private shift = 0;
  private readonly kindsLo = new Uint32Array(BLOCKS_MAX);
  private readonly kindsHi = new Uint32Array(BLOCKS_MAX);
  private readonly domains = new Uint32Array(BLOCKS_MAX);
  /** Events [0, scannedTo) are in the index. */
  scannedTo: Seq = 0;
  /** Violation events among those scanned. */
  violations = 0;
  /** Domain names from the domain.create events scanned so far. */
  readonly names = new Map<DomainId, string>();

  /**
   * @param timelineOf a fresh timeline for each slice of the scan: the scan's decoded chunks
   *   never evict what the screen reads, and are garbage as soon as the slice is over
   */
  constructor(private readonly timelineOf: () => Timeline) {}

  /** Events in the run, as far as the index knows (it grows with a live recording). */
  length: Seq = 0;

  get blockSize(): number {
    return 2 ** this.shift;
  }

  /** Damage met while scanning (the run cannot be indexed past it), if any. */
  damage: string | undefined;

  get done(): boolean {
    return this.scannedTo >= this.length || this.damage !== undefined;
  }

  blockOf(seq: Seq): number {
    return Math.floor(seq / this.blockSize);
  }

  blockStart(block: number): Seq {
    return block * this.blockSize;
  }

  blockEnd(block: number): Seq {
    return (block + 1) * this.blockSize;
  }

  /** Indexes whole chunks until `deadline`; true once it has caught up with the run. */
  scan(deadline: number, now: () => number): boolean {
    const timeline = this.timelineOf();
    this.length = timeline.length;
    // A long run's blocks are whole chunks, so that a chunk's row fills one block.
    const fromSummaries = this.length >= SUMMARIES_FROM_EVENTS && timeline.store.hasChunkIndex;
    if (fromSummaries) while (this.shift < CHUNK_SHIFT) this.coarsen();
    while (this.scannedTo < this.length) {
      if (now() >= deadline) return false;
      const rows = fromSummaries ? timeline.summaryRows(this.scannedTo, 1, ROWS_PER_READ) : [{ first: this.scannedTo, row: undefined }];
      for (const { first, row } of rows) {
        const to = Math.min(this.length, Math.floor(first / CHUNK_EVENTS) * CHUNK_EVENTS + CHUNK_EVENTS);
        while (Math.ceil(to / this.blockSize) > BLOCKS_MAX) this.coarsen();
        // Domain names come from domain.create events: a chunk with one is read whole, as
        // are a chunk without a row and the part of a chunk a live run has added since.
        if (row === undefined || hasAny({ lo: row.kindsLo, hi: row.kindsHi }, DOMAIN_CREATE) || to - this.scannedTo < CHUNK_EVENTS) {
          for (const [seq, event] of timeline.iterate(this.scannedTo, to, { cache: false })) this.add(seq, event);
          this.scannedTo = to;
          if (now() >= deadline) break;
        } else {
          this.addRow(first, row);
          this.scannedTo = to;
        }
      }
    }
    return true;
  }

  private add(seq: Seq, event: Event): void {
    const block = Math.floor(seq / this.blockSize);
    const code = KIND_CODE.get(event.kind)!;
    if (code < 32) this.kindsLo[block] |= 1 << code; else this.kindsHi[block] |= 1 << (code - 32);
    for (const dom of eventDomains(event)) this.domains[block] |= domainBit(dom);
    if (event.kind === 'domain.create') this.names.set(event.dom, event.name);
    if (event.kind === 'violation') this.violations++;
  }

  /** A whole chunk from its row (blocks are whole chunks or more). */
  private addRow(first: Seq, row: ChunkSummaryRow): void {
    const block = Math.floor(first / this.blockSize);
    this.kindsLo[block] |= row.kindsLo;
    this.kindsHi[block] |= row.kindsHi;
    this.domains[block] |= row.domains;
    this.violations += row.violations;
  }

  /** Halves the resolution: block i takes blocks 2i and 2i+1. */
  private coarsen(): void {
    for (const array of [this.kindsLo, this.kindsHi, this.domains]) {
      for (let i = 0; i < BLOCKS_MAX / 2; i++) array[i] = array[2 * i] | array[2 * i + 1];
      array.fill(0, BLOCKS_MAX / 2);
    }
    this.shift++;
  }

  /** Whether `block` may hold a match: false only for scanned blocks without those kinds or domains. */
  mayContain(block: number, kinds: KindMask | undefined, domains: number | undefined): boolean {
    if (this.blockEnd(block) > this.scannedTo) return true;
    if (kinds !== undefined && (this.kindsLo[block] & kinds.lo) === 0 && (this.kindsHi[block] & kinds.hi) === 0) return false;
    return domains === undefined || (this.domains[block] & domains) !== 0;
  }

  /** The kinds in the blocks that overlap [from, to), and whether all of them are scanned. */
  kindsIn(from: Seq, to: Seq): { kinds: KindMask; scanned: boolean } {
    if (to <= from) return { kinds: NO_KINDS, scanned: true };
    let lo = 0;
    let hi = 0;
    const last = this.blockOf(to - 1);
    for (let b = this.blockOf(from); b <= last; b++) {
      lo |= this.kindsLo[b];
      hi |= this.kindsHi[b];
    }
    return { kinds: { lo: lo >>> 0, hi: hi >>> 0 }, scanned: to <= this.scannedTo };
  }
}

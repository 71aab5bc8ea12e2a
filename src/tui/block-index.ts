/**
 * A summary of the run by blocks of events: which kinds and which domains occur in each
 * block. It is built by scanning the run once in the background (a slice at a time) and
 * drives the timeline bar's markers, and it lets searches and marker jumps skip every block
 * that cannot hold a match. Memory is bounded: at most BLOCKS_MAX blocks; a longer run
 * doubles the block size (merging neighbours) instead of growing the arrays.
 */
import { EVENT_KINDS, eventDomains, type DomainId, type Event, type EventKind, type Seq } from '../events/schema.ts';
import { CHUNK_EVENTS } from '../events/store.ts';
import type { Timeline } from '../replay/timeline.ts';

export const BLOCKS_MAX = 1 << 16;

const KIND_CODE = new Map<EventKind, number>(EVENT_KINDS.map((kind, i) => [kind, i]));

/** A set of event kinds as two 32-bit words (there are fewer than 64 kinds). */
export interface KindMask {
  lo: number;
  hi: number;
}

export const NO_KINDS: KindMask = { lo: 0, hi: 0 };

export function kindMask(kinds: Iterable<EventKind>): KindMask {
  let lo = 0;
  let hi = 0;
  for (const kind of kinds) {
    const code = KIND_CODE.get(kind)!;
    if (code < 32) lo |= 1 << code; else hi |= 1 << (code - 32);
  }
  return { lo: lo >>> 0, hi: hi >>> 0 };
}

export function hasAny(mask: KindMask, of: KindMask): boolean {
  return (mask.lo & of.lo) !== 0 || (mask.hi & of.hi) !== 0;
}

/** One bit per domain id; ids from 31 up share the last bit. */
export function domainBit(dom: DomainId): number {
  return dom < 0 ? 0 : (1 << Math.min(dom, 31)) >>> 0;
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
    while (this.scannedTo < this.length) {
      if (now() >= deadline) return false;
      const to = Math.min(this.length, (Math.floor(this.scannedTo / CHUNK_EVENTS) + 1) * CHUNK_EVENTS);
      while (Math.ceil(to / this.blockSize) > BLOCKS_MAX) this.coarsen();
      for (const [seq, event] of timeline.iterate(this.scannedTo, to)) this.add(seq, event);
      this.scannedTo = to;
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

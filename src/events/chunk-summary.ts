/**
 * The chunk index: per chunk of a run, which kinds of event it holds, which domains they
 * concern, how many violations, and a filter of its text (text-trigrams.ts). Written with
 * each chunk, in the same transaction, so that readers of a long run (the TUI's timeline
 * bar, searches, marker jumps, `log --kind`) find the chunks that matter from SQLite
 * instead of decoding every event: the index grows with the recording on disk, not in a
 * reader's memory.
 *
 * A chunk without a summary (recorded before the index existed) may hold anything.
 */
import { printableBytesText, stringText } from './event-text.ts';
import { FIELD_CLASSES } from './generated/event-codecs.ts';
import { EVENT_FIELDS, EVENT_KINDS, eventDomains, type DomainId, type Event, type EventKind } from './schema.ts';
import { FILTER_BITS, addText, foldFilter } from './text-trigrams.ts';

export interface ChunkSummary {
  /** Kinds present, one bit per kind in schema order (EVENT_KINDS): kinds 0-31, then 32-63. */
  kindsLo: number;
  kindsHi: number;
  /** Domains concerned, one bit per domain id (ids from 31 up share the last bit). */
  domains: number;
  violations: number;
  /** The text filter, folded; undefined when the chunk has no text a filter keeps. */
  text: Uint8Array | undefined;
}

const KIND_CODE = new Map<EventKind, number>(EVENT_KINDS.map((kind, i) => [kind, i]));

/** A set of event kinds as two 32-bit words (there are fewer than 64 kinds). */
export interface KindMask {
  lo: number;
  hi: number;
}

export function kindMask(kinds: Iterable<EventKind>): KindMask {
  let lo = 0;
  let hi = 0;
  for (const kind of kinds) {
    const code = KIND_CODE.get(kind)!;
    if (code < 32) lo |= 1 << code; else hi |= 1 << (code - 32);
  }
  return { lo: lo >>> 0, hi: hi >>> 0 };
}

export function hasAnyKind(mask: KindMask, of: KindMask): boolean {
  return (mask.lo & of.lo) !== 0 || (mask.hi & of.hi) !== 0;
}

/** The kinds of a mask, in schema order. */
export function kindsOf(mask: KindMask): EventKind[] {
  return EVENT_KINDS.filter((_, code) => ((code < 32 ? mask.lo >>> code : mask.hi >>> (code - 32)) & 1) !== 0);
}

/** One bit per domain id; ids from 31 up share the last bit. */
export function domainBit(dom: DomainId): number {
  return dom < 0 ? 0 : (1 << Math.min(dom, 31)) >>> 0;
}

/** The fields of each kind whose text a line shows as it is: strings and bytes. */
const TEXT_FIELDS = new Map<EventKind, readonly string[]>(EVENT_KINDS.map((kind) => [
  kind,
  (EVENT_FIELDS[kind] as readonly string[]).filter((f) => (FIELD_CLASSES[kind] as Record<string, string>)[f] === 'other'),
]));

const STEP_CODE = KIND_CODE.get('cpu.step')!;

/**
 * Builds the summary of one chunk, event by event. A cpu.step (nearly every event of a
 * CPU-bound run) costs one OR; other events their kind, domains and text fields.
 */
export class ChunkSummaryBuilder {
  private kindsLo = 0;
  private kindsHi = 0;
  private domains = 0;
  private violations = 0;
  private readonly filter = new Uint8Array(FILTER_BITS / 8);
  private hasText = false;

  private steps = false;

  /** A cpu.step of domain `dom`. */
  addStep(dom: DomainId): void {
    this.steps = true;
    this.domains |= dom >= 0 && dom < 31 ? 1 << dom : domainBit(dom);
  }

  add(event: Event): void {
    const code = KIND_CODE.get(event.kind)!;
    if (code < 32) this.kindsLo |= 1 << code; else this.kindsHi |= 1 << (code - 32);
    for (const dom of eventDomains(event)) this.domains |= domainBit(dom);
    if (event.kind === 'violation') this.violations++;
    const record = event as unknown as Record<string, unknown>;
    for (const field of TEXT_FIELDS.get(event.kind)!) this.addField(record[field]);
  }

  private addField(value: unknown): void {
    const text = typeof value === 'string' ? stringText(value) : value instanceof Uint8Array ? printableBytesText(value) : undefined;
    if (text === undefined) return;
    addText(this.filter, text);
    this.hasText = true;
  }

  /** The summary of the events added since the last take. */
  take(): ChunkSummary {
    if (this.steps) {
      if (STEP_CODE < 32) this.kindsLo |= 1 << STEP_CODE; else this.kindsHi |= 1 << (STEP_CODE - 32);
    }
    this.steps = false;
    const summary: ChunkSummary = {
      kindsLo: this.kindsLo >>> 0, kindsHi: this.kindsHi >>> 0, domains: this.domains >>> 0, violations: this.violations,
      text: this.hasText ? foldFilter(this.filter) : undefined,
    };
    this.kindsLo = 0;
    this.kindsHi = 0;
    this.domains = 0;
    this.violations = 0;
    if (this.hasText) this.filter.fill(0);
    this.hasText = false;
    return summary;
  }
}

/**
 * Searching a run: a small query language and a search that walks the run in slices from
 * the position, skipping every block the block index rules out.
 *
 * A query is terms that must all hold:
 *   violation, vm.exit, mem  a kind, or a family of kinds (kind:K also works)
 *   dom:alice, dom:2         the event concerns that domain
 *   0x2000                   a field holds the address (gpa, eip, cr2, mfn...) or a read or
 *                            write covers it
 *   anything else            text in the event's one-line form (case does not matter)
 */
import { EVENT_KINDS, eventDomains, type DomainId, type Event, type EventKind, type Seq } from '../events/schema.ts';
import { CHUNK_EVENTS, type DecodedChunk } from '../events/store.ts';
import { chunkSearchOf, type ChunkSearch } from '../replay/chunk-search.ts';
import { eventText, type DomainNames } from '../replay/format.ts';
import type { Timeline } from '../replay/timeline.ts';
import { domainBit, kindMask, type KindMask } from '../events/chunk-summary.ts';
import type { BlockIndex } from './block-index.ts';

export interface Matcher {
  /** The query as typed, for messages. */
  text: string;
  /** Texts a line must contain, lowercased; lets the search skip chunks through the chunk index. */
  texts?: readonly string[];
  /** Any of these kinds (undefined: any kind); lets the search skip blocks. */
  kinds?: KindMask;
  /** Domain bits (undefined: any domain); lets the search skip blocks. */
  domains?: number;
  test(event: Event): boolean;
}

const ADDRESS_FIELDS = ['gpa', 'eip', 'next', 'gla', 'cr2', 'page', 'mfn', 'gfn'] as const;

function coversAddress(event: Event, address: number): boolean {
  const record = event as unknown as Record<string, unknown>;
  if (ADDRESS_FIELDS.some((f) => record[f] === address)) return true;
  if (event.kind !== 'mem.read' && event.kind !== 'mem.write') return false;
  return address >= event.gpa && address < event.gpa + event.stored.length;
}

function kindsNamed(word: string): EventKind[] {
  return EVENT_KINDS.filter((kind) => kind === word || kind.startsWith(`${word}.`));
}

function domainNamed(word: string, names: DomainNames): DomainId | undefined {
  if (/^\d+$/.test(word)) return Number(word);
  for (const [id, name] of names) if (name.toLowerCase() === word.toLowerCase()) return id;
  return undefined;
}

interface Terms {
  kinds: EventKind[];
  domains: DomainId[];
  addresses: number[];
  texts: string[];
}

/** Sorts one term into its group, or says what is wrong with it. */
function addTerm(terms: Terms, term: string, quoted: boolean, names: DomainNames): string | undefined {
  const [prefix, rest] = term.includes(':') && !quoted ? [term.slice(0, term.indexOf(':')), term.slice(term.indexOf(':') + 1)] : ['', term];
  if (prefix === 'kind') {
    const kinds = kindsNamed(rest);
    if (kinds.length === 0) return `no event kind '${rest}'`;
    terms.kinds.push(...kinds);
  } else if (prefix === 'dom' || prefix === 'domain') {
    const dom = domainNamed(rest, names);
    if (dom === undefined) return `no domain '${rest}'; domains: ${[...names.values()].join(', ')}`;
    terms.domains.push(dom);
  } else if (!quoted && /^(addr:)?0x[0-9a-f]+$/i.test(term)) {
    terms.addresses.push(Number.parseInt(term.replace(/^addr:/, ''), 16));
  } else if (!quoted && kindsNamed(term).length > 0) {
    terms.kinds.push(...kindsNamed(term));
  } else {
    terms.texts.push(term.toLowerCase());
  }
  return undefined;
}

/** A matcher for the query, or a message saying what is wrong with it. */
export function parseQuery(query: string, names: DomainNames): Matcher | string {
  const terms: Terms = { kinds: [], domains: [], addresses: [], texts: [] };
  for (const m of query.matchAll(/"([^"]*)"|(\S+)/g)) {
    const problem = addTerm(terms, m[1] ?? m[2], m[1] !== undefined, names);
    if (problem) return problem;
  }
  if (Object.values(terms).every((t) => t.length === 0)) return 'an empty search';
  return matcherOf(query.trim(), terms, names);
}

function matcherOf(text: string, terms: Terms, names: DomainNames): Matcher {
  const kinds = terms.kinds.length ? new Set(terms.kinds) : undefined;
  const domains = terms.domains.length ? new Set(terms.domains) : undefined;
  return {
    text,
    texts: terms.texts,
    kinds: kinds && kindMask(kinds),
    domains: domains && [...domains].reduce((bits, d) => (bits | domainBit(d)) >>> 0, 0),
    test(event: Event): boolean {
      if (kinds && !kinds.has(event.kind)) return false;
      if (domains && !eventDomains(event).some((d) => domains.has(d))) return false;
      if (!terms.addresses.every((a) => coversAddress(event, a))) return false;
      if (terms.texts.length === 0) return true;
      const line = eventText(event, names).toLowerCase();
      return terms.texts.every((t) => line.includes(t));
    },
  };
}

/** A matcher for a fixed set of kinds (the marker jumps). */
export function kindMatcher(label: string, kinds: readonly EventKind[]): Matcher {
  const set = new Set(kinds);
  return { text: label, kinds: kindMask(kinds), test: (event) => set.has(event.kind) };
}

/** How many events a slice tests between looks at the clock. */
const CLOCK_EVERY = 512;

/**
 * One search from `from` (inclusive) towards the end (direction 1) or the start (-1). It
 * runs in slices; `found` is set when it stops on a match. Chunks the chunk index rules out
 * are skipped whole, blocks the block index rules out too; only the rest is tested event
 * by event.
 */
export class SearchJob {
  cursor: Seq;
  found: Seq | undefined;
  readonly start: Seq;
  private readonly chunks: ChunkSearch | undefined;
  /** The first seq of the chunk the index last let through (the cursor is inside it). */
  private chunkLetThrough = -1;
  private chunk: DecodedChunk | undefined;

  constructor(
    private readonly timeline: Timeline,
    private readonly index: BlockIndex,
    readonly matcher: Matcher,
    from: Seq,
    readonly direction: 1 | -1,
    names: DomainNames = new Map(),
  ) {
    this.cursor = from;
    this.start = from;
    this.chunks = chunkSearchOf(timeline, matcher, names);
  }

  /** The event at `seq`, from the chunk this search holds (one at a time). */
  private event(seq: Seq): Event {
    let chunk = this.chunk;
    if (chunk === undefined || seq < chunk.firstSeq || seq >= chunk.firstSeq + chunk.events.length) chunk = this.chunk = this.timeline.chunkOnce(seq);
    return chunk.events[seq - chunk.firstSeq];
  }

  private inRange(): boolean {
    return this.direction > 0 ? this.cursor < this.timeline.length : this.cursor >= 0;
  }

  /** Tests events until `deadline`; true when the search is over (found, or off the end). */
  step(deadline: number, now: () => number): boolean {
    const { index, matcher } = this;
    let tested = 0;
    while (this.inRange()) {
      if (this.chunks !== undefined && chunkOf(this.cursor) !== this.chunkLetThrough && !this.skipChunks()) {
        if (this.inRange() && now() >= deadline) return false;
        continue;
      }
      const block = index.blockOf(this.cursor);
      if (!index.mayContain(block, matcher.kinds, matcher.domains)) {
        this.cursor = this.direction > 0 ? index.blockEnd(block) : index.blockStart(block) - 1;
        continue;
      }
      if (matcher.test(this.event(this.cursor))) {
        this.found = this.cursor;
        return true;
      }
      this.cursor += this.direction;
      if (++tested % CLOCK_EVERY === 0 && now() >= deadline) return false;
    }
    return true;
  }

  /**
   * Moves the cursor to the nearest chunk the index lets through (true), or as far as a
   * batch of the index's rows took it, or off the end (false).
   */
  private skipChunks(): boolean {
    const { found, next } = this.chunks!.next(this.cursor, this.direction);
    const to = found ?? next;
    if (to === undefined) {
      this.cursor = this.direction > 0 ? this.timeline.length : -1;
      return false;
    }
    if (to !== chunkOf(this.cursor)) this.cursor = this.direction > 0 ? to : Math.min(this.timeline.length - 1, to + CHUNK_EVENTS - 1);
    if (found === undefined) return false;
    this.chunkLetThrough = found;
    return true;
  }

  /** How far it has come, 0..1. */
  get progress(): number {
    const total = this.direction > 0 ? this.timeline.length - this.start : this.start + 1;
    const done = this.direction > 0 ? this.cursor - this.start : this.start - this.cursor;
    return total <= 0 ? 1 : Math.min(1, done / total);
  }
}

const chunkOf = (seq: Seq): Seq => Math.floor(seq / CHUNK_EVENTS) * CHUNK_EVENTS;

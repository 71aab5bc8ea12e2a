/**
 * Finding the chunks of a run that may hold a match, from the chunk index (events/chunk-summary.ts)
 * rather than from the events: a search for something rare far away reads the index's rows
 * (a few dozen bytes per 4096 events) and decodes only the chunks that may hold it.
 *
 * A chunk may hold a match when it holds one of the kinds asked for, concerns one of the
 * domains, and, for each text term, some kind in it can show the term: every trigram of the
 * term (text-trigrams.ts) is either a word that kind's lines always can hold (its name, its
 * field names, register and exit names, domain names: fieldWords) or in the chunk's text
 * filter. A chunk without a row (recorded before the index) may hold anything.
 */
import { kindsOf, type KindMask } from '../events/chunk-summary.ts';
import { EVENT_FIELDS, EVENT_KINDS, type EventKind, type Seq } from '../events/schema.ts';
import { CHUNK_EVENTS } from '../events/store.ts';
import { filterMayHold, queryTrigrams } from '../events/text-trigrams.ts';
import { fieldWords, type DomainNames } from './format.ts';
import type { Timeline } from './timeline.ts';

/** What a match needs from a chunk. */
export interface ChunkQuery {
  /** Any of these kinds (undefined: any kind). */
  kinds?: KindMask;
  /** Any of these domain bits (undefined: any domain). */
  domains?: number;
  /** Each of these texts, lowercased (a line must contain all of them). */
  texts?: readonly string[];
}

/** The trigram hashes of the words any line of `kind` may hold. */
function kindVocabulary(kind: EventKind, names: DomainNames): Set<number> {
  const fields = EVENT_FIELDS[kind] as readonly string[];
  const words = [kind, ...fields, ...fields.flatMap((f) => fieldWords(kind, f)), ...names.values()];
  return new Set(queryTrigrams(words.join(' ')));
}

/** The vocabularies of the last set of domain names asked for (a session keeps asking with the same). */
let vocabularies: { key: string; byKind: Map<EventKind, Set<number>> } | undefined;

function vocabulariesFor(names: DomainNames): Map<EventKind, Set<number>> {
  const key = [...names.values()].join('\u0000');
  if (vocabularies?.key !== key) vocabularies = { key, byKind: new Map(EVENT_KINDS.map((kind) => [kind, kindVocabulary(kind, names)])) };
  return vocabularies.byKind;
}

const KIND_CODE = new Map(EVENT_KINDS.map((kind, i) => [kind, i]));
const hasKind = (mask: KindMask, kind: EventKind): boolean => {
  const code = KIND_CODE.get(kind)!;
  return ((code < 32 ? mask.lo >>> code : mask.hi >>> (code - 32)) & 1) !== 0;
};

/** A chunk's summary as the matcher reads it (a row of the index, or a summary being built). */
export interface SummaryLike {
  kindsLo: number;
  kindsHi: number;
  domains: number;
  text: Uint8Array | null | undefined;
}

/** Decides, from a chunk's summary alone, whether the chunk may hold a match of a query. */
export class ChunkMatcher {
  /**
   * Per text term, per kind: the term's trigrams a line of that kind can only hold in the
   * text of its fields, so the chunk's filter must hold them; null when the term has no
   * trigram the filter keeps (all numbers, or too short): any chunk may hold it.
   */
  private readonly needs: Map<EventKind, number[] | null>[];

  constructor(private readonly query: ChunkQuery, names: DomainNames) {
    const texts = query.texts ?? [];
    const byKind = texts.length === 0 ? new Map<EventKind, Set<number>>() : vocabulariesFor(names);
    this.needs = texts.map((text) => {
      const trigrams = queryTrigrams(text);
      return new Map(EVENT_KINDS.map((kind) => [kind, trigrams.length === 0 ? null : trigrams.filter((t) => !byKind.get(kind)!.has(t))]));
    });
  }

  /** Whether the summaries can rule anything out for this query. */
  get selective(): boolean {
    return this.query.kinds !== undefined || this.query.domains !== undefined || this.needs.some((byKind) => [...byKind.values()].some((need) => need !== null));
  }

  mayMatch(summary: SummaryLike): boolean {
    const { kinds, domains } = this.query;
    if (kinds !== undefined && (summary.kindsLo & kinds.lo) === 0 && (summary.kindsHi & kinds.hi) === 0) return false;
    if (domains !== undefined && (summary.domains & domains) === 0) return false;
    if (this.needs.length === 0) return true;
    const present = kindsOf({ lo: summary.kindsLo, hi: summary.kindsHi }).filter((k) => kinds === undefined || hasKind(kinds, k));
    const text = summary.text ?? undefined;
    return this.needs.every((byKind) => present.some((kind) => {
      const need = byKind.get(kind)!;
      return need === null || need.length === 0 || (text !== undefined && filterMayHold(text, need));
    }));
  }
}

/**
 * A search of the timeline's chunk index for chunks that may hold a match of `query`, or
 * undefined when the index cannot rule anything out (no index, or nothing in the query it
 * knows of).
 */
export function chunkSearchOf(timeline: Timeline, query: ChunkQuery, names: DomainNames): ChunkSearch | undefined {
  const search = new ChunkSearch(timeline, query, names);
  return timeline.store.hasChunkIndex && search.selective ? search : undefined;
}

/** Rows read per query of the index. */
const BATCH_ROWS = 512;

/**
 * The chunk index of one run (its lineage's chunks for a fork), asked for the next chunk
 * that may hold a match. Keeps nothing that grows with the run.
 */
export class ChunkSearch {
  private readonly matcher: ChunkMatcher;

  constructor(private readonly timeline: Timeline, query: ChunkQuery, names: DomainNames) {
    this.matcher = new ChunkMatcher(query, names);
  }

  /** Whether the summaries can rule anything out for this query. */
  get selective(): boolean {
    return this.matcher.selective;
  }

  /**
   * The first seq of the first chunk from the one holding `seq` on, in `direction`, that may
   * hold a match (`found`); after `rowsMax` rows without one, where to go on from (`next`);
   * neither when no chunk is left.
   */
  next(seq: Seq, direction: 1 | -1, rowsMax = BATCH_ROWS): { found?: Seq; next?: Seq } {
    let from = seq;
    for (let read = 0; read < rowsMax;) {
      const rows = this.timeline.summaryRows(from, direction, Math.min(BATCH_ROWS, rowsMax - read));
      if (rows.length === 0) return {};
      // A chunk without a row (recorded before the index) may hold anything.
      const hit = rows.find(({ row }) => row === undefined || this.matcher.mayMatch(row));
      if (hit !== undefined) return { found: hit.first };
      read += rows.length;
      from = rows[rows.length - 1].first + direction * CHUNK_EVENTS;
    }
    return from >= 0 && from < this.timeline.length ? { next: from } : {};
  }
}

/**
 * Event codec: msgpackr records whose structures live in the recording's database.
 *
 * Each event is stored as a record `{k, ...fields}` where `k` is the kind's code (its index
 * in the persisted kind table), so the kind name is never repeated on disk. The record
 * structures are seeded from the schema when a database is created, in schema order, and
 * persisted with it; a process never invents its own. Because the seed order is fixed, the
 * same events encode to the same bytes in every database, which keeps hash chains
 * comparable across recordings.
 */
import { Packr } from 'msgpackr';
import { journalToChunk, type ChunkJournal } from './chunk-journal.ts';
import { ChunkSummaryBuilder } from './chunk-summary.ts';
import { EVENT_READERS, EVENT_RECORDS, FAST_VALUES, type EventRecord } from './generated/event-codecs.ts';
import { FAIL, FAST_ARRAY_MAX } from './msgpack-write.ts';
import { EVENT_FIELDS, EVENT_KINDS, type Event, type EventKind } from './schema.ts';

/** What a database persists so that any later program decodes it the same way. */
export interface CodecTables {
  /** Kind names by code. */
  kinds: string[];
  /** msgpackr shared record structures (arrays of keys). */
  structures: string[][];
}

const MAX_SHARED_STRUCTURES = 64;

/** The tables a new database starts with: one structure per distinct field list. */
export function schemaCodecTables(): CodecTables {
  const structures: string[][] = [];
  const seen = new Set<string>();
  for (const kind of EVENT_KINDS) {
    const keys = ['k', ...(EVENT_FIELDS[kind] as readonly string[])];
    const id = keys.join(',');
    if (!seen.has(id)) {
      seen.add(id);
      structures.push(keys);
    }
  }
  return { kinds: [...EVENT_KINDS], structures };
}

type FromRecord = (record: Record<string, unknown>) => Event;
type ToRecord = (event: Event, code: number) => EventRecord;
/** Writes an event's values (after its record header and kind code); the new position, or FAIL. */
type FastValues = (event: Event, target: Uint8Array, position: number) => number;

/** Room the fast path may need for one event: header, kind code, fields of arrays of uint32s. */
export const FAST_EVENT_MAX = 4096;

/**
 * The fast path of the encoder (see msgpack-write.ts) per kind: its writer, and its record
 * header once learnt (null: not yet; false: never). The header (the structure id) is learnt
 * from msgpackr's own encoding of the first event of the kind, and used only if msgpackr's
 * bytes and ours agree on that event.
 */
interface FastKind {
  values: FastValues;
  code: number;
  header: Uint8Array | null | false;
  /** Events of the kind the fast path could not write. */
  misses: number;
}
/** After this many events that needed msgpackr (fractions, long arrays), a kind stops trying the fast path. */
const FAST_GIVE_UP = 16;

/** Words a cpu.step takes in a journal at most: its head, five fields, FAST_ARRAY_MAX delta words. */
const STEP_WORDS_MAX = 6 + FAST_ARRAY_MAX;

/**
 * Builds one chunk event by event, so that a writer keeps bytes and numbers rather than
 * events: records as bytes, cpu.steps as their field values (see ChunkJournal). Its bytes
 * (journalToChunk) equal `packr.pack(records)` of the same events.
 */
export class ChunkBuilder {
  private bytes: Buffer = Buffer.allocUnsafe(1 << 16);
  private position = 0;
  private words = new Uint32Array(1 << 16);
  private word = 0;
  private readonly summary = new ChunkSummaryBuilder();
  count = 0;

  constructor(private readonly codec: EventCodec) {}

  add(event: Event): void {
    this.count++;
    if (this.words.length - this.word < STEP_WORDS_MAX) this.growWords();
    // A cpu.step is journalled as numbers: copying them costs the recording thread far
    // less than writing msgpack, which journalToChunk does later, on the store thread.
    if (event.kind === 'cpu.step' && this.codec.stepPrefix !== null) {
      const { dom, vcpu, pcpu, eip, next, delta } = event;
      const n = delta.length;
      if (dom >>> 0 === dom && vcpu >>> 0 === vcpu && pcpu >>> 0 === pcpu && eip >>> 0 === eip && next >>> 0 === next && n <= FAST_ARRAY_MAX) {
        const w = this.words;
        let q = this.word;
        w[q] = n * 2 + 1; w[q + 1] = dom; w[q + 2] = vcpu; w[q + 3] = pcpu; w[q + 4] = eip; w[q + 5] = next;
        q += 6;
        let i = 0;
        for (; i < n; i++) {
          const x = delta[i];
          if (x >>> 0 !== x) break;
          w[q + i] = x;
        }
        if (i === n) {
          this.word = q + n;
          this.summary.addStep(dom);
          return;
        }
      }
    }
    this.addBytes(event);
  }

  private addBytes(event: Event): void {
    this.summary.add(event);
    if (this.bytes.length - this.position < FAST_EVENT_MAX) this.growBytes(FAST_EVENT_MAX);
    const start = this.position;
    const end = this.codec.encodeInto(event, this.bytes, start);
    if (end >= 0) {
      this.position = end;
    } else {
      const packed = this.codec.packEvent(event);
      if (this.bytes.length - start < packed.length) this.growBytes(packed.length);
      this.bytes.set(packed, start);
      this.position = start + packed.length;
    }
    this.words[this.word++] = (this.position - start) * 2;
  }

  /**
   * The chunk as a journal, and the builder starts a new chunk. Its arrays are views of the
   * builder's buffers, valid until the next add.
   */
  takeJournal(): ChunkJournal {
    const journal = {
      count: this.count,
      words: this.words.subarray(0, this.word),
      bytes: this.bytes.subarray(0, this.position),
      stepPrefix: this.codec.stepPrefix ?? NO_PREFIX,
      summary: this.summary.take(),
    };
    this.position = 0;
    this.word = 0;
    this.count = 0;
    return journal;
  }

  /** The chunk's bytes, and the builder starts a new chunk. */
  take(): Buffer {
    const bytes = journalToChunk(this.takeJournal());
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  }

  private growBytes(need: number): void {
    const bigger = Buffer.allocUnsafe(Math.max(this.bytes.length * 2, this.position + need));
    this.bytes.copy(bigger, 0, 0, this.position);
    this.bytes = bigger;
  }

  private growWords(): void {
    const bigger = new Uint32Array(this.words.length * 2);
    bigger.set(this.words.subarray(0, this.word));
    this.words = bigger;
  }
}

const NO_PREFIX = new Uint8Array(0);

export class CodecError extends Error {}

export class EventCodec {
  private readonly packr: Packr;
  /** Kind codes in this recording's kind table. */
  private readonly codes = new Map<string, number>();
  private readonly fromRecord: FromRecord[] = [];
  private readonly fast = new Map<string, FastKind>();
  private readonly fastCpuStep: FastKind | undefined;
  private stepPrefixBytes: Uint8Array | undefined;
  private readonly scratch = new Uint8Array(FAST_EVENT_MAX);
  private readonly learnScratch = new Uint8Array(FAST_EVENT_MAX);
  /** Structures as persisted, so the owner can tell whether new ones appeared. */
  readonly structures: string[][];

  /**
   * @param tables what the database holds
   * @param saveStructures called when msgpackr meets a new shape, so the database keeps it
   */
  constructor(tables: CodecTables, saveStructures: (structures: string[][]) => void = () => {}) {
    this.structures = tables.structures.map((s) => [...s]);
    // Through getStructures, not the `structures` option: msgpackr then decodes the two-byte
    // ids it writes for structures past the 32nd.
    this.packr = new Packr({
      getStructures: () => this.structures,
      maxSharedStructures: MAX_SHARED_STRUCTURES,
      saveStructures: (s: string[][]) => {
        saveStructures(s.map((keys) => [...keys]));
        return true;
      },
    });
    tables.kinds.forEach((name, code) => {
      if (!(name in EVENT_FIELDS)) {
        this.fromRecord[code] = () => {
          throw new CodecError(`the recording holds events of kind '${name}', which this program does not know`);
        };
        return;
      }
      const kind = name as EventKind;
      this.codes.set(kind, code);
      // A kind code is written as a positive fixint, so only the first 0x40 kinds can be fast.
      const values = FAST_VALUES[kind] as FastValues | undefined;
      if (code < 0x40 && values !== undefined) this.fast.set(kind, { values, code, header: null, misses: 0 });
      this.fromRecord[code] = EVENT_READERS[kind] as unknown as FromRecord;
    });
    this.fastCpuStep = this.fast.get('cpu.step');
  }

  /** Encodes a chunk of events as one msgpack array. */
  encodeChunk(events: readonly Event[]): Buffer {
    const builder = new ChunkBuilder(this);
    for (const event of events) builder.add(event);
    return builder.take();
  }

  /**
   * What precedes a cpu.step's values in its record (its header and kind code), once the
   * header is learnt and known to agree with msgpackr; null until then (or never). Kept once
   * known, even if the fast path later gives up on cpu.steps: it is a fact about the record
   * structures, and chunk journals hold steps written with it.
   */
  get stepPrefix(): Uint8Array | null {
    if (this.stepPrefixBytes === undefined) {
      const header = this.fastCpuStep?.header;
      if (header === undefined || header === null || header === false) return null;
      this.stepPrefixBytes = Uint8Array.from([...header, this.fastCpuStep!.code]);
    }
    return this.stepPrefixBytes;
  }

  /**
   * Writes one event's record at `position` of `target` (which has FAST_EVENT_MAX bytes of
   * room) without msgpackr: the new position, or FAIL when the event needs msgpackr (then
   * nothing meaningful was written).
   */
  encodeInto(event: Event, target: Uint8Array, position: number): number {
    // The kind nearly every event of a CPU-bound run is: no map lookup, a call site of its own.
    const step = this.fastCpuStep;
    if (event.kind === 'cpu.step' && step !== undefined && step.header !== null && step.header !== false) {
      const header = step.header;
      target[position] = header[0];
      if (header.length === 2) target[position + 1] = header[1];
      target[position + header.length] = step.code;
      const end = step.values(event, target, position + header.length + 1);
      if (end < 0 && ++step.misses >= FAST_GIVE_UP) step.header = false;
      return end;
    }
    const fast = this.fast.get(event.kind);
    if (fast === undefined) return FAIL;
    const header = fast.header ?? this.learnHeader(event, fast);
    if (header === false || header === null) return FAIL;
    target[position] = header[0];
    if (header.length === 2) target[position + 1] = header[1];
    target[position + header.length] = fast.code;
    const end = fast.values(event, target, position + header.length + 1);
    if (end < 0 && ++fast.misses >= FAST_GIVE_UP) fast.header = false;
    return end;
  }

  /** One event's bytes through msgpackr itself. */
  packEvent(event: Event): Buffer {
    return this.packr.pack(this.record(event));
  }

  /**
   * The record header of a kind, from msgpackr's encoding of `event`: what precedes the
   * values, provided the values are what the fast path writes. null when this event cannot
   * tell (its values need msgpackr); the kind is given up on if msgpackr's bytes disagree.
   */
  private learnHeader(event: Event, fast: FastKind): Uint8Array | false | null {
    const scratch = this.learnScratch;
    scratch[0] = fast.code;
    const length = fast.values(event, scratch, 1);
    if (length < 0) {
      if (++fast.misses >= FAST_GIVE_UP) fast.header = false;
      return fast.header;
    }
    const reference = this.packr.pack(this.record(event));
    const headerLength = reference.length - length;
    const agrees = (headerLength === 1 || headerLength === 2) && reference[0] >= 0x40 && reference[0] < 0x80 && Buffer.compare(reference.subarray(headerLength), scratch.subarray(0, length)) === 0;
    fast.header = agrees ? Uint8Array.from(reference.subarray(0, headerLength)) : false;
    return fast.header;
  }

  /** A kind's code in this recording's kind table (undefined: it has none). */
  kindCode(kind: EventKind): number | undefined {
    return this.codes.get(kind);
  }

  /**
   * The kind code of the record at `position` of a chunk's bytes, read from its header
   * alone (no decoding): a shared structure's id in one byte (0x40-0x5f) or two (0x60-0x7f
   * and a high byte), as msgpackr writes it with two-byte record ids, then `k`, the first
   * field of every record, as a positive fixint. -1 when the bytes there are not such a record.
   */
  static recordKindCode(bytes: Uint8Array, position: number): number {
    const first = bytes[position];
    if (first === undefined || first < 0x40 || first >= 0x80) return -1;
    const code = bytes[position + (first < 0x60 ? 1 : 2)];
    return code === undefined || code >= 0x80 ? -1 : code;
  }

  decodeChunk(bytes: Uint8Array): Event[] {
    const records = this.packr.unpack(bytes) as Record<string, unknown>[];
    if (!Array.isArray(records)) throw new CodecError('a chunk does not hold an array of events');
    return records.map((r) => this.event(r));
  }

  /** One event's bytes: what verify compares, byte for byte. */
  encodeEvent(event: Event): Buffer {
    const end = this.encodeInto(event, this.scratch, 0);
    if (end >= 0) return Buffer.from(this.scratch.subarray(0, end));
    return this.packEvent(event);
  }

  decodeEvent(bytes: Uint8Array): Event {
    return this.event(this.packr.unpack(bytes) as Record<string, unknown>);
  }

  private record(event: Event): EventRecord {
    const code = this.codes.get(event.kind);
    if (code === undefined) throw new CodecError(`this recording's kind table has no '${event.kind}'`);
    return (EVENT_RECORDS[event.kind] as ToRecord)(event, code);
  }

  private event(record: Record<string, unknown>): Event {
    const convert = typeof record?.k === 'number' ? this.fromRecord[record.k] : undefined;
    if (convert === undefined) throw new CodecError(`an event has an unknown kind code ${String(record?.k)}`);
    return convert(record);
  }
}

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

type ToRecord = (event: Event) => Record<string, unknown>;
type FromRecord = (record: Record<string, unknown>) => Event;

/** Generated converters: one monomorphic object literal per kind, in schema order. */
function compileToRecord(code: number, kind: EventKind): ToRecord {
  const fields = EVENT_FIELDS[kind] as readonly string[];
  const body = `return { k: ${code}, ${fields.map((f) => `${f}: e.${f}`).join(', ')} };`;
  return new Function('e', body) as ToRecord;
}

function compileFromRecord(kind: EventKind): FromRecord {
  const fields = EVENT_FIELDS[kind] as readonly string[];
  const body = `return { kind: ${JSON.stringify(kind)}, ${fields.map((f) => `${f}: r.${f}`).join(', ')} };`;
  return new Function('r', body) as FromRecord;
}

/**
 * The fast path of the encoder: msgpack for the values events are mostly made of (integers,
 * booleans, short integer arrays), byte for byte what msgpackr writes for them (see its
 * pack.js: integers below 0x40 as positive fixints, 0x40-0x7f being record ids, 0xcc/0xcd/0xce
 * above, negative fixint/0xd0/0xd1/0xd2 below zero; arrays as 0x9n/0xdc/0xdd). Anything else
 * (strings, byte arrays, non-integers) returns -1 and the event goes through msgpackr itself.
 * The record header (the structure id) is learnt from msgpackr's own encoding of the first
 * event of each kind, and used only if msgpackr's bytes and ours agree on that event.
 */
const FAIL = -1;
/** Arrays longer than this go through msgpackr (keeps the space an event needs bounded). */
const FAST_ARRAY_MAX = 64;
/** Room the fast path may need for one event: header, kind code, fields of arrays of uint32s. */
const FAST_EVENT_MAX = 4096;

function writeNumber(t: Uint8Array, p: number, v: number): number {
  if (v >>> 0 === v) {
    if (v < 0x40) { t[p] = v; return p + 1; }
    if (v < 0x100) { t[p] = 0xcc; t[p + 1] = v; return p + 2; }
    if (v < 0x10000) { t[p] = 0xcd; t[p + 1] = v >> 8; t[p + 2] = v & 0xff; return p + 3; }
    t[p] = 0xce; t[p + 1] = v >>> 24; t[p + 2] = (v >> 16) & 0xff; t[p + 3] = (v >> 8) & 0xff; t[p + 4] = v & 0xff;
    return p + 5;
  }
  if (v >> 0 === v) {
    if (v >= -0x20) { t[p] = 0x100 + v; return p + 1; }
    if (v >= -0x80) { t[p] = 0xd0; t[p + 1] = v + 0x100; return p + 2; }
    if (v >= -0x8000) { t[p] = 0xd1; t[p + 1] = (v >> 8) & 0xff; t[p + 2] = v & 0xff; return p + 3; }
    t[p] = 0xd2; t[p + 1] = (v >>> 24); t[p + 2] = (v >> 16) & 0xff; t[p + 3] = (v >> 8) & 0xff; t[p + 4] = v & 0xff;
    return p + 5;
  }
  return FAIL;
}

/** Numbers and booleans, as msgpackr writes them; anything else is -1 (arrays are written inline, see INLINE_ARRAY). */
function writeScalar(t: Uint8Array, p: number, v: unknown): number {
  if (typeof v === 'number') return writeNumber(t, p, v);
  if (typeof v === 'boolean') { t[p] = v ? 0xc3 : 0xc2; return p + 1; }
  return FAIL;
}

/** Writes the record's values (its kind code first) at `p`; the new position, or -1. */
type FastValues = (event: Event, t: Uint8Array, p: number) => number;

/** Unsigned 32-bit integers, the most common values, are written inline; other scalars through writeScalar. */
const inlineUint32 = (v: string): string => `if (${v} < 0x40) t[p++] = ${v};
    else if (${v} < 0x100) { t[p] = 0xcc; t[p + 1] = ${v}; p += 2; }
    else if (${v} < 0x10000) { t[p] = 0xcd; t[p + 1] = ${v} >> 8; t[p + 2] = ${v} & 0xff; p += 3; }
    else { t[p] = 0xce; t[p + 1] = ${v} >>> 24; t[p + 2] = (${v} >> 16) & 0xff; t[p + 3] = (${v} >> 8) & 0xff; t[p + 4] = ${v} & 0xff; p += 5; }`;

/**
 * Arrays of numbers (a cpu.step's delta) are written inline too: each kind's function then
 * has array loads of its own, which stay fast, where one shared function would see every
 * kind's arrays (small-integer and double elements alike) and the JIT may give up on it.
 */
const INLINE_ARRAY = `if (Array.isArray(v) && v.constructor === Array && v.length <= ${FAST_ARRAY_MAX}) {
    n = v.length;
    if (n < 0x10) t[p++] = 0x90 | n;
    else { t[p] = 0xdc; t[p + 1] = n >> 8; t[p + 2] = n & 0xff; p += 3; }
    for (i = 0; i < n; i++) {
      x = v[i];
      if (typeof x === 'number' && x >>> 0 === x) {
        ${inlineUint32('x')}
      } else if (typeof x === 'number') { p = wn(t, p, x); if (p < 0) return -1; } else return -1;
    }
  }`;

function compileFastValues(code: number, kind: EventKind): FastValues {
  const fields = EVENT_FIELDS[kind] as readonly string[];
  const body = ['let v, n, i, x;', `t[p++] = ${code};`]
    .concat(fields.map((f) => `v = e.${f};
  if (typeof v === 'number' && v >>> 0 === v) {
    ${inlineUint32('v')}
  } else ${INLINE_ARRAY} else { p = w(t, p, v); if (p < 0) return -1; }`), ['return p;']).join('\n');
  return new Function('w', 'wn', `return function fast_${kind.replace(/\W/g, '_')}(e, t, p) {\n${body}\n};`)(writeScalar, writeNumber) as FastValues;
}

/** Per kind: its fast encoder, and the record header once learnt (null: not yet; false: never). */
interface FastKind {
  values: FastValues;
  header: Uint8Array | null | false;
  /** Events of the kind the fast path could not write. */
  misses: number;
}
/** After this many events that needed msgpackr (byte fields, strings), a kind stops trying the fast path. */
const FAST_GIVE_UP = 16;

/**
 * A chunk as the recording thread leaves it: the records in order, each either as its bytes
 * or, for a cpu.step (nearly every event of a CPU-bound run), as its raw field values, whose
 * msgpack bytes journalToChunk writes later, on whichever thread stores the chunk. Entries
 * in `words`: an even word 2L is a record of L bytes, the next L of `bytes`; an odd word
 * 2N+1 is a cpu.step followed by its dom, vcpu, pcpu, eip, next and N delta words (all
 * uint32: anything else is written as bytes).
 */
export interface ChunkJournal {
  count: number;
  words: Uint32Array;
  bytes: Uint8Array;
  /** What precedes a cpu.step's values: its record header and kind code. */
  stepPrefix: Uint8Array;
}

/**
 * The msgpack bytes of a journal: exactly the bytes the records would have had written one
 * by one (an array of `count` records). Self-contained, with no closures or helpers, because
 * a store thread evaluates its source text (Function.prototype.toString) as well.
 */
export function journalToChunk(journal: ChunkJournal): Uint8Array {
  const { count, words, bytes, stepPrefix } = journal;
  const out = new Uint8Array(5 + bytes.length + words.length * 5 + count * stepPrefix.length);
  let p = 0;
  if (count < 0x10) out[p++] = 0x90 | count;
  else if (count < 0x10000) { out[0] = 0xdc; out[1] = count >> 8; out[2] = count & 0xff; p = 3; }
  else { out[0] = 0xdd; out[1] = count >>> 24; out[2] = (count >> 16) & 0xff; out[3] = (count >> 8) & 0xff; out[4] = count & 0xff; p = 5; }
  let b = 0;
  for (let q = 0; q < words.length;) {
    const head = words[q++];
    if ((head & 1) === 0) {
      const length = head >>> 1;
      out.set(bytes.subarray(b, b + length), p);
      p += length;
      b += length;
      continue;
    }
    const n = head >>> 1;
    out.set(stepPrefix, p);
    p += stepPrefix.length;
    // dom, vcpu, pcpu, eip and next; after next, the delta array's header; then its n elements.
    for (let i = 0; i < 5 + n; i++) {
      const v = words[q++];
      if (v < 0x40) out[p++] = v;
      else if (v < 0x100) { out[p] = 0xcc; out[p + 1] = v; p += 2; }
      else if (v < 0x10000) { out[p] = 0xcd; out[p + 1] = v >> 8; out[p + 2] = v & 0xff; p += 3; }
      else { out[p] = 0xce; out[p + 1] = v >>> 24; out[p + 2] = (v >> 16) & 0xff; out[p + 3] = (v >> 8) & 0xff; out[p + 4] = v & 0xff; p += 5; }
      if (i === 4) {
        if (n < 0x10) out[p++] = 0x90 | n;
        else { out[p] = 0xdc; out[p + 1] = 0; out[p + 2] = n; p += 3; }
      }
    }
  }
  return out.subarray(0, p);
}

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
          return;
        }
      }
    }
    this.addBytes(event);
  }

  private addBytes(event: Event): void {
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
  private readonly toRecord = new Map<string, ToRecord>();
  private readonly fromRecord: FromRecord[] = [];
  private readonly fast = new Map<string, FastKind>();
  private readonly fastCpuStep: FastKind | undefined;
  private readonly cpuStepValues: FastValues | undefined;
  private readonly cpuStepCode: number;
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
      this.toRecord.set(kind, compileToRecord(code, kind));
      if (code < 0x40) this.fast.set(kind, { values: compileFastValues(code, kind), header: null, misses: 0 });
      this.fromRecord[code] = compileFromRecord(kind);
    });
    this.fastCpuStep = this.fast.get('cpu.step');
    this.cpuStepCode = tables.kinds.indexOf('cpu.step');
    this.cpuStepValues = this.fastCpuStep === undefined ? undefined : compileFastValues(tables.kinds.indexOf('cpu.step'), 'cpu.step');
  }

  /** Encodes a chunk of events as one msgpack array. */
  encodeChunk(events: readonly Event[]): Buffer {
    const builder = new ChunkBuilder(this);
    for (const event of events) builder.add(event);
    return builder.take();
  }

  /**
   * Writes one event's record at `position` of `target` (which has FAST_EVENT_MAX bytes of
   * room) without msgpackr: the new position, or -1 when the event needs msgpackr (then
   * nothing meaningful was written).
   */
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
      this.stepPrefixBytes = Uint8Array.from([...header, this.cpuStepCode]);
    }
    return this.stepPrefixBytes;
  }

  encodeInto(event: Event, target: Uint8Array, position: number): number {
    // The kind nearly every event of a CPU-bound run is: no map lookup, a call site of its own.
    const step = this.fastCpuStep;
    if (event.kind === 'cpu.step' && step !== undefined && step.header !== null && step.header !== false) {
      const header = step.header;
      target[position] = header[0];
      if (header.length === 2) target[position + 1] = header[1];
      const end = this.cpuStepValues!(event, target, position + header.length);
      if (end < 0 && ++step.misses >= FAST_GIVE_UP) step.header = false;
      return end;
    }
    const fast = this.fast.get(event.kind);
    if (fast === undefined) return FAIL;
    const header = fast.header ?? this.learnHeader(event, fast);
    if (header === false || header === null) return FAIL;
    target[position] = header[0];
    if (header.length === 2) target[position + 1] = header[1];
    const end = fast.values(event, target, position + header.length);
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
    const length = fast.values(event, scratch, 0);
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

  private record(event: Event): Record<string, unknown> {
    const convert = this.toRecord.get(event.kind);
    if (convert === undefined) throw new CodecError(`this recording's kind table has no '${event.kind}'`);
    return convert(event);
  }

  private event(record: Record<string, unknown>): Event {
    const convert = typeof record?.k === 'number' ? this.fromRecord[record.k] : undefined;
    if (convert === undefined) throw new CodecError(`an event has an unknown kind code ${String(record?.k)}`);
    return convert(record);
  }
}

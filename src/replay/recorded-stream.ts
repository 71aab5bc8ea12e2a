/**
 * A run's recorded events as their stored bytes, read chunk by chunk in seq order, each chunk
 * checked against the hash chain as it is reached: its hash recomputed over the hash stored
 * with the chunk before it. Checked link by link, with the chain's ends checked apart
 * (verify.ts), that proves the whole chain, so the chunks can be checked by several workers,
 * each where its re-execution reads them.
 *
 * Re-execution compares what the machine emits with these bytes directly: encoding an event
 * costs a fraction of decoding one, so a recorded event is decoded only to report a
 * mismatch, or when the replay must apply it (an input).
 */
import { EventCodec, FAST_EVENT_MAX } from '../events/codec.ts';
import type { Event, EventKind, Seq } from '../events/schema.ts';
import { CHUNK_EVENTS, GENESIS_HASH, chunkHash, inflateChunk } from '../events/store.ts';
import type { Timeline } from './timeline.ts';

/** A problem with the chain met while reading: where, and what (verify reports it as a `chain` mismatch). */
export interface ChainProblem {
  seq: Seq;
  message: string;
}

export class RecordedStream {
  private raw: Buffer = Buffer.alloc(0);
  /** The current chunk: its first seq and event count (first -1: none loaded). */
  private first: Seq = -1;
  private count = 0;
  /** The current seq, and where its record starts in `raw`. */
  private seq: Seq = 0;
  private position = 0;
  private decoded: Event[] | undefined;
  private readonly codec: EventCodec;
  private readonly scratch = new Uint8Array(FAST_EVENT_MAX);

  constructor(private readonly timeline: Timeline) {
    this.codec = timeline.store.codec;
  }

  /** Goes to `seq` (reading and checking its chunk); a problem if the chunk is missing or damaged. */
  seek(seq: Seq): ChainProblem | undefined {
    const first = Math.floor(seq / CHUNK_EVENTS) * CHUNK_EVENTS;
    if (first !== this.first) {
      const problem = this.load(first);
      if (problem) return problem;
    }
    this.seq = first;
    this.position = this.arrayStart;
    // Records are as long as their encoding: step over those before `seq`.
    if (seq > first) for (const event of this.events().slice(0, seq - first)) this.position += this.encoded(event).length;
    this.seq = seq;
    return undefined;
  }

  /** The kind code of the recorded event at the current seq, read from its header (-1: unreadable). */
  kindCode(): number {
    return EventCodec.recordKindCode(this.raw, this.position);
  }

  /** Whether the recorded event at the current seq is of `kind`. */
  isKind(kind: EventKind): boolean {
    const code = this.kindCode();
    return code >= 0 ? code === this.codec.kindCode(kind) : this.event().kind === kind;
  }

  /** The recorded event at the current seq, decoded. */
  event(): Event {
    return this.events()[this.seq - this.first];
  }

  /**
   * Whether `event` is, byte for byte, the recorded event at the current seq; if so the
   * stream moves past it (into the next chunk, checked, if need be: a problem there is returned).
   */
  matchAndAdvance(event: Event): boolean | ChainProblem {
    const bytes = this.encoded(event);
    const raw = this.raw;
    const at = this.position;
    if (at + bytes.length > raw.length) return false;
    for (let i = 0; i < bytes.length; i++) if (raw[at + i] !== bytes[i]) return false;
    this.position = at + bytes.length;
    this.seq++;
    if (this.seq === this.first + this.count && this.seq < this.timeline.length) return this.seek(this.seq) ?? true;
    return true;
  }

  private encoded(event: Event): Uint8Array {
    const end = this.codec.encodeInto(event, this.scratch, 0);
    return end >= 0 ? this.scratch.subarray(0, end) : this.codec.packEvent(event);
  }

  /** Where the first record starts: after the chunk's array header. */
  private get arrayStart(): number {
    const head = this.raw[0];
    return head === 0xdc ? 3 : head === 0xdd ? 5 : 1;
  }

  private events(): Event[] {
    this.decoded ??= this.codec.decodeChunk(this.raw);
    return this.decoded;
  }

  /** Reads the chunk at `first` and checks it against the chain. */
  private load(first: Seq): ChainProblem | undefined {
    this.first = -1;
    this.decoded = undefined;
    const row = this.timeline.chunkRow(first);
    if (row === undefined) return { seq: first, message: `chunk missing: expected one starting at seq ${first}` };
    const where = `chunk at seq ${first} (run ${row.run})`;
    let raw: Buffer;
    try {
      raw = inflateChunk(row.bytes);
    } catch (error) {
      return { seq: first, message: `${where} is damaged: ${(error as Error).message}` };
    }
    const previous = first === 0 ? GENESIS_HASH : this.timeline.chunkHash(first - CHUNK_EVENTS);
    if (previous === undefined) return { seq: first - CHUNK_EVENTS, message: `chunk missing: expected one starting at seq ${first - CHUNK_EVENTS}` };
    if (!chunkHash(previous, first, row.count, raw).equals(row.hash)) {
      return { seq: first, message: `${where} does not match its hash: its bytes or an earlier chunk changed` };
    }
    this.raw = raw;
    this.first = first;
    this.count = row.count;
    const held = raw[0] >= 0x90 && raw[0] < 0xa0 ? raw[0] & 0x0f : raw[0] === 0xdc ? raw.readUInt16BE(1) : raw[0] === 0xdd ? raw.readUInt32BE(1) : -1;
    if (held !== row.count) return { seq: first, message: `${where} holds ${held < 0 ? 'no array of' : held} events, not ${row.count}` };
    return undefined;
  }
}


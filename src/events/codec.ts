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

export class CodecError extends Error {}

export class EventCodec {
  private readonly packr: Packr;
  private readonly toRecord = new Map<string, ToRecord>();
  private readonly fromRecord: FromRecord[] = [];
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
      this.fromRecord[code] = compileFromRecord(kind);
    });
  }

  /** Encodes a chunk of events as one msgpack array. */
  encodeChunk(events: readonly Event[]): Buffer {
    const records = new Array<Record<string, unknown>>(events.length);
    for (let i = 0; i < events.length; i++) records[i] = this.record(events[i]);
    return this.packr.pack(records);
  }

  decodeChunk(bytes: Uint8Array): Event[] {
    const records = this.packr.unpack(bytes) as Record<string, unknown>[];
    if (!Array.isArray(records)) throw new CodecError('a chunk does not hold an array of events');
    return records.map((r) => this.event(r));
  }

  /** One event's bytes: what verify compares, byte for byte. */
  encodeEvent(event: Event): Buffer {
    return this.packr.pack(this.record(event));
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

/**
 * Building events: every event is made with its fields in schema order, so each kind has one
 * object shape (what keeps evolve and the codec's per-kind functions monomorphic).
 */
import { EVENT_BUILDERS } from './generated/event-codecs.ts';
import type { Event, EventFields, EventKind } from './schema.ts';

type Builder = (fields: object) => Event;
/** A Map: looking a kind up in it is faster than a keyed load from an object of 48 properties. */
const BUILDERS = new Map<string, Builder>(Object.entries(EVENT_BUILDERS) as [string, Builder][]);

/** Builds an event with its fields in schema order (the codec relies on that order). */
export function makeEvent<K extends EventKind>(kind: K, fields: EventFields<K>): Extract<Event, { kind: K }> {
  return BUILDERS.get(kind)!(fields) as Extract<Event, { kind: K }>;
}

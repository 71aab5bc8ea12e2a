/**
 * Building events: every event is made with its fields in schema order, so each kind has one
 * object shape (what keeps evolve and the codec's per-kind functions monomorphic).
 */
import { EVENT_BUILDERS } from './generated/event-codecs.ts';
import type { Event, EventFields, EventKind } from './schema.ts';

/** Builds an event with its fields in schema order (the codec relies on that order). */
export function makeEvent<K extends EventKind>(kind: K, fields: EventFields<K>): Extract<Event, { kind: K }> {
  return (EVENT_BUILDERS[kind] as unknown as (f: EventFields<K>) => Extract<Event, { kind: K }>)(fields);
}

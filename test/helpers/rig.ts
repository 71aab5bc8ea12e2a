/**
 * A machine driven by hand in device tests: booted, then every event it emits kept in order
 * (the machine's emit is wrapped), so a test can call the device and driver functions
 * directly and look at exactly what they recorded.
 */
import { makeEvent } from '../../src/events/make-event.ts';
import type { Event, EventKind, EventOf } from '../../src/events/schema.ts';
import { Machine } from '../../src/core/machine/machine.ts';
import type { MachineConfig } from '../../src/core/hypervisor/config.ts';
import { initialState } from '../../src/core/machine/state.ts';

export interface Rig {
  m: Machine;
  /** Every event the machine applied, in order, the boot step included. */
  events: Event[];
}

/** Boots a machine for `config` (one step) and keeps every event from then on. */
export function bootRig(config: MachineConfig): Rig {
  const m = new Machine(initialState(config));
  const events = [...m.step()];
  const emit = m.emit.bind(m);
  m.emit = ((kind, fields) => {
    events.push(makeEvent(kind, fields));
    emit(kind, fields);
  }) as Machine['emit'];
  return { m, events };
}

/** The events of one kind from position `from` on. */
export function since<K extends EventKind>(events: readonly Event[], from: number, kind: K): EventOf<K>[] {
  return events.slice(from).filter((e) => e.kind === kind) as unknown as EventOf<K>[];
}

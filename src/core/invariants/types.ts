import type { DomainId, Event, InvariantName, Mfn } from '../../events/schema.ts';
import type { MachineState } from '../state.ts';

export interface Breach {
  dom: DomainId;
  mfn: Mfn;
  detail: string;
}

/**
 * An isolation invariant, checked against every event before it is applied (so it sees the
 * state the event changes). Each checker lives in its own file and returns what it found.
 */
export interface InvariantChecker {
  name: InvariantName;
  check(state: MachineState, event: Event): Breach | undefined;
}

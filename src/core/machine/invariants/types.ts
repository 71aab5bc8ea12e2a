import type { DomainId, Event, EventKind, InvariantName, Mfn } from '../../../events/schema.ts';
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
  /** The rule in one sentence, as `explain` states it. */
  rule: string;
  /** The kinds of event it looks at (the machine calls it for those only). */
  kinds: readonly EventKind[];
  check(state: MachineState, event: Event): Breach | undefined;
}

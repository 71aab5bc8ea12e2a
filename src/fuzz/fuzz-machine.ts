/**
 * The system under test of a fuzz case: a live machine that takes the actions one at a time.
 * Each action is pushed as an input and the machine runs until it is quiet again, exactly as
 * a recording of the case (its inputs all waiting for quiet) will run it.
 */
import type { Event, EventOf, Profile } from '../events/schema.ts';
import type { FlawName } from '../core/flaws.ts';
import { Machine } from '../core/machine.ts';
import type { MachineConfig } from '../core/scenario.ts';
import { initialState, type MachineState } from '../core/state.ts';
import { nextStep } from '../replay/recorder.ts';
import { actionInput, type Action } from './actions.ts';
import { WHEN_QUIET, caseConfig, type CaseShape } from './case.ts';

/** What a campaign has exercised: exit reasons, VT-d fault reasons and event kinds seen. */
export class Coverage {
  readonly exitReasons = new Set<number>();
  readonly faultReasons = new Set<number>();
  readonly kinds = new Set<string>();
  exits = 0;

  add(event: Event): void {
    this.kinds.add(event.kind);
    if (event.kind === 'vm.exit') {
      this.exits++;
      this.exitReasons.add(event.reason);
    } else if ((event.kind === 'dma.request' || event.kind === 'msi') && event.fault !== 0) {
      this.faultReasons.add(event.fault);
    }
  }

  merge(other: { exitReasons: Iterable<number>; faultReasons: Iterable<number>; kinds: Iterable<string>; exits: number }): void {
    for (const r of other.exitReasons) this.exitReasons.add(r);
    for (const r of other.faultReasons) this.faultReasons.add(r);
    for (const k of other.kinds) this.kinds.add(k);
    this.exits += other.exits;
  }
}

export class FuzzMachine {
  readonly machine: Machine;
  readonly config: MachineConfig;
  readonly violations: EventOf<'violation'>[] = [];
  readonly applied: Action[] = [];
  events = 0;

  constructor(readonly shape: CaseShape, readonly profile: Profile, readonly flaws: readonly FlawName[], readonly maxEvents: number, readonly coverage: Coverage) {
    this.config = caseConfig(shape, profile, flaws, []);
    this.machine = new Machine(initialState(this.config));
    this.settle();
  }

  get state(): MachineState {
    return this.machine.state;
  }

  /** True when the case ran out of its event budget: later actions change nothing. */
  get exhausted(): boolean {
    return this.events >= this.maxEvents;
  }

  /** Applies an action and runs until the machine is quiet; returns the violations it caused. */
  apply(action: Action): EventOf<'violation'>[] {
    const before = this.violations.length;
    const { key, value } = actionInput(action);
    // The config's input list is read as the machine goes, so a pushed input is pending now.
    this.config.inputs.push({ at: WHEN_QUIET, key, value });
    this.applied.push(action);
    this.settle();
    return this.violations.slice(before);
  }

  private settle(): void {
    const m = this.machine;
    while (!m.state.halted && !this.exhausted) {
      if (m.finished && m.state.inputNext >= this.config.inputs.length) return;
      for (const event of nextStep(m)) {
        this.events++;
        this.coverage.add(event);
        if (event.kind === 'violation') this.violations.push(event);
      }
    }
  }
}

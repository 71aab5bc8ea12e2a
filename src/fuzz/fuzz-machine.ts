/**
 * The system under test of a fuzz case: a live machine that takes the actions one at a time.
 * Each action is pushed as an input and the machine runs until it is quiet again, exactly as
 * a recording of the case (its inputs all waiting for quiet) will run it.
 */
import type { Event, EventOf, Profile } from '../events/schema.ts';
import type { FlawName } from '../core/hypervisor/flaws.ts';
import { Machine } from '../core/machine/machine.ts';
import type { MachineConfig } from '../core/hypervisor/config.ts';
import { cloneState, initialState, type MachineState } from '../core/machine/state.ts';
import { nextStep } from '../replay/recorder.ts';
import { actionInput, type Action } from './actions.ts';
import { WHEN_QUIET, caseConfig, type CaseShape } from './case.ts';
import { CaseFeatures, FeatureCounts } from './features.ts';

/** Coverage as plain data (what crosses threads and the queue). */
export interface PlainCoverage {
  exitReasons: number[];
  faultReasons: number[];
  kinds: string[];
  exits: number;
  /** Feature -> cases that reached it. */
  features: [string, number][];
}

/** What a campaign has exercised: exit reasons, VT-d fault reasons and event kinds seen, and the features of its cases. */
export class Coverage {
  readonly exitReasons = new Set<number>();
  readonly faultReasons = new Set<number>();
  readonly kinds = new Set<string>();
  readonly features = new FeatureCounts();
  exits = 0;

  static from(plain: PlainCoverage): Coverage {
    const coverage = new Coverage();
    coverage.merge(plain);
    return coverage;
  }

  add(event: Event): void {
    this.kinds.add(event.kind);
    if (event.kind === 'vm.exit') {
      this.exits++;
      this.exitReasons.add(event.reason);
    } else if ((event.kind === 'dma.request' || event.kind === 'msi') && event.fault !== 0) {
      this.faultReasons.add(event.fault);
    }
  }

  /** Adds what `other` covered; its exits count too unless they were run before (a prepared machine's). */
  merge(other: PlainCoverage | Coverage, countExits = true): void {
    for (const r of other.exitReasons) this.exitReasons.add(r);
    for (const r of other.faultReasons) this.faultReasons.add(r);
    for (const k of other.kinds) this.kinds.add(k);
    if (countExits) this.exits += other.exits;
    this.features.merge(other.features instanceof FeatureCounts ? other.features.counts : other.features);
  }

  plain(): PlainCoverage {
    return { exitReasons: [...this.exitReasons], faultReasons: [...this.faultReasons], kinds: [...this.kinds], exits: this.exits, features: [...this.features.counts] };
  }
}

/** A machine booted and settled for a case's shape, with what getting there produced. */
interface Prepared {
  state: MachineState;
  events: number;
  violations: EventOf<'violation'>[];
  coverage: Coverage;
  /** The features booting reached: every case of the shape reaches them too. */
  features: string[];
}

/**
 * Prepared machines by shape: booting (domains, VT-d tables, the NIC) costs more than most
 * cases, and many cases share a shape (shrinking reruns one shape hundreds of times). A case
 * starts from a clone, which is the state a fresh machine would reach: the machine is
 * deterministic and the clone shares only what is never changed in place.
 */
const prepared = new Map<string, Prepared>();
const PREPARED_MAX = 256;

function preparedKey(shape: CaseShape, profile: Profile, flaws: readonly FlawName[], maxEvents: number): string {
  return `${profile}|${flaws.join(',')}|${shape.seed}|${shape.pcpus}|${shape.quantum}|${shape.paging}|${maxEvents}`;
}

export class FuzzMachine {
  readonly machine: Machine;
  readonly config: MachineConfig;
  readonly violations: EventOf<'violation'>[] = [];
  readonly applied: Action[] = [];
  /** What this case reached after booting (see features()). */
  private readonly caseFeatures = new CaseFeatures();
  private readonly bootFeatures: string[];
  events = 0;

  constructor(readonly shape: CaseShape, readonly profile: Profile, readonly flaws: readonly FlawName[], readonly maxEvents: number, readonly coverage: Coverage) {
    const base = FuzzMachine.prepare(shape, profile, flaws, maxEvents);
    // The case's own scenario: the shape's, with an input list of its own to push actions on.
    this.config = { ...base.state.config, inputs: [] };
    this.machine = new Machine({ ...cloneState(base.state), config: this.config });
    this.events = base.events;
    this.violations.push(...base.violations);
    // The prepared machine's exits were run once, when it was prepared: they count as covered, not as run again.
    coverage.merge(base.coverage, false);
    this.bootFeatures = base.features;
  }

  /** Every feature the case reached, booting included. */
  features(): string[] {
    return [...new Set([...this.bootFeatures, ...this.caseFeatures.list()])];
  }

  private static prepare(shape: CaseShape, profile: Profile, flaws: readonly FlawName[], maxEvents: number): Prepared {
    const key = preparedKey(shape, profile, flaws, maxEvents);
    let base = prepared.get(key);
    if (base === undefined) {
      const coverage = new Coverage();
      const features = new CaseFeatures();
      const first = new FuzzMachine.Fresh(caseConfig(shape, profile, flaws, []), maxEvents, coverage, features);
      base = { state: cloneState(first.machine.state), events: first.events, violations: first.violations, coverage, features: features.list() };
      if (prepared.size >= PREPARED_MAX) prepared.delete(prepared.keys().next().value!);
      prepared.set(key, base);
    }
    return base;
  }

  /** A machine run from boot until it is quiet (what a prepared state is made from). */
  private static Fresh = class {
    readonly machine: Machine;
    readonly violations: EventOf<'violation'>[] = [];
    events = 0;

    constructor(config: MachineConfig, maxEvents: number, coverage: Coverage, features: CaseFeatures) {
      this.machine = new Machine(initialState(config));
      this.events = runUntilQuiet(this.machine, config, maxEvents, 0, coverage, features, this.violations);
    }
  };

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
    this.events = runUntilQuiet(this.machine, this.config, this.maxEvents, this.events, this.coverage, this.caseFeatures, this.violations);
    return this.violations.slice(before);
  }
}

/** Steps until every input is taken and the machine is quiet (or halted, or out of budget); returns the event count. */
function runUntilQuiet(m: Machine, config: MachineConfig, maxEvents: number, events: number, coverage: Coverage, features: CaseFeatures, violations: EventOf<'violation'>[]): number {
  let count = events;
  while (!m.state.halted && count < maxEvents) {
    if (m.state.inputNext >= config.inputs.length && m.finished) break;
    for (const event of nextStep(m)) {
      count++;
      coverage.add(event);
      features.add(event, m.state);
      if (event.kind === 'violation') violations.push(event);
    }
  }
  return count;
}

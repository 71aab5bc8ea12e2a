/**
 * The decider: the machine takes one step and says what happened.
 *
 * `step()` decides one step from the state alone and returns its events; every event is
 * applied (`evolve`) the moment it is emitted, so later decisions in the same step see its
 * effect. The isolation invariants look at every event before it is applied; what they
 * find is appended to the step as `violation` events.
 */
import { assert } from '../../events/errors.ts';
import { makeEvent } from '../../events/make-event.ts';
import { NO_DOMAIN, type Event, type EventFields, type EventKind } from '../../events/schema.ts';
import { createDomain } from '../hypervisor/domains.ts';
import { nicBoot } from '../hypervisor/io/nic-pf-driver.ts';
import { anyRunnable, isRunnable, passesTurn, passTurn, runnableVcpus, scheduleStep, wakeSleeper, type VcpuRef } from '../hypervisor/scheduler.ts';
import { runX86Step } from '../hypervisor/vmx/vcpu-run.ts';
import { wakeTick } from '../hypervisor/vmx/vcpu.ts';
import { vtdBoot } from '../hypervisor/vtd-driver/iommu-domains.ts';
import { evolve } from './evolve.ts';
import { runDom0Action } from './guests/dom0.ts';
import { runGuestOperation } from './guests/scripted.ts';
import { actOnInput } from './inputs.ts';
import { INVARIANT_CHECKERS, type InvariantChecker } from './invariants/index.ts';
import type { MachineState } from './state.ts';
import { wireReceive } from './wire.ts';

/** The checkers that look at each kind of event. */
const CHECKERS_BY_KIND = new Map<string, InvariantChecker[]>();
for (const checker of INVARIANT_CHECKERS) {
  for (const kind of checker.kinds) CHECKERS_BY_KIND.set(kind, [...(CHECKERS_BY_KIND.get(kind) ?? []), checker]);
}

/**
 * The version of what events mean: bump it when the machine decides differently from the
 * same state (other events, other fields, another order) or evolve folds an event into
 * another state. Runs record it; a recording of another version is refused rather than
 * failing verify, since re-execution would no longer reproduce it.
 * 2: the invariants over the tables (guest-table-confined, iommu-table-confined,
 *    vlan-confined) and net.frame folded into the switch's ingress record.
 * 3: a pCPU with nothing to run sleeps (one sched.idle) instead of passing every turn.
 * 4: an idle jump of the clock stops at the next scenario input.
 */
export const MACHINE_VERSION = 4;

export class Machine {
  private events: Event[] = [];
  /** Violations found in the current step; almost always none, so allocated on demand. */
  private breaches: Event[] | null = null;

  /** @param state the working state; the machine mutates it in place. */
  constructor(readonly state: MachineState) {}

  emit<K extends EventKind>(kind: K, fields: EventFields<K>): void {
    this.apply(makeEvent(kind, fields));
  }

  /**
   * Applies an event the caller built itself (for the hottest kinds, to skip makeEvent): it
   * must be what makeEvent would build, its fields in schema order.
   */
  emitEvent(event: Event): void {
    this.apply(event);
  }

  private apply(event: Event): void {
    const checkers = CHECKERS_BY_KIND.get(event.kind);
    if (checkers !== undefined) {
      for (const checker of checkers) {
        const breach = checker.check(this.state, event);
        if (breach !== undefined) (this.breaches ??= []).push(makeEvent('violation', { invariant: checker.name, ...breach }));
      }
    }
    evolve(this.state, event, true);
    this.events.push(event);
  }

  /** Decides and applies one step; returns its events (the first is a step opener). */
  step(): Event[] {
    assert(!this.state.halted, 'step after machine.halt');
    this.events = [];
    this.breaches = null;
    this.decide();
    return this.finishStep();
  }

  /** Appends the step's violations (found before each event was applied) and returns its events. */
  private finishStep(): Event[] {
    if (this.breaches !== null) {
      for (const violation of this.breaches) {
        evolve(this.state, violation, true);
        this.events.push(violation);
      }
    }
    return this.events;
  }

  /**
   * Applies a modification from outside the machine as an `input` step: a scenario input
   * (its index) or a fork's modification (index -1). The caller validated it.
   */
  input(index: number, key: string, value: string): Event[] {
    this.events = [];
    this.breaches = null;
    this.emit('input', { index, key, value });
    actOnInput(this, key, value);
    return this.finishStep();
  }

  /** True when the machine has nothing left to do but halt. */
  get finished(): boolean {
    const s = this.state;
    return s.booted && !s.halted && !anyRunnable(s) && this.nextWake() === undefined;
  }

  /** The next tick something is due: a dom0 action, or a halted vCPU's timer. */
  private nextWake(): number | undefined {
    const s = this.state;
    const ticks: number[] = [];
    const action = s.config.dom0Actions[s.dom0Next];
    if (action !== undefined) ticks.push(action.at);
    const frame = s.config.network.wire[s.io.wireNext];
    if (frame !== undefined) ticks.push(frame.at);
    for (const domain of s.domains.values()) {
      if (domain.status !== 'running') continue;
      for (const vcpu of domain.vcpus) {
        const wake = vcpu.x86 ? wakeTick(vcpu.x86) : undefined;
        if (wake !== undefined) ticks.push(wake);
      }
    }
    return ticks.length ? Math.min(...ticks) : undefined;
  }

  private decide(): void {
    const s = this.state;
    if (!s.booted) return this.boot();
    const action = s.config.dom0Actions[s.dom0Next];
    if (action !== undefined && action.at <= s.tick) return runDom0Action(this, s.dom0Next);
    const frame = s.config.network.wire[s.io.wireNext];
    if (frame !== undefined && frame.at <= s.tick) return wireReceive(this, s.io.wireNext);
    if (wakeSleeper(this)) return;
    const current = s.sched.pcpus[s.sched.turn];
    // The common case first: the vCPU on this pCPU goes on, with no need to look at the others.
    if (current.dom !== NO_DOMAIN && current.quantumLeft > 0 && isRunnable(s, current.dom, current.vcpu)) {
      return this.runVcpu(s.sched.turn, current);
    }
    if (passesTurn(s)) return passTurn(this);
    const runnable = runnableVcpus(s);
    if (runnable.length > 0) return scheduleStep(this, runnable, (pcpu, ref) => this.runVcpu(pcpu, ref));
    const wake = this.nextWake();
    if (wake !== undefined) {
      // The jump stops at the next scenario input too: the recorder delivers it at its tick
      // (nextStep), and a jump over it delivered it late (with two or more pCPUs: a lone one
      // ends its round, and the clock moves a tick, before it would jump).
      const input = s.config.inputs[s.inputNext];
      const until = input === undefined ? wake : Math.min(wake, input.at);
      return this.emit('sched.idle', { pcpu: s.sched.turn, ticks: Math.max(1, until - s.tick) });
    }
    this.emit('machine.halt', { reason: 'all guests finished' });
  }

  private runVcpu(pcpu: number, ref: VcpuRef): void {
    const domain = this.state.domains.get(ref.dom)!;
    const x86 = domain.vcpus[ref.vcpu].x86;
    if (x86) runX86Step({ host: this, pcpu, domain, vcpu: ref.vcpu, x86 });
    else runGuestOperation(this, pcpu, ref);
  }

  /** Boot: dom0 and the domains that start at tick 0. */
  private boot(): void {
    const c = this.state.config;
    this.emit('machine.boot', { profile: this.state.profile, frames: c.frames, pcpus: c.pcpus, seed: c.seed });
    createDomain(this, 'dom0', c.dom0MemoryKiB, 0);
    // Xen turns VT-d on before dom0's PF driver enables the VFs (secure; vanilla has no VT-d).
    if (this.state.profile === 'secure') vtdBoot(this);
    nicBoot(this);
    for (const spec of c.domains) {
      if (spec.start === 0) createDomain(this, spec.name, spec.memoryKiB, spec.vcpus);
    }
  }
}


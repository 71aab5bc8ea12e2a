/**
 * Re-executes what an x86 step did with the processor, to see what the recording does not
 * keep: an instruction's fetch and loads, the page walks behind them, and exactly which
 * bytes its stores set. A cpu.step carries only the register delta and the stores follow as
 * mem.write events, so reads and fetches are found here, by running the interpreter again
 * from the state before the step on a bus that notes every access (the vCPU's own MMU,
 * GuestBus, so translation and SMM are the machine's). Nothing is emitted or committed.
 *
 * The decision tree mirrors the hypervisor's vCPU driver (hypervisor/vmx/vcpu-run.ts):
 * which opener the step has says which path the vCPU took, and the same state gives the
 * same path.
 */
import type { Event, Mfn } from '../../events/schema.ts';
import { AssertionFailed, assert } from '../../events/errors.ts';
import { PAGE_SIZE } from '../../core/hypervisor/config.ts';
import type { Domain, Host, X86Vcpu } from '../../core/hypervisor/state.ts';
import type { MachineState } from '../../core/machine/state.ts';
import { GuestBus } from '../../core/hypervisor/vmx/guest-bus.ts';
import type { AccessSize, Fault } from '../../core/hardware/cpu/bus.ts';
import { BLOCKING_BY_STI, cloneCpu, type CpuState } from '../../core/hardware/cpu/cpu-state.ts';
import { fetchInstruction, stepInto } from '../../core/hardware/cpu/interpreter.ts';
import { deliverEvent, type EventDetail } from '../../core/hardware/cpu/exceptions.ts';
import { ExitReason, Vector, type StepOutcome } from '../../core/hardware/cpu/outcomes.ts';
import { interceptsException, xenHvmControls } from '../../core/hardware/vmx/controls.ts';
import { lapicVector, timerDue } from '../../core/hardware/vmx/lapic.ts';
import { interruptsEnabled } from '../../core/hypervisor/vmx/vcpu.ts';
import type { Instruction } from '../../core/hardware/x86/index.ts';
import type { HostRange } from './address.ts';

export type CpuAccessKind = 'fetch' | 'read' | 'write' | 'walk-read' | 'walk-write';

/** One access the processor made, with the host bytes it reached (split at frame boundaries). */
export interface CpuAccess {
  kind: CpuAccessKind;
  /** The linear address (for walk accesses: the guest-physical address of the entry). */
  linear: number;
  length: number;
  pieces: HostRange[];
  /** A read's value (little-endian), as the instruction got it. */
  value?: number;
}

/** What re-executing one x86 step found. */
export interface ReplayedStep {
  dom: number;
  vcpu: number;
  /** The registers before the step. */
  before: CpuState;
  /** After a retired instruction: the registers it left (what the cpu.step's delta records). */
  after?: CpuState;
  /** The instruction the vCPU attempted, if it attempted one (not for an injection or an interrupt exit). */
  instruction: Instruction | undefined;
  /** The event delivered through the IDT in this step, if any (its pushes are writes). */
  delivered: number | undefined;
  /** Every access made, in order; writes only when committed (a faulting instruction stores nothing). */
  accesses: CpuAccess[];
  /**
   * The physical writes the step commits, in the order the machine emits them as mem.write:
   * page-walk A/D updates, then the stores grouped into runs within a frame (GuestBus.commit).
   */
  commits: { kind: 'walk' | 'store'; range: HostRange; linear: number }[];
  outcome: StepOutcome['kind'] | 'delivered' | 'none';
}

const CONTROLS = { ept: xenHvmControls('ept'), shadow: xenHvmControls('shadow') };

/** The bus of a replayed step: the vCPU's MMU, noting what it is asked. */
class NotingBus extends GuestBus {
  readonly accesses: CpuAccess[] = [];
  /** Stores not yet committed: linear byte -> host byte, in program order. */
  private pending: CpuAccess[] = [];
  readonly walkRanges: HostRange[] = [];

  constructor(host: Host, domain: Domain, vcpu: number, pcpu: number) {
    super(host, domain, vcpu, pcpu);
  }

  /** Host pieces of [linear, linear+length) (already translated by the access that succeeded). */
  pieces(linear: number, length: number, access: 'read' | 'write' | 'fetch'): HostRange[] {
    const out: HostRange[] = [];
    for (let at = 0; at < length;) {
      const address = (linear + at) >>> 0;
      const offset = address % PAGE_SIZE;
      const n = Math.min(length - at, PAGE_SIZE - offset);
      const mfn = this.translate(address, access);
      assert(typeof mfn === 'number', () => `a replayed access at 0x${address.toString(16)} no longer translates`);
      out.push({ mfn, offset, length: n });
      at += n;
    }
    return out;
  }

  override read(linear: number, bytes: AccessSize): number | Fault {
    const value = super.read(linear, bytes);
    if (typeof value === 'number') this.accesses.push({ kind: 'read', linear: linear >>> 0, length: bytes, pieces: this.pieces(linear, bytes, 'read'), value });
    return value;
  }

  override write(linear: number, bytes: AccessSize, value: number): Fault | undefined {
    const fault = super.write(linear, bytes, value);
    if (fault === undefined) this.pending.push({ kind: 'write', linear: linear >>> 0, length: bytes, pieces: this.pieces(linear, bytes, 'write') });
    return fault;
  }

  override physicalRead32(mfn: Mfn, gpa: number): number {
    this.accesses.push({ kind: 'walk-read', linear: gpa >>> 0, length: 4, pieces: [{ mfn, offset: gpa % PAGE_SIZE, length: 4 }] });
    return super.physicalRead32(mfn, gpa);
  }

  override physicalWrite32(gpa: number, mfn: Mfn, value: number): void {
    const range = { mfn, offset: gpa % PAGE_SIZE, length: 4 };
    this.walkRanges.push(range);
    this.accesses.push({ kind: 'walk-write', linear: gpa >>> 0, length: 4, pieces: [range] });
    super.physicalWrite32(gpa, mfn, value);
  }

  override discardStores(): void {
    this.pending = [];
    super.discardStores();
  }

  /** The pending stores took effect (the instruction retired, or the delivery completed). */
  commitStores(): void {
    this.accesses.push(...this.pending);
    this.pending = [];
  }

  noteFetch(eip: number, length: number): void {
    this.accesses.push({ kind: 'fetch', linear: eip >>> 0, length, pieces: this.pieces(eip, length, 'fetch') });
  }

  /** The committed stores as GuestBus.commit writes them: by linear address, contiguous runs within a frame. */
  committedRuns(): { range: HostRange; linear: number }[] {
    if (!this.accesses.some((a) => a.kind === 'write')) return [];
    const bytes = new Map<number, { mfn: Mfn; offset: number }>();
    for (const access of this.accesses) {
      if (access.kind !== 'write') continue;
      let at = access.linear;
      for (const piece of access.pieces) {
        for (let i = 0; i < piece.length; i++) bytes.set((at + i) >>> 0, { mfn: piece.mfn, offset: piece.offset + i });
        at += piece.length;
      }
    }
    const runs: { range: HostRange; linear: number }[] = [];
    for (const linear of [...bytes.keys()].sort((a, b) => a - b)) {
      const { mfn, offset } = bytes.get(linear)!;
      const last = runs.at(-1);
      if (last !== undefined && last.range.mfn === mfn && last.linear + last.range.length === linear) last.range.length++;
      else runs.push({ range: { mfn, offset, length: 1 }, linear });
    }
    return runs;
  }
}

const refuse = (): never => {
  throw new AssertionFailed('a replayed x86 step tried to emit an event');
};
const hosts = new WeakMap<MachineState, Host>();

/** A host that may only be read: a replay must never change the state it runs on. */
function readOnlyHost(state: MachineState): Host {
  let host = hosts.get(state);
  if (host === undefined) hosts.set(state, (host = { state, emit: refuse, emitEvent: refuse }));
  return host;
}

/** The event enterGuest injects at this VM entry, as vcpu-run.ts chooses it. */
function injectionAt(x86: X86Vcpu, tick: number): { vector: number; errorCode: number; cr2: number } | null {
  if (x86.injection !== null) return x86.injection;
  const timerPending = x86.lapic.pending || timerDue(x86.lapic, tick);
  const external = x86.irr.length > 0 ? x86.irr[x86.irr.length - 1] : -1;
  if (!interruptsEnabled(x86)) return null;
  if (timerPending && lapicVector(x86.lapic) >= external) return { vector: lapicVector(x86.lapic), errorCode: -1, cr2: 0 };
  return external >= 0 ? { vector: external, errorCode: -1, cr2: 0 } : null;
}

/** The x86 vCPU a step opener names, if the step is one the processor ran. */
function x86Opener(event: Event): { dom: number; vcpu: number; pcpu: number } | undefined {
  switch (event.kind) {
    case 'cpu.step':
    case 'exception':
    case 'vm.exit':
      return { dom: event.dom, vcpu: event.vcpu, pcpu: event.pcpu };
    case 'vm.entry':
      return { dom: event.dom, vcpu: event.vcpu, pcpu: -1 };
    default:
      return undefined;
  }
}

/**
 * Re-executes the x86 step that `opener` opens, on `state` as it was before the opener (the
 * state is read, never changed). Undefined for steps the processor did not run.
 * `pcpu` for a vm.entry (which does not name one): the pCPU the scheduler put the vCPU on.
 */
export function replayX86Step(state: MachineState, opener: Event): ReplayedStep | undefined {
  const who = x86Opener(opener);
  if (who === undefined) return undefined;
  const domain = state.domains.get(who.dom);
  const x86 = domain?.vcpus[who.vcpu]?.x86;
  assert(domain !== undefined && x86 != null, () => `${opener.kind} names x86 vCPU ${who.dom}.${who.vcpu}, which does not exist`);
  const pcpu = who.pcpu >= 0 ? who.pcpu : state.sched.pcpus.findIndex((p) => p.dom === who.dom && p.vcpu === who.vcpu);
  const bus = new NotingBus(readOnlyHost(state), domain, who.vcpu, Math.max(0, pcpu));
  const step: ReplayedStep = {
    dom: who.dom, vcpu: who.vcpu, before: cloneCpu(x86.cpu), instruction: undefined, delivered: undefined, accesses: bus.accesses, commits: [], outcome: 'none',
  };
  if (opener.kind === 'vm.entry' || (opener.kind === 'vm.exit' && !x86.inGuest)) {
    deliverInjection(step, bus, x86, state.tick);
  } else if (!(opener.kind === 'vm.exit' && (opener.reason === ExitReason.EXTERNAL_INTERRUPT || opener.reason === ExitReason.INTERRUPT_WINDOW))) {
    executeInstruction(step, bus, domain, x86, state.tick);
  }
  step.commits = [
    ...bus.walkRanges.map((range) => ({ kind: 'walk' as const, range, linear: -1 })),
    ...bus.committedRuns().map((run) => ({ kind: 'store' as const, ...run })),
  ];
  return step;
}

function executeInstruction(step: ReplayedStep, bus: NotingBus, domain: Domain, x86: X86Vcpu, tick: number): void {
  const fetched = fetchInstruction(bus, x86.cpu.eip);
  if (fetched.kind === 'instruction') {
    step.instruction = fetched;
    bus.noteFetch(x86.cpu.eip, fetched.length);
  }
  const scratch = cloneCpu(x86.cpu);
  const outcome = stepInto(x86.cpu, scratch, bus, CONTROLS[domain.paging], tick);
  step.outcome = outcome.kind;
  if (outcome.kind === 'retired') {
    // As the vCPU driver does: the STI shadow lasts exactly one instruction.
    scratch.interruptibility = outcome.interruptShadow ? BLOCKING_BY_STI : 0;
    step.after = scratch;
    bus.commitStores();
    return;
  }
  bus.discardStores();
  // As vcpu-run.ts decides: INT n is delivered through the IDT whatever the exception bitmap says.
  if (outcome.kind === 'exit' || (outcome.software !== true && interceptsException(domain.paging, outcome.vector))) return;
  const detail: EventDetail = { cr2: outcome.cr2, instructionLength: outcome.software === true ? outcome.length : undefined };
  deliver(step, bus, x86, outcome.vector, outcome.errorCode, outcome.software === true, detail);
}

function deliverInjection(step: ReplayedStep, bus: NotingBus, x86: X86Vcpu, tick: number): void {
  const injection = injectionAt(x86, tick);
  if (injection === null) return;
  const cr2 = injection.vector === Vector.PF ? injection.cr2 : undefined;
  deliver(step, bus, x86, injection.vector, injection.errorCode < 0 ? null : injection.errorCode, false, { cr2 });
}

function deliver(step: ReplayedStep, bus: NotingBus, x86: X86Vcpu, vector: number, errorCode: number | null, software: boolean, detail: EventDetail): void {
  const result = deliverEvent(cloneCpu(x86.cpu), bus, vector, errorCode, software, detail);
  if (typeof result === 'object' || result === 'triple-fault') {
    bus.discardStores();
    return;
  }
  step.delivered = detail.delivered?.vector ?? vector;
  step.outcome = 'delivered';
  bus.commitStores();
}

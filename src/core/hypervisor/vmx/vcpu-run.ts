/**
 * Runs an x86 vCPU for one step under VMX: enter the guest, let it retire one instruction,
 * deliver the exception it raised through its IDT, or take the VM exit it caused and run the
 * hypervisor's handler. Every step starts with its opener (vm.entry, cpu.step, exception or
 * vm.exit); what the instruction did to the TLB and memory follows it.
 */
import type { EventOf } from '../../../events/schema.ts';
import { applyCpuDelta, BLOCKING_BY_STI, cloneCpu, copyCpuInto, cpuDelta, resetCpu, type CpuState } from '../../hardware/cpu/cpu-state.ts';
import { causesDoubleFault, deliverEvent, type EventDetail } from '../../hardware/cpu/exceptions.ts';
import { stepInto, type ExitControls } from '../../hardware/cpu/interpreter.ts';
import { ExitReason, Vector } from '../../hardware/cpu/outcomes.ts';
import { interceptsException, xenHvmControls } from '../../hardware/vmx/controls.ts';
import { lapicVector, nextDeadline, timerDue } from '../../hardware/vmx/lapic.ts';
import { destroyDomain } from '../domains.ts';
import { advanceTurn, usedPcpu } from '../pcpu-turns.ts';
import { x86Of, type Domain, type ExitInfo, type Host, type HostState, type X86Vcpu } from '../state.ts';
import type { ExitAction, Injection } from './exit-action.ts';
import { GuestBus } from './guest-bus.ts';
import { handleExit } from './handlers.ts';
import { interruptsEnabled } from './vcpu.ts';

const CONTROLS: Record<'ept' | 'shadow', ExitControls> = { ept: xenHvmControls('ept'), shadow: xenHvmControls('shadow') };
const controlsFor = (paging: 'ept' | 'shadow'): ExitControls => CONTROLS[paging];

export interface X86Context {
  host: Host;
  pcpu: number;
  domain: Domain;
  vcpu: number;
  x86: X86Vcpu;
}

export function runX86Step(ctx: X86Context): void {
  const { x86, host } = ctx;
  if (!x86.inGuest) return enterGuest(ctx);
  if (timerDue(x86.lapic, host.state.tick)) return takeExit(ctx, exitInfo(ExitReason.EXTERNAL_INTERRUPT), { afterExit: () => fireTimer(ctx) });
  if ((x86.lapic.pending || x86.irr.length > 0) && interruptsEnabled(x86)) return takeExit(ctx, exitInfo(ExitReason.INTERRUPT_WINDOW));
  executeInstruction(ctx);
}

/** The scheduler's time slice is over: the host timer exits the guest. */
export function preempt(ctx: X86Context): void {
  takeExit(ctx, exitInfo(ExitReason.EXTERNAL_INTERRUPT), { preempted: true });
}

function exitInfo(reason: number, fields: Partial<ExitInfo> = {}): ExitInfo {
  return { reason, qualification: 0, gla: -1, gpa: -1, length: 0, vector: -1, errorCode: -1, ...fields };
}

function emitTimer(ctx: X86Context, deadline: number, pending: boolean): void {
  const { lvt, initialCount } = ctx.x86.lapic;
  ctx.host.emit('lapic.timer', { dom: ctx.domain.id, vcpu: ctx.vcpu, lvt, initialCount, deadline, pending });
}

/** The timer fires while the guest runs: its interrupt becomes pending. */
function fireTimer(ctx: X86Context): void {
  emitTimer(ctx, nextDeadline(ctx.x86.lapic, ctx.host.state.tick), true);
}

/**
 * The copy an instruction executes on. One for all: it is overwritten before every
 * instruction and read only until the step's cpu.step is built (evolve then applies the
 * delta to the vCPU's own state), so no state lives in it between steps.
 */
const SCRATCH_CPU: CpuState = resetCpu(0, 0);

function executeInstruction(ctx: X86Context): void {
  const { host, domain, vcpu, pcpu, x86 } = ctx;
  const before = x86.cpu;
  const cpu = SCRATCH_CPU;
  copyCpuInto(cpu, before);
  const bus = new GuestBus(host, domain, vcpu, pcpu);
  const outcome = stepInto(before, cpu, bus, controlsFor(domain.paging), host.state.tick);
  if (outcome.kind === 'retired') {
    // The STI shadow lasts exactly one instruction. (Single-step traps, TF, are not modelled.)
    cpu.interruptibility = outcome.interruptShadow ? BLOCKING_BY_STI : 0;
    // Built here rather than by makeEvent (this runs per instruction): the schema's field order.
    host.emitEvent({ kind: 'cpu.step', dom: domain.id, vcpu, pcpu, eip: before.eip, next: cpu.eip, delta: cpuDelta(before, cpu, false) });
    bus.commit(true);
    if (outcome.tlbFlush) host.emit('tlb.flush', { dom: domain.id, vcpu, scope: 'all', page: -1 });
    if (outcome.invlpg !== undefined) host.emit('tlb.flush', { dom: domain.id, vcpu, scope: 'page', page: outcome.invlpg >>> 12 });
    return;
  }
  if (outcome.kind === 'exit') return takeExit(ctx, faultExit(bus, outcome, outcome.length), { bus });
  // The exception bitmap selects exceptions, not software interrupts: INT n delivers
  // through the guest's IDT whatever its vector (SDM Vol. 3C, "Other Causes of VM Exits"),
  // so a guest's `int 14` under shadow paging is its own, not a shadow #PF (taken for one,
  // it looped on a fill of page 0).
  if (outcome.software !== true && interceptsException(domain.paging, outcome.vector)) {
    return takeExit(ctx, exitInfo(ExitReason.EXCEPTION_NMI, {
      qualification: outcome.cr2 ?? 0, vector: outcome.vector, errorCode: outcome.errorCode ?? -1,
    }), { bus });
  }
  deliverToGuest(ctx, bus, outcome.vector, outcome.errorCode, outcome.cr2, outcome.software === true, outcome.length ?? 0);
}

/** The exit information of an exit-type fault (an EPT violation, a shadow-table #PF). */
function faultExit(bus: GuestBus, fault: { reason: number; qualification: number; gla: number | null; gpa: number | null }, length = 0): ExitInfo {
  const info = exitInfo(fault.reason, { qualification: fault.qualification, gla: fault.gla ?? -1, gpa: fault.gpa ?? -1, length });
  if (fault.reason === ExitReason.EXCEPTION_NMI && bus.shadowFault) {
    return { ...info, gpa: -1, vector: Vector.PF, errorCode: bus.shadowFault.errorCode };
  }
  return info;
}

/** An exception the guest handles itself: delivered through its IDT. */
function deliverToGuest(ctx: X86Context, bus: GuestBus, vector: number, errorCode: number | null, cr2: number | undefined, software: boolean, length: number): void {
  const { host, domain, vcpu, pcpu, x86 } = ctx;
  bus.discardStores();
  const cpu = cloneCpu(x86.cpu);
  const detail: EventDetail = { cr2, instructionLength: software ? length : undefined };
  const result = deliverEvent(cpu, bus, vector, errorCode, software, detail);
  // Delivery met a fault the hypervisor owns: exit. The instruction has not retired, so once
  // the exit is handled it runs again and raises the same exception.
  if (typeof result === 'object' && result.kind === 'exit') return takeExit(ctx, faultExit(bus, result), { bus, delivering: { vector, software } });
  if (typeof result === 'object' || result === 'triple-fault') return takeExit(ctx, exitInfo(ExitReason.TRIPLE_FAULT), { bus });
  // The event as the handler received it: a broken gate or a fault on the way changes it.
  const delivered = detail.delivered!;
  host.emit('exception', {
    dom: domain.id, vcpu, pcpu, vector: delivered.vector, errorCode: delivered.errorCode ?? -1,
    cr2: delivered.vector === Vector.PF || delivered.vector === Vector.DF ? cpu.cr2 : -1, delta: cpuDelta(x86.cpu, cpu),
  });
  bus.commit(true);
}

/**
 * VM exit: record it, commit what the attempt did to the TLB, run the handler, and leave
 * the guest state and the injection for the next VM entry.
 */
interface ExitOptions {
  /** The bus of the attempt that exited: its TLB fills and A/D bits are committed. */
  bus?: GuestBus;
  /** Events that belong to the exit itself (the timer firing). */
  afterExit?: () => void;
  /** The scheduler's preemption: no handler, the vCPU just leaves the guest. */
  preempted?: boolean;
  /** The exit interrupted the delivery of this event (the IDT-vectoring information). */
  delivering?: { vector: number; software: boolean };
}

function takeExit(ctx: X86Context, exit: ExitInfo, { bus, afterExit, preempted = false, delivering }: ExitOptions = {}): void {
  const { host, domain, vcpu, pcpu } = ctx;
  host.emit('vm.exit', { dom: domain.id, vcpu, pcpu, ...exit });
  bus?.commit(false);
  afterExit?.();
  if (preempted) return;
  const x86 = host.state.domains.get(domain.id)!.vcpus[vcpu].x86!;
  let action = handleExit({ host, domain: host.state.domains.get(domain.id)!, vcpu, pcpu, x86, exit });
  if (delivering && action.kind === 'resume' && action.inject !== null) action = combineWithDelivery(action, delivering);
  switch (action.kind) {
    case 'resume': return writeVmcs(ctx, x86.cpu, action.cpu, action.inject);
    case 'halt': host.emit('vcpu.halt', { dom: domain.id, vcpu, delta: cpuDelta(x86.cpu, action.cpu) }); return;
    case 'shutdown': destroyDomain(host, domain.id, 'shutdown'); return;
    case 'crash': destroyDomain(host, domain.id, `crashed: ${action.reason}`); return;
    case 'deschedule': return;
  }
}

/**
 * The handler of an exit taken while an event was being delivered wants to give the guest a
 * fault of its own (shadow paging reflecting the guest's #PF): the SDM's rules for a fault
 * during delivery decide what the guest gets - that fault, a double fault, or (while a
 * double fault was being delivered) a triple fault.
 */
function combineWithDelivery(action: Extract<ExitAction, { kind: 'resume' }>, delivering: { vector: number; software: boolean }): ExitAction {
  const second = action.inject!;
  if (delivering.vector === Vector.DF && !delivering.software) return { kind: 'crash', reason: 'triple fault' };
  if (causesDoubleFault(delivering.vector, delivering.software, second.vector)) {
    return { ...action, inject: { vector: Vector.DF, errorCode: 0, cr2: second.cr2 } };
  }
  return action;
}

function writeVmcs(ctx: X86Context, before: CpuState, after: CpuState, inject: Injection | null): void {
  const delta = cpuDelta(before, after);
  if (delta.length === 0 && inject === null) return;
  ctx.host.emit('vmcs.write', {
    dom: ctx.domain.id, vcpu: ctx.vcpu, delta, inject: inject?.vector ?? -1, errorCode: inject?.errorCode ?? -1, cr2: inject?.cr2 ?? 0,
  });
}

/**
 * VM entry: inject the pending event (the handler's, or the timer's when the guest can take
 * it) through the guest's IDT, and go back to running the guest.
 */
function enterGuest(ctx: X86Context): void {
  const { host, domain, vcpu, pcpu, x86 } = ctx;
  const tick = host.state.tick;
  const fired = timerDue(x86.lapic, tick);
  const timerPending = x86.lapic.pending || fired;
  // The highest vector requested goes first, as the APIC prioritises; a remapped MSI and the timer compete so.
  const external = x86.irr.length > 0 ? x86.irr[x86.irr.length - 1] : -1;
  const canTake = x86.injection === null && interruptsEnabled(x86);
  const takeTimer = canTake && timerPending && lapicVector(x86.lapic) >= external;
  const takeExternal = canTake && !takeTimer && external >= 0;
  const injection = x86.injection ?? (takeTimer ? { vector: lapicVector(x86.lapic), errorCode: -1, cr2: 0 } : takeExternal ? { vector: external, errorCode: -1, cr2: 0 } : null);
  const cpu = cloneCpu(x86.cpu);
  const bus = new GuestBus(host, domain, vcpu, pcpu);
  let delivered: EventDetail['delivered'];
  if (injection !== null) {
    const cr2 = injection.vector === Vector.PF ? injection.cr2 : undefined;
    const detail: EventDetail = { cr2 };
    const result = deliverEvent(cpu, bus, injection.vector, injection.errorCode < 0 ? null : injection.errorCode, false, detail);
    // The injection stays pending (only vm.entry clears it): after the exit it is tried again.
    if (typeof result === 'object' && result.kind === 'exit') return takeExit(ctx, faultExit(bus, result), { bus, delivering: { vector: injection.vector, software: false } });
    if (typeof result === 'object' || result === 'triple-fault') return takeExit(ctx, exitInfo(ExitReason.TRIPLE_FAULT), { bus });
    delivered = detail.delivered!;
  }
  host.emit('vm.entry', { dom: domain.id, vcpu, delta: cpuDelta(x86.cpu, cpu), inject: delivered?.vector ?? -1, errorCode: delivered?.errorCode ?? -1 });
  bus.commit(true);
  if (fired || takeTimer) emitTimer(ctx, fired ? nextDeadline(x86.lapic, tick) : x86.lapic.deadline, timerPending && !takeTimer);
}

// ---- the fold of the vCPU's events ----

export function applyCpuStep(state: HostState, e: EventOf<'cpu.step'>): void {
  // x86Of's lookup with its checks inline (this runs per instruction).
  const x86 = state.domains.get(e.dom)?.vcpus[e.vcpu]?.x86;
  const cpu = (x86 === undefined || x86 === null ? x86Of(state, e.dom, e.vcpu) : x86).cpu;
  applyCpuDelta(cpu, e.delta);
  cpu.eip = e.next;
  usedPcpu(state, e.pcpu);
}

export function applyException(state: HostState, e: EventOf<'exception'>): void {
  applyCpuDelta(x86Of(state, e.dom, e.vcpu).cpu, e.delta);
  usedPcpu(state, e.pcpu);
}

export function applyExit(state: HostState, e: EventOf<'vm.exit'>): void {
  const x86 = x86Of(state, e.dom, e.vcpu);
  x86.inGuest = false;
  x86.exit = { reason: e.reason, qualification: e.qualification, gla: e.gla, gpa: e.gpa, length: e.length, vector: e.vector, errorCode: e.errorCode };
  advanceTurn(state, e.pcpu);
}

export function applyEntry(state: HostState, e: EventOf<'vm.entry'>): void {
  const x86 = x86Of(state, e.dom, e.vcpu);
  applyCpuDelta(x86.cpu, e.delta);
  x86.inGuest = true;
  x86.halted = false;
  x86.injection = null;
  // An external interrupt taken leaves the request register (one bit per vector, as in the APIC's IRR).
  if (e.inject >= 0 && x86.irr.includes(e.inject)) x86.irr = x86.irr.filter((v) => v !== e.inject);
}

export function applyVmcsWrite(state: HostState, e: EventOf<'vmcs.write'>): void {
  const x86 = x86Of(state, e.dom, e.vcpu);
  applyCpuDelta(x86.cpu, e.delta);
  x86.injection = e.inject < 0 ? null : { vector: e.inject, errorCode: e.errorCode, cr2: e.cr2 };
}

export function applyVcpuHalt(state: HostState, e: EventOf<'vcpu.halt'>): void {
  const x86 = x86Of(state, e.dom, e.vcpu);
  applyCpuDelta(x86.cpu, e.delta);
  x86.halted = true;
}

export function applyLapicTimer(state: HostState, e: EventOf<'lapic.timer'>): void {
  const { lvt, initialCount, deadline, pending } = e;
  x86Of(state, e.dom, e.vcpu).lapic = { lvt, initialCount, deadline, pending };
}

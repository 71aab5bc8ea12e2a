/**
 * An x86 vCPU as the VMCS and the local APIC hold it: its state at reset, and when it can take
 * an interrupt or wake from HLT. Pure functions of the vCPU.
 */
import { resetCpu } from '../../hardware/cpu/cpu-state.ts';
import { lapicMasked, resetLapic, timerDue } from '../../hardware/vmx/lapic.ts';
import type { DomainSpec } from '../config.ts';
import type { X86Vcpu } from '../state.ts';

const EFLAGS_IF = 1 << 9;

/** IF is set and no STI shadow blocks interrupts. */
export const interruptsEnabled = (x86: X86Vcpu): boolean => (x86.cpu.eflags & EFLAGS_IF) !== 0 && x86.cpu.interruptibility === 0;

/** A halted vCPU wakes for a pending (or due) interrupt it can take. */
export function canWake(x86: X86Vcpu, tick: number): boolean {
  return interruptsEnabled(x86) && (x86.lapic.pending || x86.irr.length > 0 || timerDue(x86.lapic, tick));
}

/** The tick a halted vCPU waits for, if any. */
export function wakeTick(x86: X86Vcpu): number | undefined {
  const lapic = x86.lapic;
  return x86.halted && interruptsEnabled(x86) && !lapic.pending && !lapicMasked(lapic) && lapic.deadline >= 0 ? lapic.deadline : undefined;
}

/** A vCPU at reset: out of the guest until its first VM entry (VMLAUNCH). */
export function newX86Vcpu(spec: DomainSpec, dom: number, vcpu: number): X86Vcpu {
  return {
    cpu: resetCpu(spec.image!.entry, spec.image!.stack),
    vpid: dom * 8 + vcpu + 1,
    exit: { reason: -1, qualification: 0, gla: -1, gpa: -1, length: 0, vector: -1, errorCode: -1 },
    inGuest: false,
    halted: false,
    injection: null,
    tlb: new Map(),
    shadow: new Map(),
    shadowCache: new Map(),
    lapic: resetLapic(),
    irr: [],
  };
}


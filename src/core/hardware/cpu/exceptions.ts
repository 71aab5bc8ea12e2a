// Delivery of exceptions and interrupts through the guest IDT in 32-bit protected mode
// (SDM Vol. 3, 6.10-6.15), at CPL 0 with flat segments: no stack switch, no privilege check,
// so delivery is "read the gate, push EFLAGS, CS, EIP [, error code], jump".
//
// Supported gates: 32-bit interrupt gates (type 0xE, clear IF) and 32-bit trap gates
// (type 0xF). Task gates need a TSS and 16-bit gates a 16-bit stack frame; the model has
// neither and treats them, like any other type, as an invalid gate: #GP.

import { ESP } from '../x86/index.ts';
import { assert } from '../../../events/errors.ts';
import type { CpuBus, Fault } from './bus.ts';
import { cloneCpu, copyCpuInto, Eflags } from './cpu-state.ts';
import type { CpuState } from './cpu-state.ts';
import { fetchInstruction } from './interpreter.ts';
import { Vector } from './outcomes.ts';

export type DeliveryResult = 'delivered' | 'double-fault' | 'triple-fault' | Fault;

export interface EventDetail {
  /** The faulting linear address of a #PF (the exception outcome's cr2); loaded into CR2 on delivery. */
  cr2?: number;
  /**
   * For software events (INT n, INT3, or an injected software interrupt): bytes from EIP to
   * the next instruction, whose address delivery pushes. Pass the outcome's `length` (or the
   * VM-entry instruction length); when absent the instruction at EIP is decoded again.
   */
  instructionLength?: number;
  /**
   * Filled in by deliverEvent on success: the event the guest's handler actually received,
   * which differs from the one raised when delivery itself faulted (a broken gate gives
   * #GP or #NP, a contributory fault gives #DF).
   */
  delivered?: { vector: number; errorCode: number | null };
}

/** The code segment selector pushed for every event: the flat ring-0 code segment. */
export const FLAT_CODE_SELECTOR = 0x08;

const GATE_BYTES = 8;
const INTERRUPT_GATE_32 = 0x0e;
const TRAP_GATE_32 = 0x0f;
const GATE_PRESENT = 1 << 15;
// Error code of a fault caused by an IDT gate (SDM Vol. 3, 6.13): bit 1 IDT, bit 0 EXT.
const ERROR_CODE_IDT = 1 << 1;
const ERROR_CODE_EXT = 1 << 0;
// Every fault during delivery is one of these at most; more means the bus keeps returning benign
// faults, which real hardware would loop on forever. The model calls that a shutdown.
const DELIVERY_ATTEMPTS_MAX = 8;

interface PendingEvent {
  readonly vector: number;
  readonly errorCode: number | null;
  readonly software: boolean;
  readonly cr2?: number;
}

const CONTRIBUTORY: ReadonlySet<number> = new Set([Vector.DE, Vector.TS, Vector.NP, Vector.SS, Vector.GP]);

/**
 * SDM Vol. 3, Table 6-5: a contributory fault while delivering a contributory fault, or a
 * contributory fault or #PF while delivering a #PF, becomes a double fault. Everything else
 * (benign first events, INT n, external interrupts) is handled serially.
 */
export function causesDoubleFault(first: number, firstSoftware: boolean, second: number): boolean {
  if (firstSoftware) return false;
  if (CONTRIBUTORY.has(first)) return CONTRIBUTORY.has(second);
  if (first === Vector.PF) return CONTRIBUTORY.has(second) || second === Vector.PF;
  return false;
}

function gateFault(vector: number, event: PendingEvent): Fault {
  const errorCode = (event.vector << 3) | ERROR_CODE_IDT | (event.software ? 0 : ERROR_CODE_EXT);
  return { kind: 'exception', vector, errorCode };
}

function push(cpu: CpuState, bus: CpuBus, value: number): Fault | undefined {
  const top = (cpu.gpr[ESP] - 4) >>> 0;
  const fault = bus.write(top, 4, value >>> 0);
  if (fault === undefined) cpu.gpr[ESP] = top;
  return fault;
}

interface Gate {
  readonly offset: number;
  readonly type: number;
}

/** Reads and checks the gate: over the limit or a bad type is #GP, not present is #NP (SDM INT n pseudo-code). */
function readGate(cpu: CpuState, bus: CpuBus, event: PendingEvent): Gate | Fault {
  if (event.vector * GATE_BYTES + GATE_BYTES - 1 > cpu.idtrLimit) return gateFault(Vector.GP, event);
  const address = cpu.idtrBase + event.vector * GATE_BYTES;
  const low = bus.read(address >>> 0, 4);
  if (typeof low !== 'number') return low;
  const high = bus.read((address + 4) >>> 0, 4);
  if (typeof high !== 'number') return high;
  const type = (high >>> 8) & 0x1f; // bits 12:8 (S = 0 and the 4-bit type) of the high dword
  if (type !== INTERRUPT_GATE_32 && type !== TRAP_GATE_32) return gateFault(Vector.GP, event);
  if ((high & GATE_PRESENT) === 0) return gateFault(Vector.NP, event);
  return { offset: ((high & 0xffff0000) | (low & 0xffff)) >>> 0, type };
}

/** One delivery attempt on a scratch CPU; undefined when the handler is entered. */
function deliverOnce(cpu: CpuState, bus: CpuBus, event: PendingEvent, returnEip: number): Fault | undefined {
  const gate = readGate(cpu, bus, event);
  if ('kind' in gate) return gate;
  const pushes = [cpu.eflags, FLAT_CODE_SELECTOR, returnEip];
  if (event.errorCode !== null && !event.software) pushes.push(event.errorCode);
  for (const value of pushes) {
    const fault = push(cpu, bus, value);
    if (fault !== undefined) return fault;
  }
  cpu.eip = gate.offset;
  let cleared = Eflags.TF | Eflags.NT | Eflags.RF | Eflags.VM;
  if (gate.type === INTERRUPT_GATE_32) cleared |= Eflags.IF;
  cpu.eflags = (cpu.eflags & ~cleared) >>> 0;
  if (event.cr2 !== undefined) cpu.cr2 = event.cr2 >>> 0;
  return undefined;
}

/** Where a software event returns to: the instruction after the one at EIP. */
function softwareReturnEip(cpu: CpuState, bus: CpuBus, instructionLength: number | undefined): number | Fault {
  if (instructionLength !== undefined) return (cpu.eip + instructionLength) >>> 0;
  const decoded = fetchInstruction(bus, cpu.eip);
  if (decoded.kind === 'instruction') return (cpu.eip + decoded.length) >>> 0;
  if (decoded.kind === 'exit') return { kind: 'exit', reason: decoded.reason, qualification: decoded.qualification, gla: decoded.gla, gpa: decoded.gpa };
  return { kind: 'exception', vector: decoded.vector, errorCode: decoded.errorCode, ...(decoded.cr2 === undefined ? {} : { cr2: decoded.cr2 }) };
}

function assertEvent(vector: number, errorCode: number | null, detail: EventDetail): void {
  assert(Number.isInteger(vector) && vector >= 0 && vector <= 255, () => `deliverEvent: vector ${vector} is not 0..255`);
  assert(errorCode === null || (Number.isInteger(errorCode) && errorCode >= 0 && errorCode <= 0xffffffff), () => `deliverEvent: bad error code ${errorCode}`);
  const length = detail.instructionLength;
  assert(length === undefined || (Number.isInteger(length) && length >= 1 && length <= 15), () => `deliverEvent: bad instruction length ${length}`);
}

/**
 * Delivers an event through the IDT: pushes EFLAGS, CS, EIP and (for a hardware event with
 * an error code: #DF #TS #NP #SS #GP #PF #AC) the error code, then enters the handler.
 * Faults (and external interrupts) push EIP itself; software events push the next EIP.
 *
 * A fault during delivery is handled as the SDM says: serially after a benign event, as a
 * double fault (vector 8, error code 0) after a contributory fault or #PF, and as a triple
 * fault (shutdown) during #DF delivery. On 'triple-fault' `cpu` is unchanged, as it is when
 * an exit-type fault (an EPT violation while pushing) is returned for the caller to handle
 * as a VM exit. Page faults during delivery load CR2 when they are delivered or escalate.
 */
export function deliverEvent(cpu: CpuState, bus: CpuBus, vector: number, errorCode: number | null, software: boolean, detail: EventDetail = {}): DeliveryResult {
  assertEvent(vector, errorCode, detail);
  let event: PendingEvent = { vector, errorCode, software, ...(detail.cr2 === undefined ? {} : { cr2: detail.cr2 }) };
  let returnEip: number | Fault = software ? softwareReturnEip(cpu, bus, detail.instructionLength) : cpu.eip;
  let result: 'delivered' | 'double-fault' = 'delivered';
  for (let attempt = 0; attempt < DELIVERY_ATTEMPTS_MAX; attempt += 1) {
    const scratch = cloneCpu(cpu);
    const fault = typeof returnEip === 'number' ? deliverOnce(scratch, bus, event, returnEip) : returnEip;
    if (fault === undefined) {
      copyCpuInto(cpu, scratch);
      detail.delivered = { vector: event.vector, errorCode: event.errorCode };
      return result;
    }
    if (fault.kind === 'exit') return fault;
    if (event.vector === Vector.DF && !event.software) return 'triple-fault';
    if (causesDoubleFault(event.vector, event.software, fault.vector)) {
      event = { vector: Vector.DF, errorCode: 0, software: false, ...(fault.cr2 === undefined ? {} : { cr2: fault.cr2 }) };
      result = 'double-fault';
    } else {
      event = { vector: fault.vector, errorCode: fault.errorCode, software: false, ...(fault.cr2 === undefined ? {} : { cr2: fault.cr2 }) };
    }
    // A fault raised while delivering is a fault of the interrupted instruction: it returns to EIP.
    returnEip = cpu.eip;
  }
  return 'triple-fault';
}

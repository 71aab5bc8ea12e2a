// Operand access for one executing instruction: ModRM/SIB effective addresses, registers of
// every width, memory through the bus, and the stack. A bus fault unwinds the instruction by
// throwing InstructionFault, which step() turns back into an outcome; because the handlers
// work on a scratch copy of the CPU, unwinding leaves the caller's state untouched.

import type { GeneralRegister, ImmediateOperand, Instruction, MemoryOperand, Operand, RegisterOperand } from '../x86/index.ts';
import { ESP } from '../x86/index.ts';
import { assert } from '../../../events/errors.ts';
import { sizeMask } from './arithmetic-flags.ts';
import type { OperandBits } from './arithmetic-flags.ts';
import type { AccessSize, CpuBus, Fault } from './bus.ts';
import type { ExitControls } from './controls.ts';
import type { CpuState } from './cpu-state.ts';
import { exception } from './outcomes.ts';
import type { ExceptionOutcome, ExitOutcome } from './outcomes.ts';

export interface ExecutionContext {
  /** The scratch copy the handlers mutate; step() commits it only if the instruction retires. */
  readonly cpu: CpuState;
  readonly bus: CpuBus;
  readonly controls: ExitControls;
  readonly tsc: number;
  readonly instruction: Instruction;
  /** Linear address of the instruction itself: where a REP iteration or a fault leaves EIP. */
  readonly instructionEip: number;
  /** Linear address of the next instruction (EIP after a normal retirement). */
  readonly nextEip: number;
}

/**
 * Internal unwinding from deep inside a handler; never leaves step() or deliverEvent(). A
 * signal, not an error: no Error subclass, so no stack trace is captured on every guest fault.
 */
export class InstructionFault {
  constructor(readonly outcome: ExceptionOutcome | ExitOutcome) {}
}

export function raise(vector: number, errorCode: number | null = null): never {
  throw new InstructionFault(exception(vector, errorCode));
}

/** Turns a bus fault into this instruction's outcome (an exit keeps the decoded instruction for the handler). */
export function faultOutcome(fault: Fault, instruction: Instruction | undefined): ExceptionOutcome | ExitOutcome {
  if (fault.kind === 'exception') {
    const base = { kind: 'exception', vector: fault.vector, errorCode: fault.errorCode } as const;
    return fault.cr2 === undefined ? base : { ...base, cr2: fault.cr2 };
  }
  const { reason, qualification, gla, gpa } = fault;
  const length = instruction?.length ?? 0;
  return instruction === undefined
    ? { kind: 'exit', reason, qualification, length, gla, gpa }
    : { kind: 'exit', reason, qualification, length, instruction, gla, gpa };
}

// ---- registers ------------------------------------------------------------------------

/** AL..BL are the low bytes of EAX..EBX; AH..BH (numbers 4-7) are bits 15:8 of EAX..EBX. */
export function readGpr(cpu: CpuState, register: GeneralRegister): number {
  const number = register.number;
  if (register.size === 32) return cpu.gpr[number];
  if (register.size === 16) return cpu.gpr[number] & 0xffff;
  return number < 4 ? cpu.gpr[number] & 0xff : (cpu.gpr[number - 4] >>> 8) & 0xff;
}

/** Writes of 8 and 16 bits keep the rest of the 32-bit register, as in 32-bit mode. */
export function writeGpr(cpu: CpuState, register: GeneralRegister, value: number): void {
  const number = register.number;
  if (register.size === 32) cpu.gpr[number] = value >>> 0;
  else if (register.size === 16) cpu.gpr[number] = ((cpu.gpr[number] & 0xffff0000) | (value & 0xffff)) >>> 0;
  else if (number < 4) cpu.gpr[number] = ((cpu.gpr[number] & ~0xff) | (value & 0xff)) >>> 0;
  else cpu.gpr[number - 4] = ((cpu.gpr[number - 4] & ~0xff00) | ((value & 0xff) << 8)) >>> 0;
}

// ---- memory ---------------------------------------------------------------------------

/** base + index * scale + displacement, modulo 2^32 (SDM Vol. 1, 3.7.5). */
export function effectiveAddress(cpu: CpuState, memory: MemoryOperand): number {
  let address = memory.displacement;
  if (memory.base !== null) address += cpu.gpr[memory.base.number];
  if (memory.index !== null) address += cpu.gpr[memory.index.number] * memory.scale;
  return address >>> 0;
}

export function readMemory(context: ExecutionContext, linear: number, bytes: AccessSize): number {
  const value = context.bus.read(linear >>> 0, bytes);
  if (typeof value !== 'number') throw new InstructionFault(faultOutcome(value, context.instruction));
  return (value & sizeMask((bytes * 8) as OperandBits)) >>> 0;
}

export function writeMemory(context: ExecutionContext, linear: number, bytes: AccessSize, value: number): void {
  const fault = context.bus.write(linear >>> 0, bytes, (value & sizeMask((bytes * 8) as OperandBits)) >>> 0);
  if (fault !== undefined) throw new InstructionFault(faultOutcome(fault, context.instruction));
}

// ---- resolved operands ----------------------------------------------------------------

/** A memory operand whose address has been computed once, before any register changes. */
export interface LinearLocation {
  readonly kind: 'linear';
  readonly linear: number;
  readonly bytes: AccessSize;
}

export type Location = RegisterOperand | ImmediateOperand | LinearLocation;

/**
 * Fixes where an operand lives. Handlers resolve all operands first so that an instruction
 * which writes a register used in its own address (XCHG [EAX], EAX) still uses the old value.
 */
export function locate(context: ExecutionContext, operand: Operand): Location {
  if (operand.kind === 'mem') {
    assert(operand.size === 8 || operand.size === 16 || operand.size === 32, () => `cpu: ${context.instruction.mnemonic} has a ${operand.size}-bit data operand`);
    return { kind: 'linear', linear: effectiveAddress(context.cpu, operand), bytes: (operand.size / 8) as AccessSize };
  }
  assert(operand.kind !== 'rel', () => `cpu: ${context.instruction.mnemonic} uses a relative operand as data`);
  return operand;
}

export function locationBits(location: Location): OperandBits {
  if (location.kind === 'linear') return (location.bytes * 8) as OperandBits;
  if (location.kind === 'imm') return location.size;
  assert(location.register.kind === 'gpr', 'cpu: control register used as a data operand');
  return location.register.size;
}

export function load(context: ExecutionContext, location: Location): number {
  if (location.kind === 'imm') return location.value;
  if (location.kind === 'linear') return readMemory(context, location.linear, location.bytes);
  assert(location.register.kind === 'gpr', 'cpu: control register read as a data operand');
  return readGpr(context.cpu, location.register);
}

export function store(context: ExecutionContext, location: Location, value: number): void {
  if (location.kind === 'linear') {
    writeMemory(context, location.linear, location.bytes, value);
    return;
  }
  assert(location.kind === 'reg' && location.register.kind === 'gpr', 'cpu: store to an immediate or control register');
  writeGpr(context.cpu, location.register, value);
}

/** Resolves and reads operand `index` of the current instruction. */
export function operandAt(context: ExecutionContext, index: number): Location {
  const operand = context.instruction.operands[index];
  assert(operand !== undefined, () => `cpu: ${context.instruction.mnemonic} has no operand ${index}`);
  return locate(context, operand);
}

// ---- stack (always 32-bit: flat SS with the B flag set) -------------------------------

export function push(context: ExecutionContext, value: number): void {
  const top = (context.cpu.gpr[ESP] - 4) >>> 0;
  writeMemory(context, top, 4, value);
  context.cpu.gpr[ESP] = top;
}

export function pop(context: ExecutionContext): number {
  const value = readMemory(context, context.cpu.gpr[ESP], 4);
  context.cpu.gpr[ESP] = (context.cpu.gpr[ESP] + 4) >>> 0;
  return value;
}

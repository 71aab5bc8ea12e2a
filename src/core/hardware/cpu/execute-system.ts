// System instructions: MOV to/from CRn, HLT, CPUID, IN/OUT, RDMSR/WRMSR, RDTSC, INVLPG, LIDT,
// CLI/STI, NOP, PAUSE, VMCALL. Everything runs at CPL 0, so no privilege check ever fails;
// what remains are the VM exits the controls ask for (SDM Vol. 3, 26.1) and the #GP/#UD
// cases of the instructions themselves.

import { EAX, EBX, ECX, EDX } from '../x86/index.ts';
import type { GeneralRegister, Operand } from '../x86/index.ts';
import { assert } from '../../../events/errors.ts';
import { checkCr0, checkCr4, cr0ChangeFlushesTlb, cr4ChangeFlushesTlb } from './control-registers.ts';
import type { CpuState } from './cpu-state.ts';
import { Eflags } from './cpu-state.ts';
import { nativeCpuid } from './cpuid.ts';
import { effectiveAddress, raise, readGpr, readMemory } from './operands.ts';
import type { ExecutionContext } from './operands.ts';
import { ExitReason, RETIRED, Vector, instructionExit } from './outcomes.ts';
import type { RetiredOutcome, StepOutcome } from './outcomes.ts';

// ---- MOV CRn --------------------------------------------------------------------------

// Exit qualification for control-register accesses (SDM Vol. 3, Table 28-3).
const CR_ACCESS_TO_CR = 0;
const CR_ACCESS_FROM_CR = 1;

function crAccessQualification(crNumber: number, accessType: number, register: GeneralRegister): number {
  return crNumber | (accessType << 4) | (register.number << 8);
}

function registerOf(operand: Operand): GeneralRegister {
  assert(operand.kind === 'reg' && operand.register.kind === 'gpr', 'cpu: MOV CRn without a general register');
  return operand.register as GeneralRegister;
}

function crNumberOf(operand: Operand): 0 | 2 | 3 | 4 {
  assert(operand.kind === 'reg' && operand.register.kind === 'cr', 'cpu: MOV CRn without a control register');
  return operand.register.number;
}

export function movControlRegister(context: ExecutionContext): StepOutcome {
  const [destination, source] = context.instruction.operands;
  if (destination.kind === 'reg' && destination.register.kind === 'cr') {
    return movToControlRegister(context, crNumberOf(destination), registerOf(source));
  }
  return movFromControlRegister(context, crNumberOf(source), registerOf(destination));
}

/**
 * MOV from CR3 exits under "CR3-store exiting". CR0/CR4 reads return the real register: the
 * model has no read shadows, so the guest sees the bits the guest/host masks own.
 */
function movFromControlRegister(context: ExecutionContext, crNumber: 0 | 2 | 3 | 4, register: GeneralRegister): StepOutcome {
  if (crNumber === 3 && context.controls.cr3Store) {
    return instructionExit(ExitReason.CR_ACCESS, crAccessQualification(3, CR_ACCESS_FROM_CR, register), context.instruction);
  }
  const cpu = context.cpu;
  const values = { 0: cpu.cr0, 2: cpu.cr2, 3: cpu.cr3, 4: cpu.cr4 } as const;
  cpu.gpr[register.number] = values[crNumber];
  return RETIRED;
}

/**
 * MOV to CRn. The exit checks come before the #GP checks: a VM exit takes priority over
 * exceptions of the instruction other than #UD and privilege faults (SDM Vol. 3, 26.1.1), so
 * the hypervisor sees a guest's invalid CR0 write and decides what to inject. The guest/host
 * mask test compares with the current register, standing in for the read shadow.
 */
function movToControlRegister(context: ExecutionContext, crNumber: 0 | 2 | 3 | 4, register: GeneralRegister): StepOutcome {
  const { cpu, controls } = context;
  const value = readGpr(cpu, register);
  const exits =
    (crNumber === 0 && ((value ^ cpu.cr0) & controls.cr0Mask) !== 0) ||
    (crNumber === 3 && controls.cr3Load) ||
    (crNumber === 4 && ((value ^ cpu.cr4) & controls.cr4Mask) !== 0);
  if (exits) return instructionExit(ExitReason.CR_ACCESS, crAccessQualification(crNumber, CR_ACCESS_TO_CR, register), context.instruction);
  switch (crNumber) {
    case 0: return loadCr0(cpu, value);
    case 2:
      cpu.cr2 = value;
      return RETIRED;
    case 3:
      cpu.cr3 = value;
      return { kind: 'retired', tlbFlush: 'non-global' };
    case 4: return loadCr4(cpu, value);
  }
}

function loadCr0(cpu: CpuState, value: number): RetiredOutcome {
  const next = checkCr0(value);
  if (next === undefined) raise(Vector.GP, 0);
  const flush = cr0ChangeFlushesTlb(cpu.cr0, next);
  cpu.cr0 = next;
  return flush ? { kind: 'retired', tlbFlush: 'all' } : RETIRED;
}

function loadCr4(cpu: CpuState, value: number): RetiredOutcome {
  const next = checkCr4(value);
  if (next === undefined) raise(Vector.GP, 0);
  const flush = cr4ChangeFlushesTlb(cpu.cr4, next);
  cpu.cr4 = next;
  return flush ? { kind: 'retired', tlbFlush: 'all' } : RETIRED;
}

// ---- instructions that exit or are answered in place ----------------------------------

export function hlt(context: ExecutionContext): StepOutcome {
  if (context.controls.hlt) return instructionExit(ExitReason.HLT, 0, context.instruction);
  return { kind: 'retired', halted: true };
}

export function cpuid(context: ExecutionContext): StepOutcome {
  if (context.controls.cpuid) return instructionExit(ExitReason.CPUID, 0, context.instruction);
  const cpu = context.cpu;
  const result = nativeCpuid(cpu.gpr[EAX]);
  cpu.gpr[EAX] = result.eax >>> 0;
  cpu.gpr[EBX] = result.ebx >>> 0;
  cpu.gpr[ECX] = result.ecx >>> 0;
  cpu.gpr[EDX] = result.edx >>> 0;
  return RETIRED;
}

// I/O exit qualification (SDM Vol. 3, Table 28-5).
const IO_DIRECTION_IN = 1 << 3;
const IO_OPERAND_IMMEDIATE = 1 << 6;

/**
 * IN and OUT always end the step with an I/O exit, whatever controls.io says: the caller owns
 * every port and decides whether the access is a real VM exit or emulated in place. String
 * I/O and REP are not in the subset, so bits 4 and 5 stay 0.
 */
export function inOut(context: ExecutionContext): StepOutcome {
  const instruction = context.instruction;
  const isIn = instruction.mnemonic === 'in';
  const accumulator = isIn ? instruction.operands[0] : instruction.operands[1];
  const port = isIn ? instruction.operands[1] : instruction.operands[0];
  assert(accumulator.kind === 'reg' && accumulator.register.kind === 'gpr', 'cpu: IN/OUT without an accumulator');
  const sizeBytes = accumulator.register.size / 8;
  const portNumber = port.kind === 'imm' ? port.value : context.cpu.gpr[EDX] & 0xffff;
  const qualification = (sizeBytes - 1) | (isIn ? IO_DIRECTION_IN : 0) | (port.kind === 'imm' ? IO_OPERAND_IMMEDIATE : 0) | (portNumber << 16);
  return instructionExit(ExitReason.IO_INSTRUCTION, qualification, instruction);
}

/** Without MSR exiting the model has no MSRs at all, so every access is #GP(0) (as for an unimplemented MSR). */
export function rdmsr(context: ExecutionContext): StepOutcome {
  if (context.controls.rdmsr) return instructionExit(ExitReason.MSR_READ, 0, context.instruction);
  raise(Vector.GP, 0);
}

export function wrmsr(context: ExecutionContext): StepOutcome {
  if (context.controls.wrmsr) return instructionExit(ExitReason.MSR_WRITE, 0, context.instruction);
  raise(Vector.GP, 0);
}

const TWO_TO_32 = 0x100000000;

/** CR4.TSD cannot fault at CPL 0, so RDTSC either exits or reads the caller's clock. */
export function rdtsc(context: ExecutionContext): StepOutcome {
  if (context.controls.rdtsc) return instructionExit(ExitReason.RDTSC, 0, context.instruction);
  assert(Number.isSafeInteger(context.tsc) && context.tsc >= 0, () => `cpu: tsc ${context.tsc} is not a non-negative integer`);
  context.cpu.gpr[EAX] = context.tsc >>> 0;
  context.cpu.gpr[EDX] = Math.floor(context.tsc / TWO_TO_32) >>> 0;
  return RETIRED;
}

/** The exit qualification of INVLPG is the linear-address operand (SDM Vol. 3, Table 28-1). */
export function invlpg(context: ExecutionContext): StepOutcome {
  const operand = context.instruction.operands[0];
  assert(operand.kind === 'mem', 'cpu: INVLPG without a memory operand');
  const linear = effectiveAddress(context.cpu, operand);
  if (context.controls.invlpg) return instructionExit(ExitReason.INVLPG, linear, context.instruction);
  return { kind: 'retired', invlpg: linear };
}

/** LIDT m16&32: a 16-bit limit followed by a 32-bit base. */
export function lidt(context: ExecutionContext): StepOutcome {
  const operand = context.instruction.operands[0];
  assert(operand.kind === 'mem', 'cpu: LIDT without a memory operand');
  const address = effectiveAddress(context.cpu, operand);
  const limit = readMemory(context, address, 2);
  const base = readMemory(context, address + 2, 4);
  context.cpu.idtrLimit = limit;
  context.cpu.idtrBase = base;
  return RETIRED;
}

export function cli(context: ExecutionContext): StepOutcome {
  context.cpu.eflags = (context.cpu.eflags & ~Eflags.IF) >>> 0;
  return RETIRED;
}

/** STI that sets IF blocks interrupts for one more instruction, so "STI; HLT" cannot lose a wakeup. */
export function sti(context: ExecutionContext): StepOutcome {
  const wasClear = (context.cpu.eflags & Eflags.IF) === 0;
  context.cpu.eflags = (context.cpu.eflags | Eflags.IF) >>> 0;
  return wasClear ? { kind: 'retired', interruptShadow: true } : RETIRED;
}

/** CLC STC CMC CLD STD: the flag each one clears, sets or complements (SDM Vol. 1, 7.3.13.1). */
const FLAG_CONTROL = {
  clc: { flag: Eflags.CF, to: 'clear' },
  stc: { flag: Eflags.CF, to: 'set' },
  cmc: { flag: Eflags.CF, to: 'complement' },
  cld: { flag: Eflags.DF, to: 'clear' },
  std: { flag: Eflags.DF, to: 'set' },
} as const;

export function flagControl(context: ExecutionContext): StepOutcome {
  const { flag, to } = FLAG_CONTROL[context.instruction.mnemonic as keyof typeof FLAG_CONTROL];
  const eflags = context.cpu.eflags;
  context.cpu.eflags = (to === 'clear' ? eflags & ~flag : to === 'set' ? eflags | flag : eflags ^ flag) >>> 0;
  return RETIRED;
}

export function nop(): StepOutcome {
  return RETIRED;
}

export function pause(context: ExecutionContext): StepOutcome {
  if (context.controls.pause) return instructionExit(ExitReason.PAUSE, 0, context.instruction);
  return RETIRED;
}

/** VMCALL exits unconditionally in VMX non-root operation and is #UD outside VMX operation. */
export function vmcall(context: ExecutionContext): StepOutcome {
  if (context.controls.vmcall) return instructionExit(ExitReason.VMCALL, 0, context.instruction);
  raise(Vector.UD);
}

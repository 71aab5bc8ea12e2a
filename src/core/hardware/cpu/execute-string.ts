// MOVS, STOS and LODS with the B/W/D element sizes (SDM Vol. 2). The address size is always
// 32 bits (no 67h prefix in the subset), so ESI/EDI/ECX are used whatever the element size.
//
// REP executes ONE element per step: with ECX != 0 the step moves one element, decrements ECX
// and leaves EIP on the instruction unless ECX reached 0. This is how real hardware makes a
// long REP interruptible (SDM Vol. 2, REP: "the instruction is restarted"), and it keeps each
// step a bounded amount of work. F2 (REPNE) on these instructions repeats exactly like F3, as
// it does on Intel hardware: the ZF test of REPNE applies only to CMPS/SCAS.

import { EAX, ECX, EDI, ESI, gpr } from '../x86/index.ts';
import type { GeneralRegisterSize } from '../x86/index.ts';
import type { AccessSize } from './bus.ts';
import { Eflags } from './cpu-state.ts';
import { readGpr, readMemory, writeGpr, writeMemory } from './operands.ts';
import type { ExecutionContext } from './operands.ts';
import { RETIRED } from './outcomes.ts';
import type { StepOutcome } from './outcomes.ts';

type StringKind = 'movs' | 'stos' | 'lods';

function elementBytes(context: ExecutionContext): AccessSize {
  const suffix = context.instruction.mnemonic.at(-1);
  if (suffix === 'b') return 1;
  return suffix === 'w' ? 2 : 4;
}

/** DF = 0 walks upwards, DF = 1 downwards. */
function stride(context: ExecutionContext, bytes: AccessSize): number {
  return (context.cpu.eflags & Eflags.DF) !== 0 ? -bytes : bytes;
}

function advance(context: ExecutionContext, register: number, bytes: AccessSize): void {
  context.cpu.gpr[register] = (context.cpu.gpr[register] + stride(context, bytes)) >>> 0;
}

function moveOneElement(context: ExecutionContext, kind: StringKind, bytes: AccessSize): void {
  const accumulator = gpr((bytes * 8) as GeneralRegisterSize, EAX);
  const cpu = context.cpu;
  if (kind === 'movs') {
    writeMemory(context, cpu.gpr[EDI], bytes, readMemory(context, cpu.gpr[ESI], bytes));
    advance(context, ESI, bytes);
    advance(context, EDI, bytes);
  } else if (kind === 'stos') {
    writeMemory(context, cpu.gpr[EDI], bytes, readGpr(cpu, accumulator));
    advance(context, EDI, bytes);
  } else {
    writeGpr(cpu, accumulator, readMemory(context, cpu.gpr[ESI], bytes));
    advance(context, ESI, bytes);
  }
}

export function stringInstruction(context: ExecutionContext): StepOutcome {
  const kind = context.instruction.mnemonic.slice(0, 4) as StringKind;
  const bytes = elementBytes(context);
  if (context.instruction.prefixes.repeat === null) {
    moveOneElement(context, kind, bytes);
    return RETIRED;
  }
  const cpu = context.cpu;
  if (cpu.gpr[ECX] === 0) return RETIRED; // REP with ECX = 0 does nothing but advance EIP
  moveOneElement(context, kind, bytes);
  cpu.gpr[ECX] = (cpu.gpr[ECX] - 1) >>> 0;
  if (cpu.gpr[ECX] !== 0) cpu.eip = context.instructionEip;
  return RETIRED;
}

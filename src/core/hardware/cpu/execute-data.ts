// Data movement: MOV (general registers; MOV CRn is in execute-system.ts), MOVZX, MOVSX,
// LEA, XCHG, and the stack instructions (SDM Vol. 2, one entry each).

import type { MemoryOperand } from '../x86/index.ts';
import { EAX, EBP, EBX, ECX, EDI, EDX, ESI, ESP } from '../x86/index.ts';
import { assert } from '../../../events/errors.ts';
import { sizeMask, toSigned } from './arithmetic-flags.ts';
import { Eflags, WRITABLE_FLAGS } from './cpu-state.ts';
import { effectiveAddress, load, locate, locationBits, operandAt, pop, push, store } from './operands.ts';
import type { ExecutionContext } from './operands.ts';
import { RETIRED } from './outcomes.ts';
import type { StepOutcome } from './outcomes.ts';
import { movControlRegister } from './execute-system.ts';

export function mov(context: ExecutionContext): StepOutcome {
  const [destination, source] = context.instruction.operands;
  const touchesControlRegister = [destination, source].some((operand) => operand.kind === 'reg' && operand.register.kind === 'cr');
  if (touchesControlRegister) return movControlRegister(context);
  const target = locate(context, destination);
  store(context, target, load(context, locate(context, source)));
  return RETIRED;
}

export function movzx(context: ExecutionContext): StepOutcome {
  store(context, operandAt(context, 0), load(context, operandAt(context, 1)));
  return RETIRED;
}

export function movsx(context: ExecutionContext): StepOutcome {
  const destination = operandAt(context, 0);
  const source = operandAt(context, 1);
  const value = toSigned(load(context, source), locationBits(source));
  store(context, destination, (value & sizeMask(locationBits(destination))) >>> 0);
  return RETIRED;
}

/** LEA stores the offset itself, truncated to the operand size; memory is never touched. */
export function lea(context: ExecutionContext): StepOutcome {
  const destination = operandAt(context, 0);
  const memory = context.instruction.operands[1];
  assert(memory.kind === 'mem', 'cpu: LEA without a memory operand');
  store(context, destination, effectiveAddress(context.cpu, memory as MemoryOperand));
  return RETIRED;
}

export function xchg(context: ExecutionContext): StepOutcome {
  const first = operandAt(context, 0);
  const second = operandAt(context, 1);
  const firstValue = load(context, first);
  const secondValue = load(context, second);
  store(context, first, secondValue);
  store(context, second, firstValue);
  return RETIRED;
}

/** PUSH reads its operand before ESP moves, so PUSH ESP and PUSH [ESP] see the old ESP. */
export function pushInstruction(context: ExecutionContext): StepOutcome {
  push(context, load(context, operandAt(context, 0)));
  return RETIRED;
}

/**
 * POP increments ESP before it computes a memory destination's address (SDM POP: "If the ESP
 * register is used as a base register ... after it increments"), and POP ESP keeps the value
 * popped rather than the incremented pointer.
 */
export function popInstruction(context: ExecutionContext): StepOutcome {
  const value = pop(context);
  store(context, operandAt(context, 0), value);
  return RETIRED;
}

// PUSHAD order; the ESP slot holds ESP as it was before the first push.
const PUSHAD_ORDER = [EAX, ECX, EDX, EBX, ESP, EBP, ESI, EDI] as const;

export function pushad(context: ExecutionContext): StepOutcome {
  const original = context.cpu.gpr.slice();
  for (const register of PUSHAD_ORDER) push(context, original[register]);
  return RETIRED;
}

/** POPAD skips the saved ESP: ESP ends 32 bytes higher whatever the slot held. */
export function popad(context: ExecutionContext): StepOutcome {
  for (const register of [...PUSHAD_ORDER].reverse()) {
    const value = pop(context);
    if (register !== ESP) context.cpu.gpr[register] = value;
  }
  return RETIRED;
}

/** PUSHFD stores EFLAGS with VM and RF cleared; the model never sets them anyway. */
export function pushfd(context: ExecutionContext): StepOutcome {
  push(context, context.cpu.eflags & ~(Eflags.VM | Eflags.RF));
  return RETIRED;
}

export function popfd(context: ExecutionContext): StepOutcome {
  const value = pop(context);
  context.cpu.eflags = mergeWritableFlags(context.cpu.eflags, value);
  return RETIRED;
}

/** The flags POPFD and IRETD may change at CPL 0, with bit 1 forced to 1. */
export function mergeWritableFlags(current: number, popped: number): number {
  return ((current & ~WRITABLE_FLAGS) | (popped & WRITABLE_FLAGS) | Eflags.FIXED_1) >>> 0;
}

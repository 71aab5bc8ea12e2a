// Control transfer: JMP, Jcc, CALL, RET, LOOP, INT n, INT3, IRETD (SDM Vol. 2). Segments are
// flat with a 4 GiB limit, so no target can exceed CS.limit and no far form exists here.

import { CONDITIONAL_JUMPS, ECX, ESP } from '../x86/index.ts';
import type { Mnemonic } from '../x86/index.ts';
import { Eflags } from './cpu-state.ts';
import { mergeWritableFlags } from './execute-data.ts';
import { load, locate, pop, push } from './operands.ts';
import type { ExecutionContext } from './operands.ts';
import { RETIRED, Vector } from './outcomes.ts';
import type { StepOutcome } from './outcomes.ts';

/** A JMP/CALL target: relative to the next instruction, or absolute from r/m32. */
function branchTarget(context: ExecutionContext): number {
  const operand = context.instruction.operands[0];
  if (operand.kind === 'rel') return (context.nextEip + operand.displacement) >>> 0;
  return load(context, locate(context, operand));
}

export function jmp(context: ExecutionContext): StepOutcome {
  context.cpu.eip = branchTarget(context);
  return RETIRED;
}

/** The target is read before the push, so CALL [ESP] uses the old top of stack. */
export function call(context: ExecutionContext): StepOutcome {
  const target = branchTarget(context);
  push(context, context.nextEip);
  context.cpu.eip = target;
  return RETIRED;
}

/** RET imm16 releases imm16 bytes of arguments after popping the return address. */
export function ret(context: ExecutionContext): StepOutcome {
  const target = pop(context);
  const release = context.instruction.operands[0];
  if (release !== undefined && release.kind === 'imm') context.cpu.gpr[ESP] = (context.cpu.gpr[ESP] + release.value) >>> 0;
  context.cpu.eip = target;
  return RETIRED;
}

// Condition codes in the order of the low opcode nibble (SDM Vol. 1, Table B-1): pairs of a
// test and its negation, so bit 0 of the code inverts the test named by bits 3:1.
const CONDITION_CODE: ReadonlyMap<Mnemonic, number> = new Map(CONDITIONAL_JUMPS.map((mnemonic, code) => [mnemonic, code]));

function flagSet(eflags: number, flag: number): boolean {
  return (eflags & flag) !== 0;
}

export function conditionHolds(eflags: number, code: number): boolean {
  const lessThan = flagSet(eflags, Eflags.SF) !== flagSet(eflags, Eflags.OF);
  let holds: boolean;
  switch (code >> 1) {
    case 0: holds = flagSet(eflags, Eflags.OF); break;
    case 1: holds = flagSet(eflags, Eflags.CF); break;
    case 2: holds = flagSet(eflags, Eflags.ZF); break;
    case 3: holds = flagSet(eflags, Eflags.CF) || flagSet(eflags, Eflags.ZF); break;
    case 4: holds = flagSet(eflags, Eflags.SF); break;
    case 5: holds = flagSet(eflags, Eflags.PF); break;
    case 6: holds = lessThan; break;
    default: holds = lessThan || flagSet(eflags, Eflags.ZF); break;
  }
  return (code & 1) === 0 ? holds : !holds;
}

export function jcc(context: ExecutionContext): StepOutcome {
  const code = CONDITION_CODE.get(context.instruction.mnemonic) ?? 0;
  if (conditionHolds(context.cpu.eflags, code)) context.cpu.eip = branchTarget(context);
  return RETIRED;
}

/** LOOP decrements ECX (the address size is 32) without touching flags, and jumps while ECX != 0. */
export function loop(context: ExecutionContext): StepOutcome {
  const count = (context.cpu.gpr[ECX] - 1) >>> 0;
  context.cpu.gpr[ECX] = count;
  if (count !== 0) context.cpu.eip = branchTarget(context);
  return RETIRED;
}

/**
 * INT n and INT3 are not executed here: the outcome names the vector and marks it software,
 * so that delivery pushes the next EIP and uses EXT = 0 (SDM Vol. 3, 6.12).
 */
export function softwareInterrupt(context: ExecutionContext): StepOutcome {
  const operand = context.instruction.operands[0];
  const vector = operand !== undefined && operand.kind === 'imm' ? operand.value : Vector.BP;
  return { kind: 'exception', vector, errorCode: null, software: true, length: context.instruction.length };
}

/**
 * IRETD at CPL 0 with NT = 0 returns to the same privilege level: pop EIP, CS (ignored: flat
 * and always 0x08) and EFLAGS, of which only the writable bits take effect.
 */
export function iretd(context: ExecutionContext): StepOutcome {
  const target = pop(context);
  pop(context);
  const eflags = pop(context);
  context.cpu.eip = target;
  context.cpu.eflags = mergeWritableFlags(context.cpu.eflags, eflags);
  return RETIRED;
}

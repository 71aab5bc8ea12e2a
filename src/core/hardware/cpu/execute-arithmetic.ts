// Integer arithmetic and logic: the group-1 ALU operations, INC/DEC/NEG/NOT, shifts and
// rotates, MUL/IMUL/DIV/IDIV and CWD/CDQ (SDM Vol. 2). Flag rules live in
// arithmetic-flags.ts, shifts.ts and multiply-divide.ts; this file only moves operands.

import { EAX, EDX, gpr } from '../x86/index.ts';
import type { GeneralRegister, Mnemonic } from '../x86/index.ts';
import { binaryOperation, decrement, increment, resultFlags, subtract, writeFlags } from './arithmetic-flags.ts';
import type { ArithmeticMnemonic, OperandBits } from './arithmetic-flags.ts';
import { Eflags, STATUS_FLAGS } from './cpu-state.ts';
import { divideWide, multiplyWide } from './multiply-divide.ts';
import { load, locationBits, operandAt, raise, readGpr, store, writeGpr } from './operands.ts';
import type { ExecutionContext } from './operands.ts';
import { RETIRED, Vector } from './outcomes.ts';
import type { StepOutcome } from './outcomes.ts';
import { shiftOrRotate } from './shifts.ts';
import type { ShiftMnemonic } from './shifts.ts';

/** ADD OR ADC SBB AND SUB XOR CMP TEST: CMP and TEST only set flags. */
export function arithmetic(context: ExecutionContext): StepOutcome {
  const mnemonic = context.instruction.mnemonic as ArithmeticMnemonic;
  const destination = operandAt(context, 0);
  const source = operandAt(context, 1);
  const size = locationBits(destination);
  const result = binaryOperation(context.cpu, mnemonic, load(context, destination), load(context, source), size);
  if (mnemonic !== 'cmp' && mnemonic !== 'test') store(context, destination, result);
  return RETIRED;
}

export function inc(context: ExecutionContext): StepOutcome {
  const operand = operandAt(context, 0);
  store(context, operand, increment(context.cpu, load(context, operand), locationBits(operand)));
  return RETIRED;
}

export function dec(context: ExecutionContext): StepOutcome {
  const operand = operandAt(context, 0);
  store(context, operand, decrement(context.cpu, load(context, operand), locationBits(operand)));
  return RETIRED;
}

/** NEG is 0 - operand: CF = (operand != 0), OF only for the most negative value. */
export function neg(context: ExecutionContext): StepOutcome {
  const operand = operandAt(context, 0);
  store(context, operand, subtract(context.cpu, 0, load(context, operand), locationBits(operand)));
  return RETIRED;
}

/** NOT changes no flags. */
export function not(context: ExecutionContext): StepOutcome {
  const operand = operandAt(context, 0);
  store(context, operand, ~load(context, operand) >>> 0);
  return RETIRED;
}

/**
 * Group 2. The result is written back even when the masked count is 0, as QEMU does: the
 * instruction is a read-modify-write of its operand whatever the count.
 */
export function shift(context: ExecutionContext): StepOutcome {
  const operand = operandAt(context, 0);
  const count = load(context, operandAt(context, 1));
  const value = load(context, operand);
  store(context, operand, shiftOrRotate(context.cpu, context.instruction.mnemonic as ShiftMnemonic, value, count, locationBits(operand)));
  return RETIRED;
}

// ---- multiply and divide --------------------------------------------------------------

// Implicit operands of the one-operand forms (SDM MUL, Table 4-9): AL/AX/EAX and AH/DX/EDX.
function accumulator(size: OperandBits): GeneralRegister {
  return gpr(size, EAX);
}

function extension(size: OperandBits): GeneralRegister {
  return size === 8 ? gpr(8, 4) : gpr(size, EDX); // AH is register number 4 among the byte registers
}

/**
 * Flags after MUL/IMUL: CF = OF = overflow. SF ZF AF PF are undefined in the SDM; the model
 * follows QEMU: SF, ZF and PF from the low half of the product (the destination for the 2- and
 * 3-operand forms), AF cleared.
 */
function multiplyFlags(context: ExecutionContext, low: number, overflow: boolean, size: OperandBits): void {
  const flags = resultFlags(low, size) | (overflow ? Eflags.CF | Eflags.OF : 0);
  writeFlags(context.cpu, flags, STATUS_FLAGS);
}

/** MUL and one-operand IMUL: AX = AL * r/m8, DX:AX = AX * r/m16, EDX:EAX = EAX * r/m32. */
function multiplyAccumulator(context: ExecutionContext, signed: boolean): StepOutcome {
  const source = operandAt(context, 0);
  const size = locationBits(source);
  const multiplicand = readGpr(context.cpu, accumulator(size));
  const product = multiplyWide(multiplicand, load(context, source), size, signed);
  writeGpr(context.cpu, accumulator(size), product.low);
  writeGpr(context.cpu, extension(size), product.high);
  multiplyFlags(context, product.low, product.overflow, size);
  return RETIRED;
}

export function mul(context: ExecutionContext): StepOutcome {
  return multiplyAccumulator(context, false);
}

/** IMUL r/m (one operand), IMUL r, r/m (two), IMUL r, r/m, imm (three): the latter two truncate. */
export function imul(context: ExecutionContext): StepOutcome {
  const operands = context.instruction.operands;
  if (operands.length === 1) return multiplyAccumulator(context, true);
  const destination = operandAt(context, 0);
  const size = locationBits(destination);
  const [left, right] = operands.length === 2 ? [destination, operandAt(context, 1)] : [operandAt(context, 1), operandAt(context, 2)];
  const product = multiplyWide(load(context, left), load(context, right), size, true);
  store(context, destination, product.low);
  multiplyFlags(context, product.low, product.overflow, size);
  return RETIRED;
}

/**
 * DIV and IDIV: AX / r/m8 -> AL quotient, AH remainder; DX:AX and EDX:EAX likewise. #DE on a
 * zero divisor or an unrepresentable quotient. All six status flags are undefined in the
 * SDM; the model leaves them unchanged, as QEMU does.
 */
function divide(context: ExecutionContext, signed: boolean): StepOutcome {
  const source = operandAt(context, 0);
  const size = locationBits(source);
  const divisor = load(context, source);
  const high = readGpr(context.cpu, extension(size));
  const low = readGpr(context.cpu, accumulator(size));
  const result = divideWide(high, low, divisor, size, signed);
  if (result === undefined) raise(Vector.DE);
  writeGpr(context.cpu, accumulator(size), result.quotient);
  writeGpr(context.cpu, extension(size), result.remainder);
  return RETIRED;
}

export function div(context: ExecutionContext): StepOutcome {
  return divide(context, false);
}

export function idiv(context: ExecutionContext): StepOutcome {
  return divide(context, true);
}

/** CDQ: EDX = sign of EAX. CWD: DX = sign of AX. */
export function convertToDouble(context: ExecutionContext): StepOutcome {
  const size = context.instruction.operandSize;
  const value = readGpr(context.cpu, gpr(size, EAX));
  const negative = (value >>> (size - 1)) & 1;
  writeGpr(context.cpu, gpr(size, EDX), negative === 1 ? 0xffffffff : 0);
  return RETIRED;
}

export const ARITHMETIC_MNEMONICS: readonly Mnemonic[] = ['add', 'or', 'adc', 'sbb', 'and', 'sub', 'xor', 'cmp', 'test'];
export const SHIFT_MNEMONICS: readonly Mnemonic[] = ['rol', 'ror', 'shl', 'shr', 'sar'];

// Group-2 shifts and rotates (SDM Vol. 2, "SAL/SAR/SHL/SHR" and "RCL/RCR/ROL/ROR").
//
// The count is masked to 5 bits first, for every operand size; a masked count of 0 changes
// nothing, not even the flags. Where the SDM leaves a flag undefined the model does what
// QEMU's TCG does (and what Bochs and, as far as published tests show, Intel cores do):
// - AF after a shift by a non-zero count: cleared.
// - OF after a shift by more than 1: SHL gives MSB(result) XOR CF, SHR and SAR give 0 (the
//   count-1 formulas applied to the last single-bit step).
// - CF after SHL/SHR of an 8- or 16-bit operand by at least its width: the operand is shifted
//   as if it sat in a wider register, so CF is the last bit that left it (0 once only zeros
//   remain; SAR keeps shifting out copies of the sign).
// - OF after a rotate by more than 1: the count-1 formula (ROL: MSB XOR CF; ROR: the XOR of
//   the two most significant bits of the result).
// Rotates of 8/16-bit operands rotate by count MOD width but still write CF and OF whenever
// the masked count is non-zero, as the SDM's pseudo-code says.

import { Eflags } from './cpu-state.ts';
import type { CpuState } from './cpu-state.ts';
import { resultFlags, signBit, sizeMask, toSigned, writeFlags } from './arithmetic-flags.ts';
import type { OperandBits } from './arithmetic-flags.ts';

export type ShiftMnemonic = 'rol' | 'ror' | 'shl' | 'shr' | 'sar';

const SHIFT_COUNT_MASK = 0x1f;
const SHIFT_FLAGS = Eflags.CF | Eflags.PF | Eflags.AF | Eflags.ZF | Eflags.SF | Eflags.OF;
const ROTATE_FLAGS = Eflags.CF | Eflags.OF;

function msb(value: number, size: OperandBits): number {
  return (value & signBit(size)) !== 0 ? 1 : 0;
}

function shiftFlags(result: number, size: OperandBits, carry: number, overflow: number): number {
  return resultFlags(result, size) | (carry !== 0 ? Eflags.CF : 0) | (overflow !== 0 ? Eflags.OF : 0);
}

/** Rotates write only CF and OF; SF ZF AF PF keep their values. */
function rotateFlags(carry: number, overflow: number): number {
  return (carry !== 0 ? Eflags.CF : 0) | (overflow !== 0 ? Eflags.OF : 0);
}

function shiftLeft(cpu: CpuState, value: number, count: number, size: OperandBits): number {
  const result = ((value << count) & sizeMask(size)) >>> 0;
  const carry = count <= size ? (value >>> (size - count)) & 1 : 0;
  writeFlags(cpu, shiftFlags(result, size, carry, msb(result, size) ^ carry), SHIFT_FLAGS);
  return result;
}

function shiftRightLogical(cpu: CpuState, value: number, count: number, size: OperandBits): number {
  const result = value >>> count;
  const carry = (value >>> (count - 1)) & 1;
  const overflow = count === 1 ? msb(value, size) : 0;
  writeFlags(cpu, shiftFlags(result, size, carry, overflow), SHIFT_FLAGS);
  return result;
}

function shiftRightArithmetic(cpu: CpuState, value: number, count: number, size: OperandBits): number {
  const signed = toSigned(value, size);
  const result = ((signed >> count) & sizeMask(size)) >>> 0;
  const carry = (signed >> (count - 1)) & 1;
  writeFlags(cpu, shiftFlags(result, size, carry, 0), SHIFT_FLAGS);
  return result;
}

function rotateLeft(cpu: CpuState, value: number, count: number, size: OperandBits): number {
  const amount = count % size;
  const result = amount === 0 ? value : (((value << amount) | (value >>> (size - amount))) & sizeMask(size)) >>> 0;
  const carry = result & 1;
  writeFlags(cpu, rotateFlags(carry, msb(result, size) ^ carry), ROTATE_FLAGS);
  return result;
}

function rotateRight(cpu: CpuState, value: number, count: number, size: OperandBits): number {
  const amount = count % size;
  const result = amount === 0 ? value : (((value >>> amount) | (value << (size - amount))) & sizeMask(size)) >>> 0;
  const carry = msb(result, size);
  const nextBit = (result >>> (size - 2)) & 1;
  writeFlags(cpu, rotateFlags(carry, carry ^ nextBit), ROTATE_FLAGS);
  return result;
}

/** Applies one group-2 operation; returns the new operand value. `value` is already truncated to `size`. */
export function shiftOrRotate(cpu: CpuState, mnemonic: ShiftMnemonic, value: number, rawCount: number, size: OperandBits): number {
  const count = rawCount & SHIFT_COUNT_MASK;
  if (count === 0) return value;
  switch (mnemonic) {
    case 'shl': return shiftLeft(cpu, value, count, size);
    case 'shr': return shiftRightLogical(cpu, value, count, size);
    case 'sar': return shiftRightArithmetic(cpu, value, count, size);
    case 'rol': return rotateLeft(cpu, value, count, size);
    case 'ror': return rotateRight(cpu, value, count, size);
  }
}

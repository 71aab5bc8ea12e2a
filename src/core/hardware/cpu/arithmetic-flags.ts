// Results and status flags of the integer ALU (SDM Vol. 1, 3.4.3.1 and Appendix A; each
// instruction's "Flags Affected" in Vol. 2). Operands are unsigned values already truncated
// to `size` bits; every function returns the truncated result and rewrites the status flags
// of `cpu.eflags` it defines.

import { Eflags, STATUS_FLAGS } from './cpu-state.ts';
import type { CpuState } from './cpu-state.ts';

export type OperandBits = 8 | 16 | 32;

export function sizeMask(size: OperandBits): number {
  return size === 32 ? 0xffffffff : (1 << size) - 1;
}

export function signBit(size: OperandBits): number {
  return size === 32 ? 0x80000000 : 1 << (size - 1);
}

/** Interprets a `size`-bit unsigned value as two's complement. */
export function toSigned(value: number, size: OperandBits): number {
  const shift = 32 - size;
  return (value << shift) >> shift;
}

// PF reflects only the low byte: set when it holds an even number of 1 bits.
const PARITY_EVEN: Uint8Array = buildParityTable();

function buildParityTable(): Uint8Array {
  const table = new Uint8Array(256);
  for (let byte = 0; byte < 256; byte += 1) {
    let ones = 0;
    for (let bit = 0; bit < 8; bit += 1) ones += (byte >> bit) & 1;
    table[byte] = ones % 2 === 0 ? 1 : 0;
  }
  return table;
}

/** SF, ZF and PF of a truncated result: the three flags every ALU result defines the same way. */
export function resultFlags(result: number, size: OperandBits): number {
  let flags = 0;
  if ((result & signBit(size)) !== 0) flags |= Eflags.SF;
  if (result === 0) flags |= Eflags.ZF;
  if (PARITY_EVEN[result & 0xff] === 1) flags |= Eflags.PF;
  return flags;
}

function setStatusFlags(cpu: CpuState, flags: number, affected: number = STATUS_FLAGS): void {
  cpu.eflags = ((cpu.eflags & ~affected) | (flags & affected)) >>> 0;
}

function carryIn(cpu: CpuState): number {
  return cpu.eflags & Eflags.CF;
}

/** ADD and ADC (carry = 1 adds CF). OF: both inputs share a sign the result lacks. */
export function add(cpu: CpuState, a: number, b: number, size: OperandBits, withCarry = false, affected = STATUS_FLAGS): number {
  const sum = a + b + (withCarry ? carryIn(cpu) : 0);
  const result = size === 32 ? sum >>> 0 : sum & sizeMask(size);
  let flags = resultFlags(result, size);
  if (sum > sizeMask(size)) flags |= Eflags.CF;
  if (((a ^ result) & (b ^ result) & signBit(size)) !== 0) flags |= Eflags.OF;
  if (((a ^ b ^ result) & 0x10) !== 0) flags |= Eflags.AF;
  setStatusFlags(cpu, flags, affected);
  return result;
}

/** SUB, SBB, CMP and NEG (as 0 - b). CF is the borrow; OF: inputs differ in sign and the result took b's. */
export function subtract(cpu: CpuState, a: number, b: number, size: OperandBits, withBorrow = false, affected = STATUS_FLAGS): number {
  const difference = a - b - (withBorrow ? carryIn(cpu) : 0);
  const result = size === 32 ? difference >>> 0 : difference & sizeMask(size);
  let flags = resultFlags(result, size);
  if (difference < 0) flags |= Eflags.CF;
  if (((a ^ b) & (a ^ result) & signBit(size)) !== 0) flags |= Eflags.OF;
  if (((a ^ b ^ result) & 0x10) !== 0) flags |= Eflags.AF;
  setStatusFlags(cpu, flags, affected);
  return result;
}

/** INC and DEC leave CF alone, which is why they are not plain ADD/SUB 1. */
export function increment(cpu: CpuState, a: number, size: OperandBits): number {
  return add(cpu, a, 1, size, false, STATUS_FLAGS & ~Eflags.CF);
}

export function decrement(cpu: CpuState, a: number, size: OperandBits): number {
  return subtract(cpu, a, 1, size, false, STATUS_FLAGS & ~Eflags.CF);
}

/**
 * AND, OR, XOR and TEST: OF and CF cleared, SF ZF PF from the result. AF is undefined in
 * the SDM; Intel hardware, Bochs and QEMU all clear it, and so does this model.
 */
export function logicFlags(cpu: CpuState, result: number, size: OperandBits): number {
  setStatusFlags(cpu, resultFlags(result, size));
  return result;
}

export type ArithmeticMnemonic = 'add' | 'or' | 'adc' | 'sbb' | 'and' | 'sub' | 'xor' | 'cmp' | 'test';

/** The eight group-1 operations plus TEST, by mnemonic. */
export function binaryOperation(cpu: CpuState, mnemonic: ArithmeticMnemonic, a: number, b: number, size: OperandBits): number {
  switch (mnemonic) {
    case 'add': return add(cpu, a, b, size);
    case 'adc': return add(cpu, a, b, size, true);
    case 'sub':
    case 'cmp': return subtract(cpu, a, b, size);
    case 'sbb': return subtract(cpu, a, b, size, true);
    case 'and':
    case 'test': return logicFlags(cpu, (a & b) >>> 0, size);
    case 'or': return logicFlags(cpu, (a | b) >>> 0, size);
    case 'xor': return logicFlags(cpu, (a ^ b) >>> 0, size);
  }
}

/** Sets or clears the given flag bits as `condition` says. */
export function setFlag(cpu: CpuState, flag: number, condition: boolean): void {
  cpu.eflags = (condition ? cpu.eflags | flag : cpu.eflags & ~flag) >>> 0;
}

/** Replaces exactly the bits in `affected` with those of `flags`. */
export function writeFlags(cpu: CpuState, flags: number, affected: number): void {
  setStatusFlags(cpu, flags, affected);
}

// Chooses an encoding for one instruction the way NASM does and produces its bytes.
//
// Forms are tried in opcode-table order and the first match wins, as in NASM's insns.dat.
// The value-dependent choices follow NASM (parser.c, assemble.c): an immediate takes the imm8
// form when it is a plain number that fits (never a label), a displacement is 8 bits only
// when it is a plain number that fits, and a jump without "short"/"near" is short when its
// target is in range. A value not known yet (a forward reference in the first pass) is
// assumed to fit as an immediate or a jump, but not as a displacement - NASM's own guesses,
// which matter because the passes converge to different layouts from different guesses.

import { encodeAddress, littleEndian } from '../addressing.ts';
import type { AddressEncoding } from '../addressing.ts';
import type { Form, Mnemonic, OperandPattern, RepeatPrefix } from '../instruction.ts';
import { FORMS_BY_MNEMONIC, modrmOperandIndex, patternSizesMemory, sizeCodeBits } from '../opcode-table.ts';
import { EBP, ESP } from '../registers.ts';
import type { Register } from '../registers.ts';
import type { Hint, Value } from './expression.ts';
import { isScalar, isUnknown, scalarValue } from './expression.ts';
import type { SizeKeyword } from './parser.ts';

export interface ResolvedAddress {
  readonly base: number | null;
  readonly index: number | null;
  readonly scale: 1 | 2 | 4 | 8;
  readonly displacement: Value;
  readonly forcedDisplacementSize: 8 | 32 | null;
}

export type ResolvedOperand =
  | { readonly kind: 'register'; readonly register: Register; readonly column: number }
  | { readonly kind: 'memory'; readonly size: SizeKeyword | null; readonly address: ResolvedAddress; readonly column: number }
  | {
      readonly kind: 'immediate';
      readonly value: Value;
      readonly size: SizeKeyword | null;
      readonly strict: boolean;
      readonly distance: 'short' | 'near' | null;
      readonly column: number;
    };

export interface EncodingContext {
  /** The org address that section offsets are relative to. */
  readonly origin: bigint;
  /** Section offset of this instruction. */
  readonly offset: bigint;
  /** In the last pass values are final, so range errors are real. */
  readonly final: boolean;
  readonly mnemonicColumn: number;
  fail(column: number, message: string): never;
}

// ---------------------------------------------------------------------------------------------
// Effective addresses (NASM parse_mref + process_ea)

// NASM orders the terms of an expression by its register enumeration, which is alphabetical:
// eax ebp ebx ecx edi edx esi esp. The order decides base and index when the hint cannot.
const NASM_REGISTER_ORDER = [0, 5, 3, 1, 7, 2, 6, 4];

interface AddressTerm {
  readonly number: number;
  readonly coefficient: bigint;
}

export function resolveAddress(
  value: Value,
  hint: Hint,
  forcedDisplacementSize: 8 | 32 | null,
  fail: (message: string) => never,
): ResolvedAddress {
  const terms = addressTerms(value, fail);
  let { base, index, scale } = assignBaseAndIndex(terms, fail);
  const hinted = hint.register?.kind === 'gpr' ? hint.register.number : null;
  // Both registers unscaled: the hint says which one the programmer wrote as the base.
  const swapForHint =
    (hinted === base && hint.type === 'notbase') || (hinted === index && hint.type === 'makebase');
  if (scale === 1n && base !== null && index !== null && base !== index && swapForHint) [base, index] = [index, base];
  if (base === null && index !== null && scale === 1n && !(hinted === index && hint.type === 'notbase')) {
    [base, index] = [index, null];
  }
  // [eax*2] becomes [eax+eax*1], [eax*3] [eax+eax*2]: shorter than a SIB with disp32.
  const splittable = (scale === 2n && index !== ESP) || scale === 3n || scale === 5n || scale === 9n;
  if (base === null && index !== null && splittable) {
    base = index;
    scale -= 1n;
  }
  if (scale === 1n && index === ESP) [base, index] = [index, base];
  if (index === ESP) fail('invalid effective address: ESP cannot be an index');
  if (index !== null && scale !== 1n && scale !== 2n && scale !== 4n && scale !== 8n) {
    fail('invalid effective address: scale must be 1, 2, 4 or 8');
  }
  const displacement: Value = { ...value, registers: [] };
  return { base, index, scale: index === null ? 1 : (Number(scale) as 1 | 2 | 4 | 8), displacement, forcedDisplacementSize };
}

function addressTerms(value: Value, fail: (message: string) => never): AddressTerm[] {
  const terms = value.registers.map((term) => {
    if (term.register.kind !== 'gpr' || term.register.size !== 32) {
      return fail('invalid effective address: only 32-bit general registers can address memory');
    }
    return { number: term.register.number, coefficient: term.coefficient };
  });
  if (terms.length > 2) fail('invalid effective address: more than two registers');
  return terms.sort((a, b) => NASM_REGISTER_ORDER.indexOf(a.number) - NASM_REGISTER_ORDER.indexOf(b.number));
}

/** NASM's parse_mref: an unscaled register becomes the base, a scaled one the index. */
function assignBaseAndIndex(terms: readonly AddressTerm[], fail: (message: string) => never) {
  let base: number | null = null;
  let index: number | null = null;
  let scale = 0n;
  const [first, second] = terms;
  if (first !== undefined) {
    if (first.coefficient === 1n) base = first.number;
    else [index, scale] = [first.number, first.coefficient];
  }
  if (second !== undefined) {
    if (base !== null) [index, scale] = [second.number, second.coefficient];
    else if (second.coefficient !== 1n) fail('invalid effective address: two index registers');
    else base = second.number;
  }
  if (scale === 0n) index = null;
  return { base, index, scale };
}

// ---------------------------------------------------------------------------------------------
// Matching operands against forms

function isGeneralRegister(operand: ResolvedOperand, size: number, number?: number): boolean {
  if (operand.kind !== 'register' || operand.register.kind !== 'gpr') return false;
  return operand.register.size === size && (number === undefined || operand.register.number === number);
}

interface MatchState {
  readonly form: Form;
  readonly operands: readonly ResolvedOperand[];
  readonly operandSize: 16 | 32;
  readonly context: EncodingContext;
}

/** An unsized memory operand takes its size from a register operand of that size (as NASM does). */
function memorySizeMatches(state: MatchState, operand: ResolvedOperand, bits: number): boolean {
  if (operand.kind !== 'memory') return false;
  if (operand.size !== null) return operand.size === bits;
  if (state.form.memorySizeImplied.includes(state.operandSize)) return true;
  return state.operands.some((other, i) => {
    const pattern = state.form.operands[i];
    if (isGeneralRegister(other, bits)) return pattern !== undefined && patternSizesMemory(pattern);
    return state.form.immediateSetsSize && other.kind === 'immediate' && other.size === bits;
  });
}

/**
 * NASM's SBYTEDWORD/SBYTEWORD test: the value survives sign-extension from 8 bits. A value
 * that is not known yet (a forward reference in pass 1) is assumed to fit, as NASM does.
 */
function fitsSignedByte(value: Value, operandSize: 16 | 32): boolean {
  if (isUnknown(value)) return true;
  if (!isScalar(value)) return false;
  const biased = BigInt.asUintN(operandSize, scalarValue(value) + 128n);
  return biased <= 255n;
}

/** NASM's UNITY flag (the D0-D3 "by 1" forms), also assumed for values not known yet. */
function isOne(value: Value): boolean {
  return isUnknown(value) || (isScalar(value) && scalarValue(value) === 1n);
}

function matchesImmediate(pattern: OperandPattern, operand: ResolvedOperand, state: MatchState): boolean {
  if (operand.kind !== 'immediate' || operand.distance !== null) return false;
  if (pattern.type === 'one') return operand.size === null && !operand.strict && isOne(operand.value);
  if (pattern.type === 'Ibs') {
    if (operand.size === 8) return true;
    if (operand.size !== null && (operand.strict || operand.size !== state.operandSize)) return false;
    return fitsSignedByte(operand.value, state.operandSize);
  }
  if (pattern.type !== 'I') return false;
  return operand.size === null || operand.size === sizeCodeBits(pattern.size, state.operandSize);
}

function shortJumpLength(form: Form): bigint {
  return BigInt(form.opcode.length + 1);
}

/** NASM's jmp_match: short if the target is in this section and in range, or not known yet. */
function shortJumpFits(operand: ResolvedOperand, state: MatchState): boolean {
  if (operand.kind !== 'immediate') return false;
  const target = operand.value;
  if (isUnknown(target)) return true;
  if (target.relocation !== 1 || target.registers.length > 0) return false;
  const delta = scalarValue(target) - (state.context.offset + shortJumpLength(state.form));
  return delta >= -128n && delta <= 127n;
}

function hasNearForm(mnemonic: Mnemonic): boolean {
  return (FORMS_BY_MNEMONIC.get(mnemonic) ?? []).some((entry) => entry.operands[0]?.type === 'J' && entry.operands[0].size === 'z');
}

function matchesJump(pattern: { readonly size: 'b' | 'z' }, operand: ResolvedOperand, state: MatchState): boolean {
  if (operand.kind !== 'immediate' || operand.size !== null || operand.strict) return false;
  if (pattern.size === 'z') return operand.distance !== 'short';
  // NASM takes "short" and "near" only where both exist: "loop short x" is an error.
  if (!hasNearForm(state.form.mnemonic)) return operand.distance === null;
  return operand.distance === 'short' || (operand.distance === null && shortJumpFits(operand, state));
}

function matchesOperand(pattern: OperandPattern, operand: ResolvedOperand, state: MatchState): boolean {
  const { operandSize } = state;
  switch (pattern.type) {
    case 'E': {
      const bits = sizeCodeBits(pattern.size, operandSize);
      return isGeneralRegister(operand, bits) || memorySizeMatches(state, operand, bits);
    }
    case 'G':
    case 'Z':
      return isGeneralRegister(operand, sizeCodeBits(pattern.size, operandSize));
    case 'R':
      return isGeneralRegister(operand, 32);
    case 'C':
      return operand.kind === 'register' && operand.register.kind === 'cr';
    case 'fixed':
      return isGeneralRegister(operand, sizeCodeBits(pattern.size, operandSize), pattern.number);
    case 'M':
      return operand.kind === 'memory' && operand.size === null;
    case 'O':
      return isAbsoluteAddress(operand) && memorySizeMatches(state, operand, sizeCodeBits(pattern.size, operandSize));
    case 'J':
      return matchesJump(pattern, operand, state);
    case 'I':
    case 'Ibs':
    case 'one':
      return matchesImmediate(pattern, operand, state);
  }
}

function isAbsoluteAddress(operand: ResolvedOperand): boolean {
  if (operand.kind !== 'memory') return false;
  const address = operand.address;
  return address.base === null && address.index === null && address.forcedDisplacementSize === null;
}

function formMatches(state: MatchState): boolean {
  const patterns = state.form.operands;
  if (patterns.length !== state.operands.length) return false;
  return patterns.every((pattern, i) => matchesOperand(pattern, state.operands[i], state));
}

// ---------------------------------------------------------------------------------------------
// Emitting bytes

/** The final 32-bit number of a value: section offsets become addresses by adding org. */
function finalNumber(value: Value, context: EncodingContext, column: number): number {
  if (value.registers.length > 0) context.fail(column, 'invalid use of a register in an expression');
  if (context.final && value.relocation !== 0 && value.relocation !== 1) {
    context.fail(column, 'expression is not a plain number or a single address');
  }
  const number = scalarValue(value) + BigInt(value.relocation) * context.origin;
  return Number(BigInt.asIntN(32, number));
}

/** NASM's displacement choice: none for 0 (except EBP), 8 bits for small plain numbers, else 32. */
function displacementSize(address: ResolvedAddress, displacement: number): 0 | 8 | 32 {
  if (address.base === null) return 32;
  if (address.forcedDisplacementSize !== null) return address.forcedDisplacementSize;
  if (!isScalar(address.displacement)) return 32;
  if (displacement === 0 && address.base !== EBP) return 0;
  return displacement >= -128 && displacement <= 127 ? 8 : 32;
}

function encodeMemory(operand: ResolvedOperand, reg: number, context: EncodingContext): number[] {
  if (operand.kind !== 'memory') throw new Error('encoder: ModRM memory operand expected');
  const address = operand.address;
  const displacement = finalNumber(address.displacement, context, operand.column);
  const encoding: AddressEncoding = {
    base: address.base,
    index: address.index,
    scale: address.scale,
    displacement,
    displacementSize: displacementSize(address, displacement),
  };
  return encodeAddress(encoding, reg);
}

function registerNumber(operand: ResolvedOperand | undefined): number {
  if (operand?.kind !== 'register') throw new Error('encoder: register operand expected');
  return operand.register.number;
}

function modrmBytes(state: MatchState): number[] {
  const { form, operands, context } = state;
  if (form.modrm.kind === 'none') return [];
  if (form.modrm.kind === 'fixed') return [form.modrm.value];
  const regIndex = form.operands.findIndex((pattern) => pattern.type === 'G' || pattern.type === 'C');
  const reg = form.modrm.kind === 'digit' ? form.modrm.digit : registerNumber(operands[regIndex]);
  const rmOperand = form.registerAlsoInRm ? operands[regIndex] : operands[modrmOperandIndex(form)];
  if (rmOperand?.kind === 'register') return [0xc0 | (reg << 3) | rmOperand.register.number];
  return encodeMemory(rmOperand, reg, context);
}

function opcodeBytes(state: MatchState): number[] {
  const opcode = [...state.form.opcode];
  if (state.form.plusRegister) {
    const registerIndex = state.form.operands.findIndex((pattern) => pattern.type === 'Z');
    opcode[opcode.length - 1] += registerNumber(state.operands[registerIndex]);
  }
  return opcode;
}

function jumpBytes(size: 'b' | 'z', operand: ResolvedOperand, state: MatchState, length: number): number[] {
  if (operand.kind !== 'immediate') throw new Error('encoder: jump target expected');
  const { context } = state;
  const target = BigInt(finalNumber(operand.value, context, operand.column) >>> 0);
  const next = context.origin + context.offset + BigInt(length);
  const displacement = BigInt.asIntN(32, target - next);
  // NASM checks the range only for targets in this section; a short jump to a plain number
  // is silently truncated (nasm 2.16 -f bin).
  const inSection = operand.value.relocation === 1;
  if (size === 'b' && context.final && inSection && (displacement < -128n || displacement > 127n)) {
    context.fail(operand.column, 'short jump is out of range');
  }
  return littleEndian(Number(displacement), size === 'b' ? 1 : 4);
}

function trailingBytes(state: MatchState, lengthSoFar: number): number[] {
  const bytes: number[] = [];
  state.form.operands.forEach((pattern, i) => {
    const operand = state.operands[i];
    if (pattern.type === 'I') {
      const bits = sizeCodeBits(pattern.size, state.operandSize);
      bytes.push(...littleEndian(immediateNumber(operand, state.context), bits / 8));
    } else if (pattern.type === 'Ibs') {
      bytes.push(...littleEndian(immediateNumber(operand, state.context), 1));
    } else if (pattern.type === 'O' && operand.kind === 'memory') {
      bytes.push(...littleEndian(finalNumber(operand.address.displacement, state.context, operand.column), 4));
    } else if (pattern.type === 'J') {
      const length = lengthSoFar + bytes.length + (pattern.size === 'b' ? 1 : 4);
      bytes.push(...jumpBytes(pattern.size, operand, state, length));
    }
  });
  return bytes;
}

function immediateNumber(operand: ResolvedOperand, context: EncodingContext): number {
  if (operand.kind !== 'immediate') throw new Error('encoder: immediate operand expected');
  return finalNumber(operand.value, context, operand.column);
}

function prefixBytes(state: MatchState, repeat: RepeatPrefix | null): number[] {
  const bytes: number[] = [];
  if (repeat !== null) {
    if (!state.form.repeatable) state.context.fail(state.context.mnemonicColumn, `'${repeat}' needs a string instruction`);
    bytes.push(repeat === 'rep' ? 0xf3 : 0xf2);
  }
  if (state.form.mandatoryPrefix !== null) bytes.push(state.form.mandatoryPrefix);
  if (state.operandSize === 16) bytes.push(0x66);
  return bytes;
}

function emit(state: MatchState, repeat: RepeatPrefix | null): number[] {
  const head = [...prefixBytes(state, repeat), ...opcodeBytes(state), ...modrmBytes(state)];
  return [...head, ...trailingBytes(state, head.length)];
}

function explainMismatch(operands: readonly ResolvedOperand[], context: EncodingContext): never {
  // As NASM: when nothing matched and a memory operand has no size, that is the likely cause.
  const unsized = operands.find((operand) => operand.kind === 'memory' && operand.size === null);
  if (unsized !== undefined) context.fail(unsized.column, 'operation size not specified');
  return context.fail(context.mnemonicColumn, 'invalid combination of opcode and operands');
}

/** Encodes one instruction with NASM's choice of form. */
export function encodeInstruction(
  mnemonic: Mnemonic,
  repeat: RepeatPrefix | null,
  operands: readonly ResolvedOperand[],
  context: EncodingContext,
): number[] {
  for (const form of FORMS_BY_MNEMONIC.get(mnemonic) ?? []) {
    for (const operandSize of [32, 16] as const) {
      if (!form.operandSizes.includes(operandSize)) continue;
      const state: MatchState = { form, operands, operandSize, context };
      if (formMatches(state)) return emit(state, repeat);
    }
  }
  return explainMismatch(operands, context);
}

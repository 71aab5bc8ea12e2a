// The decoded form of one instruction, shared by the decoder, the disassembler and (later) the
// interpreter. Field names follow the Intel SDM Vol. 2, chapter 2 ("Instruction Format").

import type { ControlRegister, GeneralRegister, Register } from './registers.ts';

/** Canonical mnemonics, spelled as NASM/ndisasm print them. */
export const MNEMONICS = [
  // data movement
  'mov', 'movzx', 'movsx', 'lea', 'xchg', 'push', 'pop', 'pushad', 'popad', 'pushfd', 'popfd',
  // arithmetic and logic
  'add', 'or', 'adc', 'sbb', 'and', 'sub', 'xor', 'cmp', 'test', 'inc', 'dec', 'neg', 'not',
  'rol', 'ror', 'shl', 'shr', 'sar', 'mul', 'imul', 'div', 'idiv', 'cdq', 'cwd',
  // control transfer; Jcc in condition-code order (SDM Vol. 1, Table B-1)
  'jmp', 'jo', 'jno', 'jc', 'jnc', 'jz', 'jnz', 'jna', 'ja', 'js', 'jns', 'jpe', 'jpo', 'jl', 'jnl',
  'jng', 'jg', 'call', 'ret', 'loop', 'int', 'int3', 'iretd',
  // strings
  'movsb', 'movsw', 'movsd', 'stosb', 'stosw', 'stosd', 'lodsb', 'lodsw', 'lodsd',
  // system
  'hlt', 'cpuid', 'in', 'out', 'rdmsr', 'wrmsr', 'rdtsc', 'invlpg', 'lidt', 'cli', 'sti', 'nop',
  'pause', 'vmcall',
  // flag control (SDM Vol. 1, 7.3.13.1)
  'clc', 'stc', 'cmc', 'cld', 'std',
] as const;

export type Mnemonic = (typeof MNEMONICS)[number];

/** The 16 Jcc mnemonics indexed by the condition code in the low nibble of 70+cc / 0F 80+cc. */
export const CONDITIONAL_JUMPS: readonly Mnemonic[] = MNEMONICS.slice(
  MNEMONICS.indexOf('jo'),
  MNEMONICS.indexOf('jg') + 1,
);

/**
 * Operand size codes of the SDM opcode map (Vol. 2, Appendix A.2.2): b byte, w word, d dword,
 * v word or dword depending on the operand-size attribute.
 */
export type SizeCode = 'b' | 'w' | 'd' | 'v';

/**
 * One operand slot of an opcode form. The letters are the SDM addressing methods (Appendix
 * A.2.1): E ModRM r/m (register or memory), G ModRM reg, M ModRM memory only, R ModRM r/m as a
 * register whatever mod says (MOV CRn), C control register in ModRM reg, Z register in the low
 * three opcode bits, I immediate, J relative offset, O moffs. "Ibs" is an imm8 sign-extended to
 * the operand size; "fixed" is a register named by the opcode (AL, eAX, CL, DX); "one" is the
 * constant 1 of the D0-D3 shift forms.
 */
export type OperandPattern =
  | { readonly type: 'E' | 'G' | 'Z' | 'I' | 'O'; readonly size: SizeCode }
  | { readonly type: 'Ibs' }
  | { readonly type: 'R' }
  | { readonly type: 'C' }
  | { readonly type: 'M'; readonly bytes: 0 | 6 }
  | { readonly type: 'J'; readonly size: 'b' | 'z' }
  | { readonly type: 'fixed'; readonly size: SizeCode; readonly number: number }
  | { readonly type: 'one' };

/** How the opcode is followed by a ModRM byte. */
export type ModrmUse =
  | { readonly kind: 'none' }
  | { readonly kind: 'r' } // "/r": reg holds an operand
  | { readonly kind: 'digit'; readonly digit: number } // "/digit": reg extends the opcode
  | { readonly kind: 'fixed'; readonly value: number }; // whole byte is part of the opcode

/** One encoding of one mnemonic: the unit both the decoder and the assembler work from. */
export interface Form {
  /** Its position in FORMS: a small integer, for tables indexed by form (the CPU's dispatch). */
  readonly index: number;
  readonly mnemonic: Mnemonic;
  readonly operands: readonly OperandPattern[];
  /** Opcode bytes, including 0F; for "+r" forms the register number is added to the last. */
  readonly opcode: readonly number[];
  readonly modrm: ModrmUse;
  readonly plusRegister: boolean;
  /** Operand-size attributes the form exists in; 16 needs the 0x66 prefix. */
  readonly operandSizes: readonly (16 | 32)[];
  /** A prefix that is part of the opcode (F3 of PAUSE). */
  readonly mandatoryPrefix: number | null;
  /** Accepts REP/REPNE (the string instructions). */
  readonly repeatable: boolean;
  /** Only the assembler uses it: the decoder reaches the same bytes through another form. */
  readonly assemblerOnly: boolean;
  /** IMUL r, imm: NASM encodes it as IMUL r, r, imm, so the register also goes in ModRM.rm. */
  readonly registerAlsoInRm: boolean;
  /**
   * The operand sizes at which NASM accepts an unsized memory operand here because only one
   * size exists: "jmp [eax]", and "movzx ax, [eax]" (a word can only be extended from a byte).
   */
  readonly memorySizeImplied: readonly (16 | 32)[];
  /** NASM's "SM": a sized immediate sizes an unsized memory operand ("mov [eax], dword 5"). */
  readonly immediateSetsSize: boolean;
}

export interface RegisterOperand {
  readonly kind: 'reg';
  readonly register: Register;
}

/** Bits accessed through a memory operand; 0 for LEA and INVLPG, 48 for the LIDT pseudo-descriptor. */
export type MemorySize = 0 | 8 | 16 | 32 | 48;

export interface MemoryOperand {
  readonly kind: 'mem';
  readonly size: MemorySize;
  readonly base: GeneralRegister | null;
  readonly index: GeneralRegister | null;
  readonly scale: 1 | 2 | 4 | 8;
  /** Signed 32-bit; the effective address wraps modulo 2^32. */
  readonly displacement: number;
  /** How many displacement bits the encoding carried (moffs counts as 32). */
  readonly displacementSize: 0 | 8 | 32;
}

export interface ImmediateOperand {
  readonly kind: 'imm';
  /** Unsigned, already sign- or zero-extended to `size` bits as the CPU uses it. */
  readonly value: number;
  readonly size: 8 | 16 | 32;
  /** Bits present in the instruction; 0 for the implicit 1 of D0-D3. */
  readonly encodedSize: 0 | 8 | 16 | 32;
}

/** A branch target relative to the address of the next instruction. */
export interface RelativeOperand {
  readonly kind: 'rel';
  readonly displacement: number;
  readonly size: 8 | 32;
}

export type Operand = RegisterOperand | MemoryOperand | ImmediateOperand | RelativeOperand;

export type RepeatPrefix = 'rep' | 'repne';

export interface Prefixes {
  readonly repeat: RepeatPrefix | null;
  /** 0x66 was present (so operandSize is 16). */
  readonly operandSizeOverride: boolean;
}

export interface Instruction {
  readonly kind: 'instruction';
  readonly mnemonic: Mnemonic;
  readonly operands: readonly Operand[];
  /** The operand-size attribute; byte instructions show 8-bit registers/memory in `operands`. */
  readonly operandSize: 16 | 32;
  readonly prefixes: Prefixes;
  /** Bytes consumed, 1..15. */
  readonly length: number;
  readonly form: Form;
}

/**
 * Why bytes did not decode. "not-in-subset": the CPU model raises #UD; `length` counts the
 * bytes examined. "truncated": the buffer ended; `length` is how many bytes the decoder needed.
 */
export interface DecodeError {
  readonly kind: 'not-in-subset' | 'truncated';
  readonly length: number;
  readonly message: string;
}

export type DecodeResult = Instruction | DecodeError;

export function isInstruction(result: DecodeResult): result is Instruction {
  return result.kind === 'instruction';
}

export type { ControlRegister, GeneralRegister, Register };

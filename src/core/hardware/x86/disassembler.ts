// NASM-syntax text for decoded instructions. The text is chosen so that NASM (and our
// assembler) turn it back into the same bytes whenever NASM itself could have produced them:
// size keywords appear where no register gives the size, "short" marks rel8 jumps (NASM makes
// a jump to a plain number near), "strict" keeps a full-size immediate that would fit in imm8,
// and [byte ...] / [dword ...] keep a displacement size NASM would not pick by itself.

import { decode } from './decoder.ts';
import type { ImmediateOperand, Instruction, MemoryOperand, Operand, RelativeOperand } from './instruction.ts';
import { FORMS_BY_MNEMONIC, patternSizesMemory } from './opcode-table.ts';
import { EBP, registerName } from './registers.ts';

const SIZE_KEYWORDS: Readonly<Record<number, string>> = { 8: 'byte', 16: 'word', 32: 'dword' };

function hex(value: number): string {
  return `0x${value.toString(16)}`;
}

function signedHex(value: number): string {
  return value < 0 ? `-${hex(-value)}` : hex(value);
}

/** Whether the mnemonic also has a sign-extended imm8 form that NASM would prefer. */
function hasSignExtendedForm(instruction: Instruction): boolean {
  return (FORMS_BY_MNEMONIC.get(instruction.mnemonic) ?? []).some((form) => form.operands.some((pattern) => pattern.type === 'Ibs'));
}

function hasNearJumpForm(instruction: Instruction): boolean {
  return (FORMS_BY_MNEMONIC.get(instruction.mnemonic) ?? []).some((form) => form.operands.some((pattern) => pattern.type === 'J' && pattern.size === 'z'));
}

function fitsSignExtendedByte(value: number, size: 16 | 32): boolean {
  const top = size === 32 ? 0xffffffff : 0xffff;
  return value <= 0x7f || (value >= top - 0x7f && value <= top);
}

function formatImmediate(operand: ImmediateOperand, instruction: Instruction): string {
  if (operand.encodedSize === 0) return String(operand.value);
  if (operand.encodedSize === 8 && operand.size > 8) {
    // Sign-extended imm8: show the signed value the programmer most likely wrote.
    return signedHex(operand.value >= 2 ** (operand.size - 1) ? operand.value - 2 ** operand.size : operand.value);
  }
  const size = operand.size;
  if (size !== 8 && fitsSignExtendedByte(operand.value, size) && hasSignExtendedForm(instruction)) {
    return `strict ${SIZE_KEYWORDS[size]} ${hex(operand.value)}`;
  }
  return hex(operand.value);
}

function formatRelative(operand: RelativeOperand, instruction: Instruction, address: number): string {
  const target = (address + instruction.length + operand.displacement) >>> 0;
  const short = operand.size === 8 && hasNearJumpForm(instruction);
  return `${short ? 'short ' : ''}${hex(target)}`;
}

/** The displacement size NASM picks by itself for this address (see encoder.ts). */
function naturalDisplacementSize(operand: MemoryOperand): 0 | 8 | 32 {
  if (operand.base === null) return 32;
  if (operand.displacement === 0 && operand.base.number !== EBP) return 0;
  return operand.displacement >= -128 && operand.displacement <= 127 ? 8 : 32;
}

function formatAddress(operand: MemoryOperand): string {
  if (operand.base === null && operand.index === null) return hex(operand.displacement >>> 0);
  const terms: string[] = [];
  if (operand.base !== null) terms.push(registerName(operand.base));
  if (operand.index !== null) terms.push(registerName(operand.index) + (operand.scale === 1 ? '' : `*${operand.scale}`));
  const forced = operand.displacementSize !== naturalDisplacementSize(operand);
  if (operand.displacement !== 0 || forced) terms.push(signedHex(operand.displacement));
  const text = terms.join('+').replace('+-', '-');
  if (!forced) return text;
  return `${operand.displacementSize === 8 ? 'byte' : 'dword'} ${text}`;
}

/** A size keyword is needed unless a general register of the same size fixes it (not CL or DX). */
function needsSizeKeyword(operand: MemoryOperand, instruction: Instruction): boolean {
  if (operand.size === 0 || operand.size === 48) return false;
  return !instruction.operands.some((other, i) => {
    const pattern = instruction.form.operands[i];
    const sameSize = other.kind === 'reg' && other.register.kind === 'gpr' && other.register.size === operand.size;
    return sameSize && pattern !== undefined && patternSizesMemory(pattern);
  });
}

function formatOperand(operand: Operand, instruction: Instruction, address: number): string {
  switch (operand.kind) {
    case 'reg':
      return registerName(operand.register);
    case 'imm':
      return formatImmediate(operand, instruction);
    case 'rel':
      return formatRelative(operand, instruction, address);
    case 'mem': {
      const text = `[${formatAddress(operand)}]`;
      return needsSizeKeyword(operand, instruction) ? `${SIZE_KEYWORDS[operand.size]} ${text}` : text;
    }
  }
}

/** NASM-syntax text of one instruction located at `address` (needed for branch targets). */
export function formatInstruction(instruction: Instruction, address: number): string {
  const prefix = instruction.prefixes.repeat === null ? '' : `${instruction.prefixes.repeat} `;
  const operands = instruction.operands.map((operand) => formatOperand(operand, instruction, address));
  return `${prefix}${instruction.mnemonic}${operands.length > 0 ? ` ${operands.join(', ')}` : ''}`;
}

export interface DisassemblyLine {
  readonly address: number;
  /** Offset of the first byte in the input buffer. */
  readonly offset: number;
  readonly length: number;
  readonly text: string;
}

/**
 * Linear-sweep disassembly of bytes[start, end), where bytes[0] is loaded at `origin`. Bytes that do not decode
 * come out one at a time as "db 0x..", as ndisasm does, so the sweep can resynchronise.
 */
export function disassemble(bytes: Uint8Array, origin = 0, start = 0, end = bytes.length): DisassemblyLine[] {
  const lines: DisassemblyLine[] = [];
  const limit = Math.min(end, bytes.length);
  let offset = start;
  while (offset < limit) {
    const address = (origin + offset) >>> 0;
    const result = decode(bytes.subarray(0, limit), offset);
    if (result.kind === 'instruction') {
      lines.push({ address, offset, length: result.length, text: formatInstruction(result, address) });
      offset += result.length;
    } else {
      lines.push({ address, offset, length: 1, text: `db ${hex(bytes[offset])}` });
      offset += 1;
    }
  }
  return lines;
}

// Table-driven IA-32 decoder for the modelled subset. Decoding never throws: bytes outside the
// subset give a "not-in-subset" result (the CPU model raises #UD) and a short buffer gives
// "truncated" (so a fetch that crosses into an unmapped page can be told apart).

import { readAddress, splitModrm } from './addressing.ts';
import type { ByteSource, Modrm } from './addressing.ts';
import type {
  DecodeError,
  DecodeResult,
  Form,
  ImmediateOperand,
  Instruction,
  MemorySize,
  Operand,
  OperandPattern,
  Prefixes,
} from './instruction.ts';
import { FORMS, modrmOperandIndex, sizeCodeBits } from './opcode-table.ts';
import { controlRegister, gpr } from './registers.ts';
import type { ControlRegister } from './registers.ts';

/** The architectural limit on instruction length (SDM Vol. 2, 2.3.11). */
export const MAX_INSTRUCTION_LENGTH = 15;

const PREFIX_OPERAND_SIZE = 0x66;
const PREFIX_REPNE = 0xf2;
const PREFIX_REP = 0xf3;
const ESCAPE_TWO_BYTE = 0x0f;
// LOCK, segment overrides and the address-size override exist but are outside the subset.
const PREFIXES_OUTSIDE_SUBSET: ReadonlySet<number> = new Set([0xf0, 0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65, 0x67]);

/** Internal: unwinds to decode(), which turns it into a result. Never escapes this module. */
class DecodeFailure extends Error {
  constructor(readonly result: DecodeError) {
    super(result.message);
  }
}

function notInSubset(length: number, message: string): DecodeFailure {
  return new DecodeFailure({ kind: 'not-in-subset', length, message });
}

class ByteReader implements ByteSource {
  private position: number;

  constructor(
    private readonly bytes: Uint8Array,
    private readonly start: number,
  ) {
    this.position = start;
  }

  get consumed(): number {
    return this.position - this.start;
  }

  peek(): number | undefined {
    return this.position < this.bytes.length ? this.bytes[this.position] : undefined;
  }

  byte(): number {
    if (this.position >= this.bytes.length) {
      const length = this.consumed + 1;
      throw new DecodeFailure({ kind: 'truncated', length, message: `instruction needs at least ${length} bytes` });
    }
    const value = this.bytes[this.position];
    this.position += 1;
    return value;
  }

  int8(): number {
    return (this.byte() << 24) >> 24;
  }

  uint16(): number {
    return this.byte() | (this.byte() << 8);
  }

  int32(): number {
    return this.uint16() | (this.uint16() << 16);
  }
}

// Opcode maps: index 0 is the one-byte map, index 1 the 0F two-byte map. Each slot lists the
// candidate forms in table order; the first one whose constraints hold wins.
const OPCODE_MAPS: readonly (readonly Form[])[][] = buildOpcodeMaps();

function buildOpcodeMaps(): Form[][][] {
  const maps: Form[][][] = [0, 1].map(() => Array.from({ length: 256 }, () => []));
  for (const entry of FORMS) {
    if (entry.assemblerOnly) continue;
    const map = entry.opcode.length === 2 ? maps[1] : maps[0];
    const last = entry.opcode[entry.opcode.length - 1];
    const registers = entry.plusRegister ? 8 : 1;
    for (let r = 0; r < registers; r += 1) map[last + r].push(entry);
  }
  for (const slot of maps.flat()) assertModrmAgreement(slot);
  return maps;
}

/** Whether to read a ModRM byte is decided per opcode, so all forms of one opcode must agree. */
function assertModrmAgreement(slot: readonly Form[]): void {
  const uses = new Set(slot.map((entry) => entry.modrm.kind !== 'none'));
  if (uses.size > 1) throw new Error(`opcode table: forms of ${slot[0].mnemonic} disagree on ModRM`);
}

interface PrefixState {
  operandSizeOverride: boolean;
  repeatByte: number | null;
}

function readPrefixes(reader: ByteReader): PrefixState {
  const state: PrefixState = { operandSizeOverride: false, repeatByte: null };
  for (;;) {
    const byte = reader.peek();
    if (byte === PREFIX_OPERAND_SIZE && !state.operandSizeOverride) state.operandSizeOverride = true;
    else if ((byte === PREFIX_REP || byte === PREFIX_REPNE) && state.repeatByte === null) state.repeatByte = byte;
    else if (byte !== undefined && isPrefix(byte)) throw notInSubset(reader.consumed + 1, `prefix ${hex(byte)} is not in the subset`);
    else return state;
    reader.byte();
  }
}

function isPrefix(byte: number): boolean {
  return PREFIXES_OUTSIDE_SUBSET.has(byte) || byte === PREFIX_OPERAND_SIZE || byte === PREFIX_REP || byte === PREFIX_REPNE;
}

interface OpcodeBytes {
  readonly candidates: readonly Form[];
  /** The last opcode byte read: "+r" forms carry a register number in its low bits. */
  readonly last: number;
  readonly text: string;
}

function readOpcode(reader: ByteReader): OpcodeBytes {
  const first = reader.byte();
  if (first !== ESCAPE_TWO_BYTE) return { candidates: OPCODE_MAPS[0][first], last: first, text: hex(first) };
  const second = reader.byte();
  return { candidates: OPCODE_MAPS[1][second], last: second, text: `${hex(first)} ${hex(second)}` };
}

interface Selection {
  readonly form: Form;
  readonly modrm: Modrm | null;
}

function formMatches(entry: Form, prefixes: PrefixState, modrmByte: number | null): boolean {
  const operandSize = prefixes.operandSizeOverride ? 16 : 32;
  if (!entry.operandSizes.includes(operandSize)) return false;
  if (entry.mandatoryPrefix !== null) {
    if (prefixes.repeatByte !== entry.mandatoryPrefix) return false;
  } else if (prefixes.repeatByte !== null && !entry.repeatable) return false;
  if (modrmByte === null) return true;
  const modrm = splitModrm(modrmByte);
  if (entry.modrm.kind === 'digit' && entry.modrm.digit !== modrm.reg) return false;
  if (entry.modrm.kind === 'fixed' && entry.modrm.value !== modrmByte) return false;
  const memoryOnly = entry.operands.some((pattern) => pattern.type === 'M');
  return !(memoryOnly && modrm.mod === 3);
}

function selectForm(reader: ByteReader, opcode: OpcodeBytes, prefixes: PrefixState): Selection {
  if (opcode.candidates.length === 0) {
    throw notInSubset(reader.consumed, `opcode ${opcode.text} is not in the subset`);
  }
  const modrmByte = opcode.candidates[0].modrm.kind === 'none' ? null : reader.byte();
  const entry = opcode.candidates.find((candidate) => formMatches(candidate, prefixes, modrmByte));
  if (entry === undefined) {
    const detail = modrmByte === null ? '' : ` with ModRM ${hex(modrmByte)}`;
    throw notInSubset(reader.consumed, `opcode ${opcode.text}${detail} is not in the subset with these prefixes`);
  }
  return { form: entry, modrm: modrmByte === null ? null : splitModrm(modrmByte) };
}

interface OperandContext {
  readonly reader: ByteReader;
  readonly selection: Selection;
  readonly operandSize: 16 | 32;
  readonly opcodeRegister: number;
  readonly memory: Operand | null;
}

function immediate(value: number, size: 8 | 16 | 32, encodedSize: 0 | 8 | 16 | 32): ImmediateOperand {
  const mask = size === 32 ? 0xffffffff : (1 << size) - 1;
  return { kind: 'imm', value: (value & mask) >>> 0, size, encodedSize };
}

function readImmediate(reader: ByteReader, size: 8 | 16 | 32): ImmediateOperand {
  if (size === 8) return immediate(reader.byte(), 8, 8);
  if (size === 16) return immediate(reader.uint16(), 16, 16);
  return immediate(reader.int32(), 32, 32);
}

/** Reads the memory operand (SIB, displacement) that ModRM.rm names, before any immediate. */
function readMemoryOperand(reader: ByteReader, selection: Selection, operandSize: 16 | 32): Operand | null {
  const index = modrmOperandIndex(selection.form);
  const modrm = selection.modrm;
  const pattern = selection.form.operands[index];
  if (modrm === null || pattern === undefined || modrm.mod === 3 || pattern.type === 'R') return null;
  const address = readAddress(modrm, reader);
  let size: MemorySize = 0;
  if (pattern.type === 'M') size = pattern.bytes === 6 ? 48 : 0;
  else if (pattern.type === 'E') size = sizeCodeBits(pattern.size, operandSize);
  return { kind: 'mem', size, ...address };
}

function decodeOperand(pattern: OperandPattern, context: OperandContext): Operand {
  const { reader, selection, operandSize } = context;
  const modrm = selection.modrm ?? { mod: 0, reg: 0, rm: 0 };
  switch (pattern.type) {
    case 'E':
      return context.memory ?? { kind: 'reg', register: gpr(sizeCodeBits(pattern.size, operandSize), modrm.rm) };
    case 'M':
      if (context.memory === null) throw new Error('decoder: M operand without memory');
      return context.memory;
    case 'R':
      // MOV to/from CRn ignores mod and always means a register (SDM Vol. 2, MOV-Move to/from Control Registers).
      return { kind: 'reg', register: gpr(32, modrm.rm) };
    case 'C':
      return { kind: 'reg', register: decodeControlRegister(modrm.reg, reader) };
    case 'G':
      return { kind: 'reg', register: gpr(sizeCodeBits(pattern.size, operandSize), modrm.reg) };
    case 'Z':
      return { kind: 'reg', register: gpr(sizeCodeBits(pattern.size, operandSize), context.opcodeRegister) };
    case 'fixed':
      return { kind: 'reg', register: gpr(sizeCodeBits(pattern.size, operandSize), pattern.number) };
    case 'one':
      return immediate(1, 8, 0);
    case 'I':
      return readImmediate(reader, sizeCodeBits(pattern.size, operandSize));
    case 'Ibs':
      return immediate(reader.int8(), operandSize, 8);
    case 'J':
      return pattern.size === 'b'
        ? { kind: 'rel', displacement: reader.int8(), size: 8 }
        : { kind: 'rel', displacement: reader.int32(), size: 32 };
    case 'O':
      return moffs(reader.int32(), sizeCodeBits(pattern.size, operandSize));
  }
}

function moffs(displacement: number, size: 8 | 16 | 32): Operand {
  return { kind: 'mem', size, base: null, index: null, scale: 1, displacement, displacementSize: 32 };
}

function decodeControlRegister(number: number, reader: ByteReader): ControlRegister {
  const register = controlRegister(number);
  if (register === undefined) throw notInSubset(reader.consumed, `CR${number} does not exist (#UD)`);
  return register;
}

function decodeInstruction(reader: ByteReader): Instruction {
  const prefixState = readPrefixes(reader);
  const opcode = readOpcode(reader);
  const selection = selectForm(reader, opcode, prefixState);
  const operandSize = prefixState.operandSizeOverride ? 16 : 32;
  const formOpcode = selection.form.opcode;
  const context: OperandContext = {
    reader,
    selection,
    operandSize,
    opcodeRegister: opcode.last - formOpcode[formOpcode.length - 1],
    memory: readMemoryOperand(reader, selection, operandSize),
  };
  const operands = selection.form.operands.map((pattern) => decodeOperand(pattern, context));
  const prefixes: Prefixes = {
    repeat: repeatPrefixOf(selection.form, prefixState),
    operandSizeOverride: prefixState.operandSizeOverride,
  };
  return { kind: 'instruction', mnemonic: selection.form.mnemonic, operands, operandSize, prefixes, length: reader.consumed, form: selection.form };
}

function repeatPrefixOf(entry: Form, prefixes: PrefixState): Prefixes['repeat'] {
  if (!entry.repeatable || prefixes.repeatByte === null) return null;
  return prefixes.repeatByte === PREFIX_REP ? 'rep' : 'repne';
}

function hex(byte: number): string {
  return byte.toString(16).padStart(2, '0');
}

/**
 * Decodes one instruction at `offset`. Never throws on any input: returns the instruction,
 * or a DecodeError whose `length` is between 1 and 15.
 */
export function decode(bytes: Uint8Array, offset: number): DecodeResult {
  if (!Number.isInteger(offset) || offset < 0) throw new RangeError(`decode: bad offset ${offset}`);
  const reader = new ByteReader(bytes, offset);
  try {
    return decodeInstruction(reader);
  } catch (error) {
    if (error instanceof DecodeFailure) return error.result;
    throw error;
  }
}

// Public surface of the IA-32 subset: decoder, disassembler, assembler and the shared types.

export { decode, MAX_INSTRUCTION_LENGTH } from './decoder.ts';
export { disassemble, formatInstruction } from './disassembler.ts';
export type { DisassemblyLine } from './disassembler.ts';
export { assemble, AssemblyError, formatWarning } from './assembler.ts';
export type { AssemblyResult, AssemblyWarning, IncludeReader, SourceLine, SourceLocation } from './assembler.ts';
export { FORMS, FORMS_BY_MNEMONIC } from './opcode-table.ts';
export { CONDITIONAL_JUMPS, MNEMONICS, isInstruction } from './instruction.ts';
export type {
  DecodeError,
  DecodeResult,
  Form,
  ImmediateOperand,
  Instruction,
  MemoryOperand,
  MemorySize,
  Mnemonic,
  Operand,
  OperandPattern,
  Prefixes,
  RegisterOperand,
  RelativeOperand,
  RepeatPrefix,
} from './instruction.ts';
export * from './registers.ts';

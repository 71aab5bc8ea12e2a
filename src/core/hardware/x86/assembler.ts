// A two-phase NASM-compatible assembler for the modelled IA-32 subset ("nasm -f bin" output).
//
// Like NASM it repeats passes until no symbol moves: in each pass a backward reference sees
// the value from this pass and a forward reference the value from the previous one (or
// "unknown" in the first pass, where NASM optimistically assumes short jumps). Once stable,
// one final pass emits bytes and reports the errors that depend on final values
// (undefined symbols, short jumps out of range).

import { AssemblyError } from './asm/errors.ts';
import type { AssemblyWarning, SourceLocation } from './asm/errors.ts';
import { encodeInstruction, resolveAddress } from './asm/encoder.ts';
import type { EncodingContext, ResolvedOperand } from './asm/encoder.ts';
import { UNKNOWN, evaluate, isScalar, isUnknown, newHint, relocatable, scalar, scalarValue } from './asm/expression.ts';
import type { EvaluationEnvironment, Expression, Value } from './asm/expression.ts';
import { parseSource, type IncludeReader } from './asm/parser.ts';

export type { IncludeReader } from './asm/parser.ts';
import type { AlignFill, DataItem, ParsedOperand, Statement, TimesPrefix } from './asm/parser.ts';

export { AssemblyError, formatWarning } from './asm/errors.ts';
export type { AssemblyWarning, SourceLocation } from './asm/errors.ts';

export interface AssemblyResult {
  readonly bytes: Uint8Array;
  /** The org address of the first byte. */
  readonly origin: number;
  /** Every label and EQU symbol with its final value (labels as addresses). */
  readonly symbols: ReadonlyMap<string, number>;
  /** Which source line produced which bytes, in address order (for listings and debuggers). */
  readonly lines: readonly SourceLine[];
  /** What NASM would warn about, in source order. */
  readonly warnings: readonly AssemblyWarning[];
}

export interface SourceLine {
  /** 1-based line number in the source. */
  readonly line: number;
  readonly address: number;
  /** Bytes the line produced, all repetitions of a TIMES included. */
  readonly length: number;
}

/** NASM gives up after a similar number of optimisation passes. */
const MAX_PASSES = 100;
/** Guards against "times 0x7fffffff nop" exhausting memory. */
const MAX_OUTPUT_BYTES = 64 * 1024 * 1024;

type SymbolTable = Map<string, Value>;

class Pass implements EvaluationEnvironment {
  private readonly defined: SymbolTable = new Map();
  private readonly output: number[] = [];
  private readonly lines: SourceLine[] = [];
  private offset = 0n;
  private location: SourceLocation = { file: '', line: 0, column: 0 };
  here = 0n;

  constructor(
    private readonly previous: SymbolTable | null,
    private readonly origin: bigint,
    private readonly final: boolean,
  ) {}

  fail(column: number, message: string): never {
    throw new AssemblyError({ ...this.location, column }, message);
  }

  lookup(name: string, column: number): Value {
    const value = this.defined.get(name) ?? this.previous?.get(name);
    if (value !== undefined) return value;
    if (this.final) this.fail(column, `symbol '${name}' not defined`);
    return UNKNOWN;
  }

  run(statements: readonly Statement[]): { symbols: SymbolTable; bytes: number[]; lines: SourceLine[] } {
    for (const statement of statements) {
      this.location = statement.location;
      this.here = this.offset;
      this.execute(statement);
      this.recordLine(statement);
    }
    return { symbols: this.defined, bytes: this.output, lines: this.lines };
  }

  private recordLine(statement: Statement): void {
    const length = Number(this.offset - this.here);
    if (!this.final || length === 0) return;
    const address = Number(BigInt.asUintN(32, this.origin + this.here));
    this.lines.push({ line: statement.location.line, address, length });
  }

  private execute(statement: Statement): void {
    switch (statement.kind) {
      case 'label':
        return this.define(statement.name, relocatable(this.offset));
      case 'equ':
        return this.define(statement.name, this.equValue(statement.expression, statement.location.column));
      case 'org':
        return;
      case 'data':
        return this.repeat(statement.times, () => this.emitData(statement.unitBytes, statement.items));
      case 'instruction':
        return this.repeat(statement.times, () => this.emitInstruction(statement));
      case 'align':
        return this.align(statement.boundary, statement.fill);
    }
  }

  /** NASM's `align`: the fill, repeated until the offset is a multiple of the boundary. */
  private align(boundary: Expression, fill: AlignFill): void {
    const column = this.location.column;
    const value = evaluate(boundary, this);
    if (!isScalar(value)) this.fail(column, 'non-constant argument supplied to ALIGN');
    const alignment = scalarValue(value);
    if (alignment <= 0n || (alignment & (alignment - 1n)) !== 0n) this.fail(column, `alignment ${alignment} is not a power of two`);
    // NASM's align also raises the section's alignment, which moves an org that is not a multiple of it.
    if (this.origin % alignment !== 0n) {
      this.fail(column, `align ${alignment} after org 0x${this.origin.toString(16)}: NASM would move the whole image up to a multiple of ${alignment}; make org a multiple of ${alignment}`);
    }
    const count = (alignment - (this.offset % alignment)) % alignment;
    if (this.offset + count > MAX_OUTPUT_BYTES) this.fail(column, 'output too large');
    for (let i = 0n; i < count; i += 1n) this.execute(fill);
  }

  private define(name: string, value: Value): void {
    if (this.defined.has(name)) this.fail(this.location.column, `symbol '${name}' redefined`);
    this.defined.set(name, value);
  }

  /**
   * NASM defines an EQU whose value is not known yet (it names a later label) as the plain
   * number 0 for the rest of the pass, so later lines see a known value, not a forward reference.
   */
  private equValue(expression: Expression, column: number): Value {
    const value = this.evaluateScalarOrAddress(expression, column);
    return isUnknown(value) ? scalar(0n) : value;
  }

  private evaluateScalarOrAddress(expression: Expression, column: number): Value {
    const value = evaluate(expression, this);
    if (value.registers.length > 0) this.fail(column, 'invalid use of a register in an expression');
    return value;
  }

  private repeat(times: TimesPrefix | null, body: () => void): void {
    const count = times === null ? 1n : this.timesCount(times);
    for (let i = 0n; i < count; i += 1n) {
      body();
      // A body that emits a byte emits one each time: "times 0x7fffffff nop" fails now, not after 64 MiB of NOPs.
      if (i === 0n && this.offset > this.here && this.offset + count - 1n > MAX_OUTPUT_BYTES) this.fail(times?.column ?? this.location.column, 'output too large');
    }
  }

  private timesCount(times: TimesPrefix): bigint {
    const value = evaluate(times.count, this);
    if (!isScalar(value)) this.fail(times.column, 'non-constant argument supplied to TIMES');
    const count = scalarValue(value);
    if (count < 0n) this.fail(times.column, `TIMES value ${count} is negative`);
    return count;
  }

  private append(bytes: readonly number[]): void {
    this.offset += BigInt(bytes.length);
    if (this.offset > MAX_OUTPUT_BYTES) this.fail(this.location.column, 'output too large');
    if (this.final) for (const byte of bytes) this.output.push(byte);
  }

  private emitData(unitBytes: 1 | 2 | 4, items: readonly DataItem[]): void {
    for (const item of items) {
      if (item.kind === 'string') {
        const padding = (unitBytes - (item.bytes.length % unitBytes)) % unitBytes;
        this.append([...item.bytes, ...new Array<number>(padding).fill(0)]);
      } else {
        this.append(littleEndianBytes(this.dataNumber(item.expression, item.column), unitBytes));
      }
    }
  }

  private dataNumber(expression: Expression, column: number): bigint {
    const value = this.evaluateScalarOrAddress(expression, column);
    if (this.final && value.relocation !== 0 && value.relocation !== 1) {
      this.fail(column, 'expression is not a plain number or a single address');
    }
    return scalarValue(value) + BigInt(value.relocation) * this.origin;
  }

  private emitInstruction(statement: Extract<Statement, { kind: 'instruction' }>): void {
    const operands = statement.operands.map((operand) => this.resolveOperand(operand));
    const context: EncodingContext = {
      origin: this.origin,
      offset: this.offset,
      final: this.final,
      mnemonicColumn: statement.location.column,
      fail: (column, message) => this.fail(column, message),
    };
    this.append(encodeInstruction(statement.mnemonic, statement.repeat, operands, context));
  }

  private resolveOperand(operand: ParsedOperand): ResolvedOperand {
    if (operand.kind === 'register') return operand;
    if (operand.kind === 'immediate') {
      const value = evaluate(operand.expression, this);
      if (value.registers.length > 0) this.fail(operand.column, 'invalid use of a register in an expression');
      return { ...operand, value };
    }
    const hint = newHint();
    const value = evaluate(operand.expression, this, hint);
    const fail = (message: string): never => this.fail(operand.column, message);
    const address = resolveAddress(value, hint, operand.displacementSize, fail);
    return { kind: 'memory', size: operand.size, address, column: operand.column };
  }
}

function littleEndianBytes(value: bigint, count: number): number[] {
  const bytes: number[] = [];
  let rest = BigInt.asUintN(count * 8, value);
  for (let i = 0; i < count; i += 1) {
    bytes.push(Number(rest & 0xffn));
    rest >>= 8n;
  }
  return bytes;
}

/** The org value: a plain number that must not depend on labels (NASM needs it up front too). */
function findOrigin(statements: readonly Statement[]): bigint {
  const origins = statements.filter((statement) => statement.kind === 'org');
  const second = origins[1];
  if (second !== undefined) throw new AssemblyError(second.location, 'program origin redefined');
  const first = origins[0];
  if (first === undefined) return 0n;
  const environment: EvaluationEnvironment = {
    here: 0n,
    lookup: (name) => {
      throw new AssemblyError(first.location, `org must be a constant, not '${name}'`);
    },
    fail: (column, message) => {
      throw new AssemblyError({ ...first.location, column }, message);
    },
  };
  const value = evaluate(first.expression, environment);
  if (!isScalar(value)) throw new AssemblyError(first.location, 'org must be a constant');
  return BigInt.asUintN(32, scalarValue(value));
}

function sameSymbols(a: SymbolTable, b: SymbolTable | null): boolean {
  if (b === null || a.size !== b.size) return false;
  for (const [name, value] of a) {
    const other = b.get(name);
    // A symbol that stays unknown depends on an undefined one: the final pass reports that.
    if (other === undefined || value.unknown !== other.unknown) return false;
    if (value.simple !== other.simple || value.relocation !== other.relocation) return false;
  }
  return true;
}

function finalSymbols(symbols: SymbolTable, origin: bigint): Map<string, number> {
  const result = new Map<string, number>();
  for (const [name, value] of symbols) {
    const number = scalarValue(value) + BigInt(value.relocation) * origin;
    result.set(name, Number(BigInt.asIntN(64, number)));
  }
  return result;
}

/**
 * Assembles NASM-syntax source to the bytes "nasm -f bin" would produce. `fileName` is used
 * only in error positions. Throws AssemblyError for mistakes in the source.
 */
export function assemble(source: string, fileName = 'input.asm', defines: Readonly<Record<string, number>> = {}, readInclude?: IncludeReader): AssemblyResult {
  // Defines are parsed apart, so the source's own line numbers stay right in messages.
  const predefined = Object.entries(defines).map(([name, value]) => `${name} equ ${value}`).join('\n');
  const parsed = parseSource(source, fileName, readInclude);
  const statements = [...(predefined === '' ? [] : parseSource(predefined, `${fileName} (defines)`).statements), ...parsed.statements];
  const origin = findOrigin(statements);
  let previous: SymbolTable | null = null;
  for (let pass = 1; pass <= MAX_PASSES; pass += 1) {
    const { symbols } = new Pass(previous, origin, false).run(statements);
    if (sameSymbols(symbols, previous)) {
      const result = new Pass(symbols, origin, true).run(statements);
      return {
        bytes: Uint8Array.from(result.bytes),
        origin: Number(origin),
        symbols: finalSymbols(result.symbols, origin),
        lines: result.lines,
        warnings: parsed.warnings,
      };
    }
    previous = symbols;
  }
  throw new AssemblyError({ file: fileName, line: 1, column: 1 }, `symbol values did not settle after ${MAX_PASSES} passes`);
}

// NASM expressions: parsing to a tree, and evaluation to NASM's "vector" value model.
//
// NASM evaluates an expression to a sum of terms: a plain number (its EXPR_SIMPLE term),
// registers with coefficients, and multiples of a section base (labels, $ and $$ are
// "relocatable": their value is an offset from the section start, which org places). We keep
// the same model because NASM's encoding choices depend on it: a relocatable displacement
// always gets 32 bits, a relocatable immediate never takes the imm8 form, and which register
// of [r1+r2] becomes the base depends on the "hint" that evaluation leaves behind.

import { parseRegister } from '../registers.ts';
import type { Register } from '../registers.ts';
import type { TokenStream } from './token-stream.ts';

export type BinaryOperator = '|' | '^' | '&' | '<<' | '>>' | '+' | '-' | '*' | '/' | '//' | '%' | '%%';
export type UnaryOperator = '-' | '+' | '~';

export type Expression =
  | { readonly kind: 'number'; readonly value: bigint }
  | { readonly kind: 'symbol'; readonly name: string; readonly column: number }
  | { readonly kind: 'register'; readonly register: Register; readonly column: number }
  | { readonly kind: 'here'; readonly column: number }
  | { readonly kind: 'sectionStart'; readonly column: number }
  | { readonly kind: 'unary'; readonly operator: UnaryOperator; readonly operand: Expression; readonly column: number }
  | {
      readonly kind: 'binary';
      readonly operator: BinaryOperator;
      readonly left: Expression;
      readonly right: Expression;
      readonly column: number;
    };

// Lowest precedence first (NASM manual 3.5).
const BINARY_LEVELS: readonly (readonly BinaryOperator[])[] = [
  ['|'],
  ['^'],
  ['&'],
  ['<<', '>>'],
  ['+', '-'],
  ['*', '/', '//', '%', '%%'],
];

/** Maps a name as written (".loop") to the symbol it means ("main.loop"). */
export type NameQualifier = (name: string) => string;

export function parseExpression(stream: TokenStream, qualify: NameQualifier): Expression {
  return parseLevel(stream, qualify, 0);
}

function parseLevel(stream: TokenStream, qualify: NameQualifier, level: number): Expression {
  const operators = BINARY_LEVELS[level];
  if (operators === undefined) return parseUnary(stream, qualify);
  let left = parseLevel(stream, qualify, level + 1);
  for (;;) {
    const token = stream.peek();
    if (token?.kind !== 'punctuation' || !(operators as readonly string[]).includes(token.text)) return left;
    stream.next();
    const right = parseLevel(stream, qualify, level + 1);
    left = { kind: 'binary', operator: token.text as BinaryOperator, left, right, column: token.column };
  }
}

function parseUnary(stream: TokenStream, qualify: NameQualifier): Expression {
  const token = stream.peek();
  if (token?.kind === 'punctuation' && (token.text === '-' || token.text === '+' || token.text === '~')) {
    stream.next();
    return { kind: 'unary', operator: token.text, operand: parseUnary(stream, qualify), column: token.column };
  }
  return parsePrimary(stream, qualify);
}

function parsePrimary(stream: TokenStream, qualify: NameQualifier): Expression {
  const token = stream.next();
  switch (token.kind) {
    case 'number':
      return { kind: 'number', value: token.value };
    case 'string':
      return { kind: 'number', value: characterConstant(token.bytes, stream, token.column) };
    case 'here':
      return { kind: 'here', column: token.column };
    case 'sectionStart':
      return { kind: 'sectionStart', column: token.column };
    case 'identifier': {
      const register = token.escaped ? undefined : parseRegister(token.text);
      if (register !== undefined) return { kind: 'register', register, column: token.column };
      return { kind: 'symbol', name: qualify(token.text), column: token.column };
    }
    case 'punctuation':
      if (token.text !== '(') return stream.fail(token.column, `expected an expression, found '${token.text}'`);
      return parseParenthesised(stream, qualify);
  }
}

function parseParenthesised(stream: TokenStream, qualify: NameQualifier): Expression {
  const inner = parseExpression(stream, qualify);
  stream.expectPunctuation(')');
  return inner;
}

/** 'ab' is 0x6261: characters are stored little-endian, as NASM does. */
function characterConstant(bytes: readonly number[], stream: TokenStream, column: number): bigint {
  if (bytes.length > 8) stream.fail(column, 'character constant too long');
  return bytes.reduceRight((value, byte) => (value << 8n) | BigInt(byte), 0n);
}

// ---------------------------------------------------------------------------------------------
// Values

export interface RegisterTerm {
  readonly register: Register;
  readonly coefficient: bigint;
}

export interface Value {
  /** NASM's EXPR_SIMPLE term; null when the vector has none (it matters for the hint). */
  readonly simple: bigint | null;
  /** Multiples of the section base: 1 for a label or $, 0 for a plain number. */
  readonly relocation: number;
  readonly registers: readonly RegisterTerm[];
  /**
   * NASM's EXPR_UNKNOWN term: the coefficient of symbols not defined yet in this pass (a
   * forward reference in pass 1), null when there is none. Like NASM, unknowns that cancel
   * ("fwd - fwd2") leave a known 0, and adding anything to an unknown drops the rest.
   */
  readonly unknown: bigint | null;
}

/** NASM's effective-address hint: the first register written, and what happened to it since.
 * "summed" (two like terms were added, even two numbers) makes NASM fall back to its register
 * order; see resolveAddress in encoder.ts. */
export interface Hint {
  register: Register | null;
  type: 'none' | 'makebase' | 'notbase' | 'summed';
}

export function newHint(): Hint {
  return { register: null, type: 'none' };
}

export interface EvaluationEnvironment {
  /** The value of a symbol, or an unknown value when it is not defined yet. */
  lookup(name: string, column: number): Value;
  /** Offset from the section start of the current line ($). */
  readonly here: bigint;
  fail(column: number, message: string): never;
}

export const UNKNOWN: Value = Object.freeze({ simple: null, relocation: 0, registers: [], unknown: 1n });

export function scalar(value: bigint): Value {
  return { simple: BigInt.asIntN(64, value), relocation: 0, registers: [], unknown: null };
}

export function relocatable(offset: bigint): Value {
  return { simple: BigInt.asIntN(64, offset), relocation: 1, registers: [], unknown: null };
}

/** NASM's is_unknown: the value still depends on an undefined symbol. */
export function isUnknown(value: Value): boolean {
  return value.unknown !== null;
}

/** NASM's is_simple: a plain number (zero-valued terms do not count). */
export function isScalar(value: Value): boolean {
  return (value.unknown === null || value.unknown === 0n) && value.relocation === 0 && value.registers.length === 0;
}

/** NASM's is_just_unknown: nothing but an undefined symbol. */
function isJustUnknown(value: Value): boolean {
  return value.unknown !== null && value.unknown !== 0n && value.registers.length === 0;
}

export function scalarValue(value: Value): bigint {
  return value.simple ?? 0n;
}

/** Evaluates an expression; `hint` (for memory operands only) records NASM's base-register hint. */
export function evaluate(expression: Expression, environment: EvaluationEnvironment, hint?: Hint): Value {
  return new Evaluator(environment, hint).run(expression);
}

class Evaluator {
  constructor(
    private readonly environment: EvaluationEnvironment,
    private readonly hint: Hint | undefined,
  ) {}

  run(expression: Expression): Value {
    switch (expression.kind) {
      case 'number':
        return scalar(expression.value);
      case 'symbol':
        return this.environment.lookup(expression.name, expression.column);
      case 'here':
        return relocatable(this.environment.here);
      case 'sectionStart':
        return relocatable(0n);
      case 'register':
        return this.register(expression.register);
      case 'unary':
        return this.unary(expression.operator, this.run(expression.operand), expression.column);
      case 'binary':
        return this.binary(expression.operator, this.run(expression.left), this.run(expression.right), expression.column);
    }
  }

  private register(register: Register): Value {
    if (this.hint?.type === 'none') {
      this.hint.register = register;
      this.hint.type = 'makebase';
    }
    return { simple: null, relocation: 0, registers: [{ register, coefficient: 1n }], unknown: null };
  }

  private unary(operator: UnaryOperator, operand: Value, column: number): Value {
    if (operator === '+') return operand;
    if (operator === '-') return this.scale(operand, -1n, false);
    return this.scalarOperation('~', operand, scalar(0n), column, (a) => ~a);
  }

  private binary(operator: BinaryOperator, left: Value, right: Value, column: number): Value {
    switch (operator) {
      case '+':
        return this.add(left, right);
      case '-':
        return this.add(left, this.scale(right, -1n, false));
      case '*':
        return this.multiply(left, right, column);
      default:
        return this.scalarOperation(operator, left, right, column, (a, b) =>
          applyScalarOperator(operator, a, b, () => this.environment.fail(column, 'division by zero')),
        );
    }
  }

  /** NASM's add_vectors: like terms combine; combining two that do not cancel marks the hint "summed". */
  private add(left: Value, right: Value): Value {
    const registers = this.addRegisters(left.registers, right.registers);
    // NASM's add_vectors stops after the unknown term: the number and section parts are lost.
    if (left.unknown !== null || right.unknown !== null) {
      return { simple: null, relocation: 0, registers, unknown: this.addTerms(left.unknown, right.unknown) };
    }
    const simple = this.addTerms(left.simple, right.simple);
    return { simple, relocation: left.relocation + right.relocation, registers, unknown: null };
  }

  /** Sum of two optional terms; a zero sum disappears from the vector. */
  private addTerms(a: bigint | null, b: bigint | null): bigint | null {
    if (a === null || b === null) return a ?? b;
    const sum = BigInt.asIntN(64, a + b);
    if (sum === 0n) return null;
    this.markSummed();
    return sum;
  }

  private addRegisters(left: readonly RegisterTerm[], right: readonly RegisterTerm[]): RegisterTerm[] {
    const registers = [...left];
    for (const term of right) {
      const at = registers.findIndex((existing) => existing.register === term.register);
      if (at < 0) {
        registers.push(term);
        continue;
      }
      const coefficient = this.addTerms(registers[at].coefficient, term.coefficient);
      registers.splice(at, 1, ...(coefficient === null ? [] : [{ register: term.register, coefficient }]));
    }
    return registers;
  }

  private markSummed(): void {
    if (this.hint !== undefined) this.hint.type = 'summed';
  }

  private multiply(left: Value, right: Value, column: number): Value {
    if (isScalar(left)) return this.scale(right, scalarValue(left), true);
    if (isScalar(right)) return this.scale(left, scalarValue(right), true);
    if (isJustUnknown(left) && isJustUnknown(right)) return UNKNOWN;
    return this.environment.fail(column, 'unable to multiply two non-scalar objects');
  }

  /** NASM's scalar_mult: multiplying the hinted register means it was not meant as the base. */
  private scale(value: Value, factor: bigint, affectsHint: boolean): Value {
    const hint = this.hint;
    if (affectsHint && hint?.type === 'makebase' && value.registers.some((term) => term.register === hint.register)) {
      hint.type = 'notbase';
    }
    const times = (term: bigint | null): bigint | null => (term === null ? null : BigInt.asIntN(64, term * factor));
    return {
      simple: times(value.simple),
      relocation: value.relocation * Number(factor),
      registers: value.registers
        .map((term) => ({ register: term.register, coefficient: term.coefficient * factor }))
        .filter((term) => term.coefficient !== 0n),
      unknown: times(value.unknown),
    };
  }

  private scalarOperation(operator: string, left: Value, right: Value, column: number, apply: (a: bigint, b: bigint) => bigint): Value {
    const acceptable = (value: Value) => isScalar(value) || isJustUnknown(value);
    if (!acceptable(left) || !acceptable(right)) {
      return this.environment.fail(column, `'${operator}' operator may only be applied to scalar values`);
    }
    if (isJustUnknown(left) || isJustUnknown(right)) return UNKNOWN;
    return scalar(apply(scalarValue(left), scalarValue(right)));
  }
}

const unsigned = (value: bigint): bigint => BigInt.asUintN(64, value);

/** NASM semantics: "/" and "%" are unsigned, "//" and "%%" signed, ">>" is a logical shift. */
function applyScalarOperator(operator: BinaryOperator, a: bigint, b: bigint, divisionByZero: () => never): bigint {
  switch (operator) {
    case '|':
      return a | b;
    case '^':
      return a ^ b;
    case '&':
      return a & b;
    case '<<':
      return b >= 64n || b < 0n ? 0n : a << b;
    case '>>':
      return b >= 64n || b < 0n ? 0n : unsigned(a) >> b;
    case '/':
      return b === 0n ? divisionByZero() : unsigned(a) / unsigned(b);
    case '%':
      return b === 0n ? divisionByZero() : unsigned(a) % unsigned(b);
    case '//':
      return b === 0n ? divisionByZero() : a / b;
    case '%%':
      return b === 0n ? divisionByZero() : a % b;
    default:
      throw new Error(`expression: ${operator} is not a scalar operator`);
  }
}

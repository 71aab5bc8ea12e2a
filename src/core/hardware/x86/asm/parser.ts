// Turns NASM-syntax source text into statements. Names are resolved here only as far as
// local labels go (".loop" after "main:" means "main.loop", as in NASM); values come later,
// pass by pass, in assembler.ts.

import type { Mnemonic, RepeatPrefix } from '../instruction.ts';
import { MNEMONICS } from '../instruction.ts';
import { parseRegister } from '../registers.ts';
import type { Register } from '../registers.ts';
import { AssemblyError, type AssemblyWarning, type SourceLocation } from './errors.ts';
import { NASM_INSTRUCTION_WORDS, NASM_NOT_LABEL_WORDS, NASM_RESERVED_WORDS } from './nasm-words.ts';
import { parseExpression } from './expression.ts';
import type { Expression, NameQualifier } from './expression.ts';
import { tokenizeLine } from './lexer.ts';
import { TokenStream } from './token-stream.ts';

export type SizeKeyword = 8 | 16 | 32;

export type ParsedOperand =
  | { readonly kind: 'register'; readonly register: Register; readonly column: number }
  | {
      readonly kind: 'memory';
      readonly size: SizeKeyword | null;
      /** [byte ...] / [dword ...]: forces the displacement size. */
      readonly displacementSize: 8 | 32 | null;
      readonly expression: Expression;
      readonly column: number;
    }
  | {
      readonly kind: 'immediate';
      readonly size: SizeKeyword | null;
      readonly strict: boolean;
      readonly distance: 'short' | 'near' | null;
      readonly expression: Expression;
      readonly column: number;
    };

/** "times N": repeat the rest of the line N times. */
export interface TimesPrefix {
  readonly count: Expression;
  readonly column: number;
}

export type DataItem =
  | { readonly kind: 'string'; readonly bytes: readonly number[] }
  | { readonly kind: 'expression'; readonly expression: Expression; readonly column: number };

/** What `align` pads with: one instruction or data directive, repeated. */
export type AlignFill = Extract<Statement, { kind: 'data' | 'instruction' }>;

export type Statement =
  | { readonly kind: 'label'; readonly name: string; readonly location: SourceLocation }
  /** `align N[, fill]`: NASM's macro, `times (((N) - (($-$$) % (N))) % (N)) fill`, fill NOP by default. */
  | { readonly kind: 'align'; readonly boundary: Expression; readonly fill: AlignFill; readonly location: SourceLocation }
  | { readonly kind: 'equ'; readonly name: string; readonly expression: Expression; readonly location: SourceLocation }
  | { readonly kind: 'org'; readonly expression: Expression; readonly location: SourceLocation }
  | {
      readonly kind: 'data';
      readonly unitBytes: 1 | 2 | 4;
      readonly items: readonly DataItem[];
      readonly times: TimesPrefix | null;
      readonly location: SourceLocation;
    }
  | {
      readonly kind: 'instruction';
      readonly mnemonic: Mnemonic;
      readonly repeat: RepeatPrefix | null;
      readonly operands: readonly ParsedOperand[];
      readonly times: TimesPrefix | null;
      readonly location: SourceLocation;
    };

/** NASM's other spellings of the canonical mnemonics. */
// Maps rather than object literals: source words such as "constructor" must not find anything.
const MNEMONIC_ALIASES: ReadonlyMap<string, Mnemonic> = new Map(
  Object.entries({
    jb: 'jc', jnae: 'jc', jae: 'jnc', jnb: 'jnc', je: 'jz', jne: 'jnz', jbe: 'jna', jnbe: 'ja',
    jp: 'jpe', jnp: 'jpo', jnge: 'jl', jge: 'jnl', jle: 'jng', jnle: 'jg',
    sal: 'shl', iret: 'iretd', pusha: 'pushad', popa: 'popad', pushf: 'pushfd', popf: 'popfd',
  } satisfies Record<string, Mnemonic>),
);

const REPEAT_PREFIXES: ReadonlyMap<string, RepeatPrefix> = new Map([
  ['rep', 'rep'], ['repe', 'rep'], ['repz', 'rep'], ['repne', 'repne'], ['repnz', 'repne'],
]);

const DATA_UNITS: ReadonlyMap<string, 1 | 2 | 4> = new Map([['db', 1], ['dw', 2], ['dd', 4]]);
const SIZE_KEYWORDS: ReadonlyMap<string, SizeKeyword> = new Map([['byte', 8], ['word', 16], ['dword', 32]]);
const UNSUPPORTED_SIZES = new Set(['qword', 'tword', 'oword', 'yword', 'zword', 'far', 'fword']);
const DIRECTIVES = new Set(['bits', 'org', 'times', 'equ', 'align']);

const CANONICAL_MNEMONICS: ReadonlySet<string> = new Set(MNEMONICS);

function lookupMnemonic(word: string): Mnemonic | undefined {
  if (CANONICAL_MNEMONICS.has(word)) return word as Mnemonic;
  return MNEMONIC_ALIASES.get(word);
}

/** Words that can start the body of a statement. */
function isStatementKeyword(word: string): boolean {
  return lookupMnemonic(word) !== undefined || REPEAT_PREFIXES.has(word) || DATA_UNITS.has(word) || DIRECTIVES.has(word);
}

/** Why a word cannot start a statement here; NASM's own reading says why it is no label either. */
function unknownWord(word: string): string {
  const known = NASM_INSTRUCTION_WORDS.has(word.toLowerCase()) || NASM_NOT_LABEL_WORDS.has(word.toLowerCase());
  return `unknown instruction or directive '${word}'${known ? ' (NASM has it; it is outside the modelled subset)' : ''}`;
}

/** Why NASM would not read this word, at the start of a line, as a label (undefined: it would). */
function whyNotALabel(word: string, written: string, colon: boolean, alone: boolean): string | undefined {
  if (NASM_RESERVED_WORDS.has(word) || parseRegister(word) !== undefined) {
    return `label or instruction expected at start of line: '${written}' is a register or keyword`;
  }
  if (colon) return NASM_NOT_LABEL_WORDS.has(word) ? `'${written}' is a NASM prefix or directive, which NASM does not take for a label; rename the label` : undefined;
  if (NASM_INSTRUCTION_WORDS.has(word) || (NASM_NOT_LABEL_WORDS.has(word) && !alone)) return unknownWord(written);
  return undefined;
}

/** Local labels start with one dot; "..@name" is NASM's non-local, scope-preserving form. */
function isLocalName(name: string): boolean {
  return name.startsWith('.') && !name.startsWith('..');
}

/**
 * Reads an included file: `path` as the source wrote it. Returns the text and the name to
 * report locations with.
 */
export type IncludeReader = (path: string) => { file: string; text: string };

/** `%include "path"` (or 'path'), alone on its line but for a comment. */
const INCLUDE = /^\s*%include\s+(["'])([^"']+)\1\s*(;.*)?$/i;
/** Deeper than this, an include is taken for a cycle. */
const INCLUDE_DEPTH_MAX = 16;

class SourceParser {
  private scope = '';
  private bitsSeen = false;
  private readonly statements: Statement[] = [];
  readonly warnings: AssemblyWarning[] = [];

  constructor(private readonly readInclude: IncludeReader | undefined) {}

  readonly qualify: NameQualifier = (name) => (isLocalName(name) ? `${this.scope}${name}` : name);

  /** Parses a file's text; an included file's lines go in where its %include stood, as in NASM. */
  parse(source: string, file: string, depth = 0): Statement[] {
    source.split('\n').forEach((text, index) => {
      const line = index + 1;
      const include = INCLUDE.exec(text);
      if (include) return this.include(include[2], { file, line, column: text.indexOf('%') + 1 }, depth);
      const tokens = tokenizeLine({ file, line, text });
      if (tokens.length > 0) this.parseLine(new TokenStream(tokens, file, line, text.length + 1));
    });
    return this.statements;
  }

  private include(path: string, at: SourceLocation, depth: number): void {
    if (this.readInclude === undefined) throw new AssemblyError(at, `%include "${path}": this source was given without its folder, so it cannot include files`);
    if (depth >= INCLUDE_DEPTH_MAX) throw new AssemblyError(at, `%include "${path}": includes nested ${INCLUDE_DEPTH_MAX} deep (a file that includes itself?)`);
    let included: { file: string; text: string };
    try {
      included = this.readInclude(path);
    } catch (error) {
      throw new AssemblyError(at, `%include "${path}": ${(error as Error).message}`);
    }
    this.parse(included.text, included.file, depth + 1);
  }

  private parseLine(stream: TokenStream): void {
    if (stream.isPunctuation('[')) return this.parseBracketedDirective(stream);
    const label = this.parseLabel(stream);
    if (label !== null && stream.keyword() === 'equ') {
      stream.next();
      const expression = parseExpression(stream, this.qualify);
      stream.expectEnd();
      this.statements.push({ kind: 'equ', name: label.name, expression, location: label.location });
      return;
    }
    if (label !== null) this.defineLabel(label.written, label.name, label.location);
    if (!stream.atEnd()) this.parseBody(stream);
  }

  /**
   * A name that starts a line is a label when NASM would take it for one: it has a colon, or
   * it is a word NASM knows nothing of (then, alone on its line, it gets NASM's label-orphan
   * warning). A register or keyword is no label; an instruction NASM has and we lack is refused
   * rather than turned into a label, which would silently drop it from the program.
   */
  private parseLabel(stream: TokenStream): { written: string; name: string; location: SourceLocation } | null {
    const token = stream.peek();
    if (token?.kind !== 'identifier') return null;
    const colon = stream.isPunctuation(':', 1);
    const alone = stream.peek(1) === undefined;
    // "$name" is a name whatever the word; otherwise NASM's reading of the word decides.
    if (!token.escaped) {
      const word = token.text.toLowerCase();
      if (!colon && isStatementKeyword(word)) return null;
      const problem = whyNotALabel(word, token.text, colon, alone);
      if (problem !== undefined) stream.fail(token.column, problem);
    }
    // Without a colon, a name is a label only when a directive or instruction follows (or
    // nothing): otherwise "movq eax, 1" would read as label "movq" and blame "eax".
    const following = stream.keyword(1);
    if (!colon && !alone && (following === undefined || !isStatementKeyword(following))) stream.fail(token.column, unknownWord(token.text));
    const location = stream.location(token.column);
    if (!colon && alone) this.warnings.push({ location, message: 'label alone on a line without a colon might be in error [-w+label-orphan]' });
    stream.next();
    if (colon) stream.next();
    return { written: token.text, name: this.qualify(token.text), location };
  }

  /** A non-local label opens the scope that later ".name" labels belong to (EQU does not). */
  private defineLabel(written: string, name: string, location: SourceLocation): void {
    if (!isLocalName(written) && !written.startsWith('..@')) this.scope = name;
    this.statements.push({ kind: 'label', name, location });
  }

  private parseBracketedDirective(stream: TokenStream): void {
    stream.next();
    const keyword = stream.keyword();
    if (keyword !== 'bits' && keyword !== 'org') stream.fail(stream.column(), 'expected bits or org inside [ ]');
    const directiveColumn = stream.column();
    stream.next();
    this.parseDirective(keyword, stream, directiveColumn, ']');
  }

  private parseDirective(keyword: 'bits' | 'org', stream: TokenStream, column: number, closing: string | null): void {
    const expression = parseExpression(stream, this.qualify);
    if (closing !== null) stream.expectPunctuation(closing);
    stream.expectEnd();
    if (keyword === 'org') {
      this.statements.push({ kind: 'org', expression, location: stream.location(column) });
      return;
    }
    if (expression.kind !== 'number' || expression.value !== 32n) {
      stream.fail(column, 'only "bits 32" is supported');
    }
    this.bitsSeen = true;
  }

  private parseBody(stream: TokenStream): void {
    const location = stream.location();
    const times = this.parseTimes(stream);
    const repeat = this.parseRepeatPrefix(stream);
    const word = stream.keyword();
    const column = stream.column();
    if (word === undefined) stream.fail(column, 'expected an instruction or directive');
    stream.next();
    if ((word === 'bits' || word === 'org') && times === null && repeat === null) {
      return this.parseDirective(word, stream, column, null);
    }
    if (word === 'align' && times === null && repeat === null) return this.parseAlign(stream, stream.location(column));
    const unitBytes = DATA_UNITS.get(word);
    if (unitBytes !== undefined && repeat === null) {
      this.statements.push({ kind: 'data', unitBytes, items: this.parseDataItems(stream), times, location });
      return;
    }
    const mnemonic = lookupMnemonic(word);
    if (mnemonic === undefined) stream.fail(column, unknownWord(word));
    if (!this.bitsSeen) stream.fail(column, 'missing "bits 32": NASM would assemble 16-bit code here');
    const operands = this.parseOperands(stream);
    this.statements.push({ kind: 'instruction', mnemonic, repeat, operands, times, location: stream.location(column) });
  }

  private parseAlign(stream: TokenStream, location: SourceLocation): void {
    const boundary = parseExpression(stream, this.qualify);
    let fill: AlignFill = { kind: 'instruction', mnemonic: 'nop', repeat: null, operands: [], times: null, location };
    if (stream.takePunctuation(',')) {
      const column = stream.column();
      const before = this.statements.length;
      if (!stream.atEnd()) this.parseBody(stream);
      const added = this.statements.slice(before);
      const [body] = added;
      if (added.length !== 1 || (body.kind !== 'data' && body.kind !== 'instruction') || body.times !== null) {
        stream.fail(column, 'align N, FILL: FILL must be one instruction or data directive, like "db 0" or "int3"');
      }
      this.statements.length = before;
      fill = body;
    }
    stream.expectEnd();
    this.statements.push({ kind: 'align', boundary, fill, location });
  }

  private parseTimes(stream: TokenStream): TimesPrefix | null {
    if (stream.keyword() !== 'times') return null;
    const column = stream.next().column;
    return { count: parseExpression(stream, this.qualify), column };
  }

  private parseRepeatPrefix(stream: TokenStream): RepeatPrefix | null {
    const word = stream.keyword();
    const prefix = word === undefined ? undefined : REPEAT_PREFIXES.get(word);
    if (prefix === undefined) return null;
    stream.next();
    return prefix;
  }

  private parseDataItems(stream: TokenStream): DataItem[] {
    const items: DataItem[] = [];
    do {
      const token = stream.peek();
      const standalone = stream.isPunctuation(',', 1) || stream.peek(1) === undefined;
      if (token?.kind === 'string' && standalone) {
        stream.next();
        items.push({ kind: 'string', bytes: token.bytes });
      } else {
        const column = stream.column();
        items.push({ kind: 'expression', expression: parseExpression(stream, this.qualify), column });
      }
    } while (stream.takePunctuation(','));
    stream.expectEnd();
    return items;
  }

  private parseOperands(stream: TokenStream): ParsedOperand[] {
    const operands: ParsedOperand[] = [];
    if (stream.atEnd()) return operands;
    do operands.push(this.parseOperand(stream));
    while (stream.takePunctuation(','));
    stream.expectEnd();
    return operands;
  }

  private parseOperand(stream: TokenStream): ParsedOperand {
    const column = stream.column();
    const modifiers = parseModifiers(stream);
    if (stream.takePunctuation('[')) {
      if (modifiers.strict || modifiers.distance !== null) stream.fail(column, 'strict/short/near do not apply to memory');
      return this.parseMemory(stream, modifiers.size, column);
    }
    const token = stream.peek();
    const register = token?.kind === 'identifier' && !token.escaped ? parseRegister(token.text) : undefined;
    const alone = stream.isPunctuation(',', 1) || stream.peek(1) === undefined;
    if (register !== undefined && alone) {
      stream.next();
      if (modifiers.strict || modifiers.distance !== null || modifiers.size !== null) {
        stream.fail(column, 'size or distance keyword on a register');
      }
      return { kind: 'register', register, column };
    }
    const expression = parseExpression(stream, this.qualify);
    return { kind: 'immediate', ...modifiers, expression, column };
  }

  private parseMemory(stream: TokenStream, size: SizeKeyword | null, column: number): ParsedOperand {
    const word = stream.keyword();
    let displacementSize: 8 | 32 | null = null;
    if (word === 'byte' || word === 'dword') {
      stream.next();
      displacementSize = word === 'byte' ? 8 : 32;
    }
    const expression = parseExpression(stream, this.qualify);
    stream.expectPunctuation(']');
    return { kind: 'memory', size, displacementSize, expression, column };
  }
}

interface Modifiers {
  size: SizeKeyword | null;
  strict: boolean;
  distance: 'short' | 'near' | null;
}

function parseModifiers(stream: TokenStream): Modifiers {
  const modifiers: Modifiers = { size: null, strict: false, distance: null };
  for (;;) {
    const word = stream.keyword();
    if (word === undefined) return modifiers;
    if (UNSUPPORTED_SIZES.has(word)) stream.fail(stream.column(), `'${word}' operands are not in the subset`);
    if (word === 'strict') modifiers.strict = true;
    else if (word === 'short' || word === 'near') modifiers.distance = word;
    else {
      const size = SIZE_KEYWORDS.get(word);
      if (size === undefined) return modifiers;
      modifiers.size = size;
    }
    stream.next();
  }
}

export function parseSource(source: string, file: string, readInclude?: IncludeReader): { statements: Statement[]; warnings: AssemblyWarning[] } {
  const parser = new SourceParser(readInclude);
  return { statements: parser.parse(source, file), warnings: parser.warnings };
}

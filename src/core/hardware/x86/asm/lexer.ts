// Splits one line of NASM-syntax source into tokens. Numbers follow NASM's rules (0x.., ..h,
// 0b../..b, 0o../..q, underscores ignored); strings are '..', "..", or `..` with C escapes.

import { AssemblyError } from './errors.ts';

export type Token =
  | { readonly kind: 'identifier'; readonly text: string; readonly escaped: boolean; readonly column: number }
  | { readonly kind: 'number'; readonly value: bigint; readonly column: number }
  | { readonly kind: 'string'; readonly bytes: readonly number[]; readonly column: number }
  | { readonly kind: 'punctuation'; readonly text: string; readonly column: number }
  | { readonly kind: 'here'; readonly column: number }
  | { readonly kind: 'sectionStart'; readonly column: number };

// Longest first, so that "<<" wins over "<".
const PUNCTUATION = ['//', '%%', '<<', '>>', '+', '-', '*', '/', '%', '&', '|', '^', '~', '(', ')', '[', ']', ',', ':'];

const IDENTIFIER_START = /[A-Za-z_.?@]/;
const IDENTIFIER_PART = /[A-Za-z0-9_$#@~.?]/;
const NUMBER_PART = /[0-9A-Za-z_]/;

const RADIX_LETTERS: Readonly<Record<string, number>> = { x: 16, h: 16, d: 10, t: 10, o: 8, q: 8, b: 2, y: 2 };

const BACKQUOTE_ESCAPES: Readonly<Record<string, number>> = {
  n: 10, t: 9, r: 13, '0': 0, '\\': 92, "'": 39, '"': 34, '`': 96, a: 7, b: 8, f: 12, v: 11, e: 27,
};

export interface LineSource {
  readonly file: string;
  readonly line: number;
  readonly text: string;
}

class LineLexer {
  private position = 0;
  private readonly tokens: Token[] = [];

  constructor(private readonly source: LineSource) {}

  private fail(column: number, message: string): never {
    throw new AssemblyError({ file: this.source.file, line: this.source.line, column }, message);
  }

  run(): Token[] {
    const text = this.source.text;
    while (this.position < text.length) {
      const char = text[this.position];
      if (char === ';') break;
      if (char === ' ' || char === '\t' || char === '\r') this.position += 1;
      else this.tokens.push(this.next(char));
    }
    return this.tokens;
  }

  private next(char: string): Token {
    const column = this.position + 1;
    if (/[0-9]/.test(char)) return this.number(column);
    if (IDENTIFIER_START.test(char)) return this.identifier(column, false);
    if (char === '$') return this.dollar(column);
    if (char === "'" || char === '"' || char === '`') return this.string(column, char);
    const text = PUNCTUATION.find((candidate) => this.source.text.startsWith(candidate, this.position));
    if (text === undefined) return this.fail(column, `unexpected character '${char}'`);
    this.position += text.length;
    return { kind: 'punctuation', text, column };
  }

  private takeWhile(pattern: RegExp): string {
    const start = this.position;
    while (this.position < this.source.text.length && pattern.test(this.source.text[this.position])) this.position += 1;
    return this.source.text.slice(start, this.position);
  }

  private identifier(column: number, escaped: boolean): Token {
    return { kind: 'identifier', text: this.takeWhile(IDENTIFIER_PART), escaped, column };
  }

  /** "$$" is the section start, "$" the current line's address, "$0FF" hex, "$name" an escaped name. */
  private dollar(column: number): Token {
    const following = this.source.text[this.position + 1] ?? '';
    if (following === '$') {
      this.position += 2;
      return { kind: 'sectionStart', column };
    }
    this.position += 1;
    if (/[0-9]/.test(following)) return { kind: 'number', value: this.parseDigits(this.takeWhile(NUMBER_PART), 16, column), column };
    if (IDENTIFIER_START.test(following)) return this.identifier(column, true);
    return { kind: 'here', column };
  }

  private number(column: number): Token {
    const raw = this.takeWhile(NUMBER_PART).replaceAll('_', '');
    const lower = raw.toLowerCase();
    const prefixRadix = lower.length > 2 && lower[0] === '0' ? (RADIX_LETTERS[lower[1]] ?? 0) : 0;
    const suffixRadix = lower.length > 1 ? (RADIX_LETTERS[lower[lower.length - 1]] ?? 0) : 0;
    // NASM prefers the prefix when both readings exist and the prefix radix is larger ("0x10b").
    if (prefixRadix > suffixRadix) return { kind: 'number', value: this.parseDigits(lower.slice(2), prefixRadix, column), column };
    if (suffixRadix !== 0) return { kind: 'number', value: this.parseDigits(lower.slice(0, -1), suffixRadix, column), column };
    return { kind: 'number', value: this.parseDigits(lower, 10, column), column };
  }

  private parseDigits(digits: string, radix: number, column: number): bigint {
    if (digits === '') this.fail(column, 'invalid number');
    let value = 0n;
    for (const digit of digits) {
      const n = parseInt(digit, 36);
      if (!(n < radix)) this.fail(column, `invalid digit '${digit}' in base-${radix} number`);
      value = value * BigInt(radix) + BigInt(n);
    }
    return BigInt.asIntN(64, value);
  }

  private string(column: number, quote: string): Token {
    const text = this.source.text;
    const bytes: number[] = [];
    this.position += 1;
    while (this.position < text.length && text[this.position] !== quote) {
      if (quote === '`' && text[this.position] === '\\') {
        bytes.push(this.escape(column));
        this.position += 1;
      } else {
        const char = String.fromCodePoint(text.codePointAt(this.position) ?? 0);
        bytes.push(...utf8(char));
        this.position += char.length;
      }
    }
    if (this.position >= text.length) this.fail(column, 'unterminated string');
    this.position += 1;
    return { kind: 'string', bytes, column };
  }

  private escape(column: number): number {
    this.position += 1;
    const char = this.source.text[this.position] ?? '';
    if (char === 'x') {
      const digits = this.source.text.slice(this.position + 1, this.position + 3);
      if (!/^[0-9a-fA-F]{2}$/.test(digits)) this.fail(column, 'bad \\x escape');
      this.position += 2;
      return parseInt(digits, 16);
    }
    const value = BACKQUOTE_ESCAPES[char];
    if (value === undefined) return this.fail(column, `unknown escape \\${char}`);
    return value;
  }
}

function utf8(char: string): number[] {
  return Array.from(new TextEncoder().encode(char));
}

export function tokenizeLine(source: LineSource): Token[] {
  return new LineLexer(source).run();
}

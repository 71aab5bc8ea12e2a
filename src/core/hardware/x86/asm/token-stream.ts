// A cursor over one line's tokens, with errors that point at the offending column.

import { AssemblyError } from './errors.ts';
import type { SourceLocation } from './errors.ts';
import type { Token } from './lexer.ts';

export class TokenStream {
  private index = 0;

  constructor(
    private readonly tokens: readonly Token[],
    private readonly file: string,
    private readonly line: number,
    /** Column reported for errors at the end of the line. */
    private readonly endColumn: number,
  ) {}

  peek(ahead = 0): Token | undefined {
    return this.tokens[this.index + ahead];
  }

  next(): Token {
    const token = this.tokens[this.index];
    if (token === undefined) this.fail(this.endColumn, 'unexpected end of line');
    this.index += 1;
    return token;
  }

  atEnd(): boolean {
    return this.index >= this.tokens.length;
  }

  /** The column of the next token, or of the end of the line. */
  column(): number {
    return this.peek()?.column ?? this.endColumn;
  }

  location(column: number = this.column()): SourceLocation {
    return { file: this.file, line: this.line, column };
  }

  isPunctuation(text: string, ahead = 0): boolean {
    const token = this.peek(ahead);
    return token?.kind === 'punctuation' && token.text === text;
  }

  /** The lower-cased text of the next token if it is an unescaped identifier. */
  keyword(ahead = 0): string | undefined {
    const token = this.peek(ahead);
    return token?.kind === 'identifier' && !token.escaped ? token.text.toLowerCase() : undefined;
  }

  takePunctuation(text: string): boolean {
    if (!this.isPunctuation(text)) return false;
    this.index += 1;
    return true;
  }

  expectPunctuation(text: string): void {
    if (!this.takePunctuation(text)) this.fail(this.column(), `expected '${text}'`);
  }

  expectEnd(): void {
    if (!this.atEnd()) this.fail(this.column(), 'unexpected text after the statement');
  }

  fail(column: number, message: string): never {
    throw new AssemblyError(this.location(column), message);
  }
}

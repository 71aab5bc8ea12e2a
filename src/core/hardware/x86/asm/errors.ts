// Assembler errors carry a source position so that a caller can print them like a compiler.

export interface SourceLocation {
  readonly file: string;
  /** 1-based. */
  readonly line: number;
  /** 1-based, counting characters (a tab is one column). */
  readonly column: number;
}

/** A mistake in the source text being assembled (not a bug in the assembler). */
export class AssemblyError extends Error {
  override readonly name = 'AssemblyError';

  constructor(
    readonly location: SourceLocation,
    readonly detail: string,
  ) {
    super(`${location.file}:${location.line}:${location.column}: ${detail}`);
  }
}

/** Something NASM would warn about: the source assembles, but may not mean what it says. */
export interface AssemblyWarning {
  readonly location: SourceLocation;
  /** The text, ending with NASM's name for the warning, like "[-w+label-orphan]". */
  readonly message: string;
}

export function formatWarning(warning: AssemblyWarning): string {
  const { file, line, column } = warning.location;
  return `${file}:${line}:${column}: warning: ${warning.message}`;
}

/**
 * Plain-text helpers for the views. Every line the TUI draws is cut to an exact width here,
 * so a frame never wraps (a wrapped line would push the layout off the screen) and golden
 * frames compare character for character.
 */

/** Replaces what a terminal would not show as one cell (controls, non-ASCII) with '?'. */
export function printable(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, '?');
}

/** Exactly `width` cells: cut with '~' when too long, padded with spaces when short. */
export function fit(text: string, width: number): string {
  if (width <= 0) return '';
  const clean = printable(text);
  if (clean.length > width) return width === 1 ? '~' : `${clean.slice(0, width - 1)}~`;
  return clean.padEnd(width);
}

/** At most `width` cells, not padded. */
export function cut(text: string, width: number): string {
  return fit(text, width).trimEnd();
}

/** Splits text into at most `linesMax` lines of `width` cells, breaking at spaces where it can. */
export function wrap(text: string, width: number, linesMax: number): string[] {
  const lines: string[] = [];
  let rest = printable(text);
  while (rest.length > 0 && width > 0) {
    if (lines.length === linesMax - 1 || rest.length <= width) { lines.push(cut(rest, width)); break; }
    const space = rest.lastIndexOf(' ', width);
    const at = space > width / 2 ? space : width;
    lines.push(rest.slice(0, at));
    rest = rest.slice(at).trimStart();
  }
  return lines;
}

/** 0x-prefixed, zero-padded to `digits` hex digits. */
export function hex(value: number, digits = 8): string {
  return `0x${(value >>> 0).toString(16).padStart(digits, '0')}`;
}

/** 0x-prefixed without padding; '-' for the schema's "none" (-1). */
export function hexOrNone(value: number): string {
  return value < 0 ? '-' : `0x${value.toString(16)}`;
}

/** Two hex digits per byte, separated by spaces. */
export function hexBytes(bytes: Uint8Array): string {
  return [...bytes].map((b) => b.toString(16).padStart(2, '0')).join(' ');
}

/** Bytes as ASCII, '.' for anything unprintable. */
export function asciiBytes(bytes: Uint8Array): string {
  return [...bytes].map((b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.')).join('');
}

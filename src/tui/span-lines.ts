/**
 * What views hand to components: lines made of spans, each span optionally coloured. A view
 * decides the words; the component only draws them.
 */
import { printable } from './text.ts';

export interface Span {
  text: string;
  /** An Ink colour name; undefined draws in the terminal's colour. */
  color?: string;
}

export type Line = Span[];

export const line = (text: string, color?: string): Line => [{ text, color }];

/** Cuts a line's spans to `width` cells in total (an over-long line ends with '~'). */
export function fitLine(spans: Line, width: number): Line {
  const total = spans.reduce((n, s) => n + s.text.length, 0);
  const out: Line = [];
  let room = total > width ? width - 1 : width;
  for (const span of spans) {
    if (room <= 0) break;
    const text = printable(span.text).slice(0, room);
    out.push({ text, color: span.color });
    room -= text.length;
  }
  if (total > width && width > 0) out.push({ text: '~' });
  return out;
}

/** The plain text of a line. */
export function lineText(spans: Line): string {
  return spans.map((s) => s.text).join('');
}

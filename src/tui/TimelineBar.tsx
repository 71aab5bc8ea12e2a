/**
 * The timeline bar: the whole run squeezed into one line. '#' is the position; V violation,
 * Y fork point, F fault or exception, x VM exit, i input; '-' nothing of note; '.' not
 * indexed yet.
 */
import type { Line } from './span-lines.ts';
import { LineText } from './Lines.tsx';

export interface TimelineBarProps {
  /** The bar's cells as coloured spans (see barLine). */
  bar: Line;
  /** Columns available. */
  width: number;
}

export function TimelineBar({ bar, width }: TimelineBarProps) {
  return <LineText spans={bar} width={width} />;
}

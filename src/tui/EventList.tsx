/** The window of events around the position; the selected one is marked '>'. */
import type { Line } from './span-lines.ts';
import { Lines } from './Lines.tsx';
import { accent, markColor, type Theme } from './theme.ts';
import type { EventRowView } from './view.ts';

export interface EventListProps {
  /** The visible rows only (the controller reads no others). */
  rows: readonly EventRowView[];
  /** Terminal lines the list takes. */
  height: number;
  width: number;
  theme: Theme;
  /** Digits of the largest seq, so the seq column keeps its width while scrolling. */
  seqDigits: number;
}

function rowLine(row: EventRowView, digits: number, theme: Theme): Line {
  const seq = row.end ? ''.padStart(digits) : String(row.seq).padStart(digits);
  const selected = row.selected ? accent(theme, 'selected') : undefined;
  return [
    { text: row.mark, color: markColor(theme, row.mark) },
    { text: `${row.selected ? '>' : ' '}${seq}  ${row.text}`, color: selected },
  ];
}

export function EventList({ rows, height, width, theme, seqDigits }: EventListProps) {
  return <Lines lines={rows.map((r) => rowLine(r, seqDigits, theme))} rows={height} width={width} />;
}

/**
 * Two runs aligned seq for seq: equal events once ('='), differing ones as an A line and a
 * B line marked '!'; below, how the two states differ at the cursor.
 */
import { Box } from 'ink';
import type { Event } from '../events/schema.ts';
import { eventText, type DomainNames } from '../replay/format.ts';
import type { DiffRow } from './diff-session.ts';
import { line, type Line } from './span-lines.ts';
import { Lines } from './Lines.tsx';
import { accent, type Theme } from './theme.ts';
import type { DiffView } from './view.ts';

export interface DiffPanelProps {
  diff: DiffView;
  /** Lines for the events, then for the state differences. */
  eventsHeight: number;
  differencesHeight: number;
  width: number;
  theme: Theme;
}

const side = (event: Event | undefined, names: DomainNames): string => (event ? eventText(event, names) : '(end of run)');

function rowLines(row: DiffRow, cursor: number, names: DomainNames, theme: Theme): Line[] {
  const at = row.seq === cursor ? '>' : ' ';
  const seq = String(row.seq).padStart(9);
  if (row.same) return [line(`${at} ${seq}  = ${side(row.a, names)}`)];
  const color = accent(theme, 'differs');
  return [line(`!${at}${seq}  A ${side(row.a, names)}`, color), line(`  ${''.padStart(9)}  B ${side(row.b, names)}`, color)];
}

export function diffEventLines(diff: DiffView, theme: Theme): Line[] {
  return diff.rows.flatMap((row) => rowLines(row, diff.cursor, diff.names, theme));
}

export function differenceLines(diff: DiffView, rows: number): Line[] {
  const list = diff.differences;
  const head = line(`state at seq ${diff.cursor}: ${list.length} difference${list.length === 1 ? '' : 's'} (A | B)${list.length > rows - 1 ? ', j/k scroll' : ''}`);
  return [head, ...list.slice(diff.scroll, diff.scroll + rows - 1).map((d) => line(`  ${d.area}: ${d.what}: A ${d.a} | B ${d.b}`))];
}

export function DiffPanel({ diff, eventsHeight, differencesHeight, width, theme }: DiffPanelProps) {
  return (
    <Box flexDirection="column">
      <Lines lines={diffEventLines(diff, theme)} rows={eventsHeight} width={width} />
      <Lines lines={differenceLines(diff, differencesHeight)} rows={differencesHeight} width={width} />
    </Box>
  );
}

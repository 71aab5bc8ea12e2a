/** The list of runs to diff with. */
import type { RunRow } from '../events/store.ts';
import { line, type Line } from './span-lines.ts';
import { Lines } from './Lines.tsx';
import { accent, type Theme } from './theme.ts';

export interface RunPickerProps {
  /** The other runs of the recording. */
  runs: readonly RunRow[];
  selected: number;
  height: number;
  width: number;
  theme: Theme;
}

function runLine(run: RunRow, selected: boolean): string {
  const from = run.parentRun === null ? 'recorded' : `fork of run ${run.parentRun} at seq ${run.forkSeq}`;
  return `${selected ? '>' : ' '} ${String(run.id).padStart(4)}  ${run.name.padEnd(32)} ${String(run.eventCount).padStart(10)} events  ${run.status.padEnd(10)} ${from}`;
}

export function pickerLines(runs: readonly RunRow[], selected: number, rows: number, theme: Theme): Line[] {
  const room = Math.max(1, rows - 1);
  const first = Math.max(0, Math.min(selected - Math.floor(room / 2), runs.length - room));
  return [
    line('diff with which run? (up/down, Enter)'),
    ...runs.slice(first, first + room).map((r, i) => line(runLine(r, first + i === selected), first + i === selected ? accent(theme, 'selected') : undefined)),
  ];
}

export function RunPicker({ runs, selected, height, width, theme }: RunPickerProps) {
  return <Lines lines={pickerLines(runs, selected, height, theme)} rows={height} width={width} />;
}

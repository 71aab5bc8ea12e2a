/** The selected event in full (wrapped), its instruction disassembled for a cpu.step. */
import { line } from './span-lines.ts';
import { Lines } from './Lines.tsx';

export interface EventDetailProps {
  /** Already wrapped to the width. */
  lines: readonly string[];
  height: number;
  width: number;
}

export function EventDetail({ lines, height, width }: EventDetailProps) {
  return <Lines lines={lines.map((text) => line(text))} rows={height} width={width} />;
}

/** The keys, from the same tables the controller dispatches with, in two columns. */
import { keysLabel } from './keymap.ts';
import { line, type Line } from './lines.ts';
import { Lines } from './Lines.tsx';
import type { HelpSection } from './view.ts';

export interface HelpOverlayProps {
  sections: readonly HelpSection[];
  height: number;
  width: number;
}

function entry(keys: readonly string[], help: string, width: number): string {
  return `${keysLabel(keys).padStart(11)}  ${help}`.slice(0, width).padEnd(width);
}

export function helpLines(sections: readonly HelpSection[], width: number): Line[] {
  const column = Math.floor(width / 2);
  // No title: the status line says that any key closes the help, and 80x24 needs the row.
  const lines: Line[] = [];
  for (const section of sections) {
    lines.push(line(`${section.title}:`));
    const half = Math.ceil(section.bindings.length / 2);
    for (let i = 0; i < half; i++) {
      const left = section.bindings[i];
      const right = section.bindings[i + half];
      lines.push(line(`${entry(left.keys, left.help, column)}${right ? entry(right.keys, right.help, column) : ''}`.trimEnd()));
    }
  }
  return lines;
}

export function HelpOverlay({ sections, height, width }: HelpOverlayProps) {
  return <Lines lines={helpLines(sections, width)} rows={height} width={width} />;
}

/** The keys, from the same tables the controller dispatches with, in two columns. */
import { keysLabel, type Binding } from './keymap.ts';
import { line, type Line } from './span-lines.ts';
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

type Entry = Pick<Binding<string>, 'keys' | 'help'>;

/** The bindings with each pair (back / forward, previous / next) on one entry. */
function paired(bindings: readonly Binding<string>[]): Entry[] {
  const entries: Entry[] = [];
  for (let i = 0; i < bindings.length; i++) {
    const b = bindings[i];
    const next = bindings[i + 1];
    if (b.pair !== undefined && next !== undefined) {
      entries.push({ keys: [...b.keys, ...next.keys], help: b.pair });
      i++;
    } else entries.push(b);
  }
  return entries;
}

function layOut(sections: readonly { title: string; entries: readonly Entry[] }[], width: number): Line[] {
  const column = Math.floor(width / 2);
  const lines: Line[] = [];
  for (const section of sections) {
    lines.push(line(`${section.title}:`));
    const half = Math.ceil(section.entries.length / 2);
    for (let i = 0; i < half; i++) {
      const left = section.entries[i];
      const right = section.entries[i + half];
      lines.push(line(`${entry(left.keys, left.help, column)}${right ? entry(right.keys, right.help, column) : ''}`.trimEnd()));
    }
  }
  return lines;
}

/**
 * The help in two columns; when that is taller than `height` (80x24 with most panes), each
 * pair of keys shares an entry, so that every key is still shown. (No title: the status line
 * says that any key closes the help, and 80x24 needs the row.)
 */
export function helpLines(sections: readonly HelpSection[], width: number, height = Infinity): Line[] {
  const full = layOut(sections.map((s) => ({ title: s.title, entries: s.bindings })), width);
  return full.length <= height ? full : layOut(sections.map((s) => ({ title: s.title, entries: paired(s.bindings) })), width);
}

export function HelpOverlay({ sections, height, width }: HelpOverlayProps) {
  return <Lines lines={helpLines(sections, width, height)} rows={height} width={width} />;
}

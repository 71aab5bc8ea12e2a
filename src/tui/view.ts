/**
 * The view model: everything a frame shows, computed from the timeline and the navigation
 * state after each change. Only what is on screen is read: the event rows of the window,
 * one state (Timeline.stateAt: checkpoint + fold), and the block index for the bar.
 */
import type { DomainId, Event, Mfn, Seq } from '../events/schema.ts';
import type { RunRow, RunStatus } from '../events/store.ts';
import { XEN_RESERVED_FRAMES } from '../core/hypervisor/config.ts';
import type { MachineState } from '../core/machine/state.ts';
import { disassembleAt } from '../core/machine/inspect.ts';
import type { StateDifference } from '../replay/diff.ts';
import { eventText, type DomainNames } from '../replay/format.ts';
import type { Timeline } from '../replay/timeline.ts';
import { hasAny, kindMask, type BlockIndex } from './block-index.ts';
import type { DiffRow, DiffSession } from './diff-session.ts';
import { eventDomain, eventGuestBytes, eventHostFrame } from './follow.ts';
import type { ForkForm } from './fork-form.ts';
import { BROWSE_KEYS, DIFF_KEYS, PANE_KEYS, PANEL_KEYS, PANES, type Binding, type StatePaneId } from './keymap.ts';
import type { Layout } from './layout.ts';
import { line, type Line, type Span } from './span-lines.ts';
import { selectedDomain } from './machine-view.ts';
import { bytesPerRow, type ByteRange, type MemoryTarget } from './memory-view.ts';
import type { NavState } from './navigation.ts';
import { framesPerRow } from './smm-view.ts';
import { accent, markColor, type Theme } from './theme.ts';
import { fieldText, type TextField } from './text-field.ts';
import { fit, wrap } from './text.ts';

export interface EventRowView {
  seq: Seq;
  /** V violation, F fault or exception, x VM exit, i input, ' ' otherwise. */
  mark: string;
  text: string;
  selected: boolean;
  /** The row after the last event. */
  end: boolean;
}

export type PaneView =
  | { id: 'machine'; state: MachineState; names: DomainNames; dom: DomainId | undefined }
  | { id: 'memory'; state: MachineState; names: DomainNames; target: MemoryTarget | undefined; mark: ByteRange | undefined }
  | { id: 'smm'; state: MachineState; names: DomainNames; row: number; marked: Mfn | undefined }
  | { id: 'io'; state: MachineState; row: number }
  /** A forensic pane (explain, provenance) in place of the state pane. */
  | { id: 'forensic'; lines: Line[] };

export interface HelpSection {
  title: string;
  bindings: readonly Binding<string>[];
}

export interface DiffView {
  a: RunRow;
  b: RunRow;
  divergedAt: Seq | undefined;
  cursor: Seq;
  rows: DiffRow[];
  names: DomainNames;
  differences: StateDifference[];
  scroll: number;
}

export type BodyView =
  | { kind: 'browse'; rows: EventRowView[]; detail: string[]; pane: PaneView }
  | { kind: 'help'; sections: HelpSection[] }
  | { kind: 'fork'; form: ForkForm; run: RunRow }
  | { kind: 'picker'; runs: RunRow[]; selected: number }
  | { kind: 'diff'; diff: DiffView };

export interface AppView {
  theme: Theme;
  layout: Layout;
  header: string;
  bar: Line;
  tabs: Line;
  body: BodyView;
  status: Line;
  /** The user asked to quit: the app unmounts. */
  quit: boolean;
}

const VIOLATIONS = kindMask(['violation']);
const FAULTS = kindMask(['exception', 'mem.fault']);
const EXITS = kindMask(['vm.exit']);
const INPUTS = kindMask(['input']);

/** The row mark of an event kind (the same letters as the bar). */
export function eventMark(event: Event): string {
  switch (event.kind) {
    case 'violation': return 'V';
    case 'exception': case 'mem.fault': return 'F';
    case 'vm.exit': return 'x';
    case 'input': return 'i';
    default: return ' ';
  }
}

/** The bar's marks, one per column: the most important thing in that stretch of the run. */
export function barMarks(index: BlockIndex, length: Seq, forkPoints: readonly Seq[], columns: number): string {
  let marks = '';
  for (let c = 0; c < columns; c++) {
    const from = Math.floor((c * length) / columns);
    const to = Math.floor(((c + 1) * length) / columns);
    if (to <= from) { marks += ' '; continue; }
    const { kinds, scanned } = index.kindsIn(from, to);
    if (hasAny(kinds, VIOLATIONS)) marks += 'V';
    else if (forkPoints.some((s) => s >= from && s < to)) marks += 'Y';
    else if (hasAny(kinds, FAULTS)) marks += 'F';
    else if (hasAny(kinds, EXITS)) marks += 'x';
    else if (hasAny(kinds, INPUTS)) marks += 'i';
    else marks += scanned ? '-' : '.';
  }
  return marks;
}

/** The bar as coloured spans, with the position drawn as '#'. */
export function barLine(marks: string, length: Seq, pos: Seq, theme: Theme): Line {
  const columns = marks.length;
  const cursor = length === 0 ? 0 : Math.min(columns - 1, Math.floor((pos * columns) / length));
  const cells = `${marks.slice(0, cursor)}#${marks.slice(cursor + 1)}`;
  const spans: Span[] = [{ text: '[' }];
  for (let i = 0; i < cells.length;) {
    let j = i;
    while (j < cells.length && cells[j] === cells[i]) j++;
    spans.push({ text: cells.slice(i, j), color: markColor(theme, cells[i]) });
    i = j;
  }
  spans.push({ text: ']' });
  return spans;
}

/** The window of event rows around `pos`: only these events are read. */
export function eventRows(timeline: Timeline, pos: Seq, count: number, names: DomainNames): EventRowView[] {
  const length = timeline.length;
  const top = Math.max(0, Math.min(pos - Math.floor(count / 3), length + 1 - count));
  const rows: EventRowView[] = [];
  for (let seq = top; seq < top + count && seq <= length; seq++) {
    if (seq === length) {
      rows.push({ seq, mark: ' ', text: `--- end of run: ${length} events ---`, selected: seq === pos, end: true });
      continue;
    }
    const event = timeline.event(seq);
    rows.push({ seq, mark: eventMark(event), text: eventText(event, names), selected: seq === pos, end: false });
  }
  return rows;
}

/** The selected event in full, with its instruction disassembled when it is a cpu.step. */
export function detailLines(event: Event | undefined, state: MachineState, pos: Seq, status: RunStatus, names: DomainNames, width: number, rows: number): string[] {
  if (event === undefined) {
    return wrap(`end of run (${status}): the panes show the state after all ${pos} events`, width, rows);
  }
  const instruction = event.kind === 'cpu.step' ? `${disassembleAt(state, event.dom, event.vcpu, event.eip)}  |  ` : '';
  return wrap(`seq ${pos}: ${instruction}${eventText(event, names)}`, width, rows);
}

/** What the memory pane shows: the followed event's bytes, else the user's frame. */
export function memoryTarget(nav: NavState, state: MachineState, event: Event | undefined, width: number, dataRows: number): { target: MemoryTarget | undefined; mark: ByteRange | undefined } {
  const bytes = nav.memory.follow && event ? eventGuestBytes(event, state) : undefined;
  if (bytes && state.domains.get(bytes.dom)?.p2m.has(bytes.gfn)) {
    const row = Math.floor(bytes.offset / bytesPerRow(width)) - Math.floor(dataRows / 3);
    return { target: { dom: bytes.dom, gfn: bytes.gfn, row }, mark: { offset: bytes.offset, length: Math.max(1, bytes.length) } };
  }
  if (nav.memory.dom !== undefined) return { target: { dom: nav.memory.dom, gfn: nav.memory.gfn, row: nav.memory.row }, mark: undefined };
  return { target: firstFrameWithData(state), mark: undefined };
}

/** Where the memory pane starts before anyone chose: a guest's first frame that holds data. */
function firstFrameWithData(state: MachineState): MemoryTarget | undefined {
  const guests = [...state.domains.values()].filter((d) => d.id !== 0);
  for (const d of guests) {
    const gfns = [...d.p2m.entries()].filter(([, mfn]) => state.memory.has(mfn)).map(([gfn]) => gfn);
    if (gfns.length > 0) return { dom: d.id, gfn: Math.min(...gfns), row: 0 };
  }
  const first = guests[0] ?? selectedDomain(state, undefined);
  return first === undefined ? undefined : { dom: first.id, gfn: 0, row: 0 };
}

/** The map row the SMM pane starts at: around the followed frame, else the user's row. */
export function smmRow(nav: NavState, marked: Mfn | undefined, width: number, mapRows: number): number {
  const perRow = framesPerRow(width);
  // Xen's own frames never change hands: the map starts after them unless asked otherwise.
  const firstGuestRow = Math.floor(XEN_RESERVED_FRAMES / perRow);
  if (nav.smm.follow && marked !== undefined) return Math.max(firstGuestRow, Math.floor(marked / perRow) - Math.floor(mapRows / 3));
  return nav.smm.row >= 0 ? nav.smm.row : firstGuestRow;
}

export function paneView(id: StatePaneId, nav: NavState, state: MachineState, event: Event | undefined, names: DomainNames, layout: Layout): PaneView {
  switch (id) {
    case 'machine': {
      const followed = nav.machine.follow && event ? eventDomain(event) : undefined;
      return { id, state, names, dom: followed !== undefined && state.domains.has(followed) ? followed : nav.machine.dom };
    }
    case 'memory': return { id, state, names, ...memoryTarget(nav, state, event, layout.width, layout.paneRows - 2) };
    case 'smm': {
      const marked = event ? eventHostFrame(event) : undefined;
      return { id, state, names, row: smmRow(nav, marked, layout.width, layout.paneRows - 4), marked };
    }
    case 'io': return { id, state, row: nav.io.row };
  }
}

const PANE_TITLES: Record<string, string> = { events: 'events', machine: 'machine', memory: 'memory', smm: 'smm', io: 'io' };

/** The pane tabs: the focused one in brackets, the state pane on screen in parentheses. */
export function tabsLine(nav: NavState, note: string, width: number): Line {
  const tabs = PANES.map((p, i) => {
    const label = `${i + 1} ${PANE_TITLES[p]}`;
    if (p === nav.focus) return `[${label}]`;
    return p === nav.shown ? `(${label})` : ` ${label} `;
  }).join(' ');
  const gap = Math.max(1, width - tabs.length - note.length);
  return [{ text: `${tabs}${' '.repeat(gap)}${note}` }];
}

export function helpSections(focus: StatePaneId | 'events', inDiff: boolean, inPanel = false): HelpSection[] {
  if (inDiff) return [{ title: 'diff', bindings: DIFF_KEYS }];
  return [
    { title: 'moving through the run', bindings: BROWSE_KEYS },
    inPanel ? { title: 'the forensic pane', bindings: PANEL_KEYS } : { title: `the focused pane (${focus})`, bindings: PANE_KEYS[focus] },
  ];
}

/** How many violations a run has in all, and whether that is all of them (false while indexing a run without a summary). */
export interface ViolationTotal {
  count: number;
  complete: boolean;
}

/**
 * The violations at the position: on a violation, its place among all ("violation 3 of 5");
 * elsewhere, those before the position among all ("2 of 5 violations before"). The state
 * counts those before the position: the one selected has not happened yet.
 */
export function violationsText(before: number, onViolation: boolean, total: ViolationTotal): string {
  const all = `${total.count}${total.complete ? '' : '+'}`;
  return onViolation ? `violation ${before + 1} of ${all}` : `${before} of ${all} violations before`;
}

/** The header: which run, where, and what the machine looks like there. */
export function headerText(run: RunRow, status: RunStatus, pos: Seq, length: Seq, state: MachineState, width: number, violations: string): string {
  const left = `run ${run.id} ${run.name} [${status}]  seq ${pos}/${length}  tick ${state.tick}  ${state.profile}  ${violations}`;
  const right = '? help';
  return left.length + right.length + 2 <= width ? `${left}${' '.repeat(width - left.length - right.length)}${right}` : left;
}

/** The header of the diff: both runs and where they part. */
export function diffHeaderText(session: DiffSession, width: number): string {
  const a = session.a.run;
  const b = session.b.run;
  const parted = session.divergedAt === undefined ? 'identical' : `first divergence ${session.divergedAt}`;
  const named = `diff  A: run ${a.id} ${a.name} (${session.a.length})  B: run ${b.id} ${b.name} (${session.b.length})  ${parted}`;
  const short = `diff  A: run ${a.id} (${session.a.length} events)  B: run ${b.id} (${session.b.length} events)  ${parted}`;
  return named.length <= width ? named : short;
}

export type ModeKind = 'browse' | 'help' | 'prompt' | 'fork' | 'forking' | 'picker' | 'diff' | 'panel';

export interface StatusInput {
  mode: ModeKind;
  /** The open prompt, in mode 'prompt'. */
  prompt?: { prompt: ':' | '/'; field: TextField };
  message?: { text: string; problem: boolean };
}

/** Key hints for the status line, longest first: the first that fits is shown. */
function hints(mode: ModeKind): string[] {
  switch (mode) {
    case 'help': return ['any key closes the help'];
    case 'fork': return ['up/down field  <- -> change  type a value  Enter fork  Esc cancel'];
    case 'forking': return ['forking...'];
    case 'panel': return ['up/down pick a seq  Enter jump  Esc close  h/l step  ( ) watch  ? help', 'up/down pick  Enter jump  Esc close  ? help'];
    case 'picker': return ['up/down pick a run  Enter diff  Esc cancel'];
    case 'diff': return ['h/l step  n/N divergence  g first divergence  j/k differences  Esc back  ? help', 'h/l step  n/N divergence  g first  j/k differences  Esc back  ? help'];
    default: return [
      'h/l step  PgUp/PgDn 100  H/L 1000  : jump  / search  [ ] violation  e/E exit  Tab pane  f fork  d diff  ? help  q quit',
      'h/l step  PgUp/PgDn 100  H/L 1000  : jump  / search  [ ] violation  e/E exit  f fork  d diff  ? help',
      'h/l step  : jump  / search  [ ] violation  e/E exit  f fork  d diff  ? help',
    ];
  }
}

/** The last line: the open prompt, else a message, else key hints. */
export function statusLine(input: StatusInput, width: number, theme: Theme): Line {
  if (input.prompt) {
    const hint = input.prompt.prompt === ':' ? 'seq, +N, -N or end; Enter jumps, Esc cancels' : 'kind, dom:NAME, 0xADDR or text; Enter searches';
    return line(fit(`${input.prompt.prompt}${fieldText(input.prompt.field)}   (${hint})`, width).trimEnd());
  }
  if (input.message) return line(fit(input.message.text, width).trimEnd(), input.message.problem ? accent(theme, 'problem') : undefined);
  const options = hints(input.mode);
  return line(fit(options.find((h) => h.length <= width) ?? options[options.length - 1], width).trimEnd(), accent(theme, 'dim'));
}

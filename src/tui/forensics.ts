/**
 * The forensic queries in the TUI: a watch on the memory pane's bytes (the previous and next
 * access to them), the origin and provenance of those bytes, and the explanation of a
 * violation. The queries are the CLI's (src/replay/forensics); this module turns their
 * answers into a pane of lines, each with the seq it is about, that the user moves through
 * and jumps from. Pure functions of a ForensicSession and the navigation state.
 */
import type { Event, Seq } from '../events/schema.ts';
import type { MachineState } from '../core/machine/state.ts';
import { PAGE_SIZE } from '../core/hypervisor/config.ts';
import type { DomainNames } from '../replay/format.ts';
import { formatHostRange, type HostRange } from '../replay/forensics/address.ts';
import { describeAccess, type AccessRow } from '../replay/forensics/describe.ts';
import { InputError } from '../events/errors.ts';
import { explainSteps, explanationRows, type Explanation, type TextRow } from '../replay/forensics/explain.ts';
import { provenanceRows, provenanceSteps, type Hop, type Provenance, type QuerySteps } from '../replay/forensics/provenance.ts';
import type { ForensicSession } from '../replay/forensics/session.ts';
import type { Job } from './job-runner.ts';
import type { Layout } from './layout.ts';
import { line, type Line } from './span-lines.ts';
import type { NavState } from './navigation.ts';
import { accent, type Theme } from './theme.ts';
import { wrap } from './text.ts';
import { memoryTarget } from './view.ts';

/** Hops followed for `o` and the provenance pane (the CLI's --budget gives more). */
export const PROVENANCE_BUDGET = 200;

/** A pane of query results: lines, some with a seq to jump to, one of those selected. */
export interface ForensicPanel {
  title: string;
  rows: TextRow[];
  /** Index of the selected row (a row with a seq), or -1 when none has one. */
  selected: number;
}

export function createPanel(title: string, rows: TextRow[], selectedSeq?: Seq): ForensicPanel {
  const withSeq = rows.map((r, i) => (r.seq === undefined ? -1 : i)).filter((i) => i >= 0);
  const wanted = rows.findIndex((r) => r.seq !== undefined && r.seq === selectedSeq);
  return { title, rows, selected: wanted >= 0 ? wanted : withSeq[0] ?? -1 };
}

/** Moves the selection to the next (or previous) row that has a seq; stays at the ends. */
export function movePanel(panel: ForensicPanel, direction: 1 | -1): ForensicPanel {
  for (let i = panel.selected + direction; i >= 0 && i < panel.rows.length; i += direction) {
    if (panel.rows[i].seq !== undefined) return { ...panel, selected: i };
  }
  return panel;
}

export function selectedSeq(panel: ForensicPanel): Seq | undefined {
  return panel.rows[panel.selected]?.seq;
}

/** Lines a row takes at most: a long hop wraps instead of losing its end. */
const ROW_LINES_MAX = 4;

/**
 * The pane's lines: the title, then the rows wrapped to the width (continuations indented),
 * from a first row chosen so that the selected one is in sight, a third of the way down.
 */
export function panelLines(panel: ForensicPanel, rows: number, width: number, theme: Theme): Line[] {
  const room = Math.max(1, rows - 1);
  const wrapped = panel.rows.map((r, i) => wrap(r.text, width - 4, ROW_LINES_MAX).map((text, j) => `${j > 0 ? '    ' : i === panel.selected ? '> ' : '  '}${text}`));
  let top = Math.max(0, panel.selected);
  for (let used = wrapped[top]?.length ?? 0; top > 0 && used + wrapped[top - 1].length <= Math.floor(room / 3) + 1; top--) used += wrapped[top - 1].length;
  const lines: Line[] = [line(`${panel.title}  (up/down pick a seq, Enter jumps, Esc closes)`, accent(theme, 'dim'))];
  for (let i = top; i < wrapped.length && lines.length <= room; i++) {
    for (const text of wrapped[i]) lines.push(line(text, i === panel.selected ? accent(theme, 'selected') : undefined));
  }
  return lines.slice(0, rows);
}

// ---- the bytes under the cursor -----------------------------------------------------------

/** An address of the memory pane's bytes: `address` resolves (the domain by id), `label` is for people. */
export interface CursorAddress {
  address: string;
  label: string;
}

/**
 * The bytes the memory pane points at: the selected event's bytes when it follows one (the
 * marked rows), else the whole guest frame it shows.
 */
export function cursorAddress(nav: NavState, state: MachineState, event: Event | undefined, layout: Layout, names: DomainNames): CursorAddress | undefined {
  const { target, mark } = memoryTarget(nav, state, event, layout.width, layout.paneRows - 2);
  if (target === undefined) return undefined;
  const gpa = target.gfn * PAGE_SIZE + (mark?.offset ?? 0);
  const length = mark?.length ?? PAGE_SIZE;
  const where = `0x${gpa.toString(16)}/${length}`;
  return { address: `gpa:${target.dom}:${where}`, label: `gpa:${names.get(target.dom) ?? target.dom}:${where}` };
}

// ---- watch ---------------------------------------------------------------------------------

/** Host bytes being watched: the same frame is found whichever name it was given by. */
export interface Watch {
  label: string;
  ranges: HostRange[];
}

export function watchText(watch: Watch): string {
  return `${watch.label} = ${watch.ranges.map(formatHostRange).join(' + ')}`;
}

const overlaps = (range: HostRange, offset: number, length: number): boolean =>
  offset < range.offset + range.length && range.offset < offset + length;

/**
 * The nearest access to the watched bytes after `pos` (direction 1) or before it (-1): a read,
 * write, DMA, copy, mapping, ownership or key change of their frame, as history lists them.
 */
export function watchAccess(session: ForensicSession, watch: Watch, pos: Seq, direction: 1 | -1): AccessRow | undefined {
  let best: { seq: Seq; row: () => AccessRow } | undefined;
  for (const range of watch.ranges) {
    const accesses = direction > 0
      ? session.index.accesses(range.mfn, pos + 1, session.length)
      : session.index.accesses(range.mfn, 0, pos, { newestFirst: true });
    try {
      for (const a of accesses) {
        if (!overlaps(range, a.offset, a.length)) continue;
        if (best === undefined || (direction > 0 ? a.seq < best.seq : a.seq > best.seq)) best = { seq: a.seq, row: () => describeAccess(session, a) };
        break;
      }
    } finally {
      // An iteration stopped early keeps SQLite's statement busy until it is closed.
      accesses.return(undefined);
    }
  }
  return best?.row();
}

// ---- origin, provenance, explain -----------------------------------------------------------

/** The origins of a provenance that happened at an event (not bytes never written), in the order of the bytes. */
export function eventOrigins(result: Provenance): Hop[] {
  return result.origins.map((id) => result.hops[id]).filter((h) => h.seq > 0);
}

export function provenanceOf(session: ForensicSession, address: CursorAddress, at: Seq): QuerySteps<Provenance> {
  return provenanceSteps(session, session.resolve(address.address, at), at, { budget: PROVENANCE_BUDGET });
}

export function provenancePanel(result: Provenance, label: string, at: Seq): ForensicPanel {
  const origins: TextRow[] = result.origins.map((id) => {
    const hop = result.hops[id];
    return { text: `  #${id} ${hop.to}${hop.bytes === undefined ? '' : ` = ${hop.bytes}`}: ${hop.origin}`, seq: hop.seq };
  });
  const rows: TextRow[] = [...provenanceRows(result), { text: 'origins:' }, ...origins];
  if (result.cut) rows.push({ text: `cut short at ${result.hops.length} hops: 'chronovisor provenance --budget N' follows further` });
  return createPanel(`provenance of ${label} at seq ${at}`, rows);
}

export function explainOf(session: ForensicSession, seq: Seq): QuerySteps<Explanation> {
  return explainSteps(session, seq);
}

export function explainPanel(x: Explanation): ForensicPanel {
  return createPanel(`explain seq ${x.seq}`, explanationRows(x));
}

/**
 * A query run a slice at a time on the JobRunner: a provenance of a busy run takes seconds,
 * and the screen must show its progress and Esc must stop it. Bad input met on the way (a
 * damaged chunk) ends the job with `problem` set rather than escaping from a slice.
 */
export class QueryJob<T> implements Job {
  answer: { value: T } | undefined;
  problem: string | undefined;
  private hops = 0;

  constructor(private readonly steps: QuerySteps<T>) {}

  /** Hops made against the budget: the budget is an upper bound, so this is too. */
  get progress(): number {
    return Math.min(0.99, this.hops / PROVENANCE_BUDGET);
  }

  step(deadline: number, now: () => number): boolean {
    try {
      do {
        const r = this.steps.next();
        if (r.done) { this.answer = { value: r.value }; return true; }
        this.hops = r.value;
      } while (now() < deadline);
    } catch (error) {
      if (!(error instanceof InputError)) throw error;
      this.problem = error.message;
      return true;
    }
    return false;
  }
}

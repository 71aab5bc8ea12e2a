/**
 * Where the user is: the position and what each pane looks at. Pure data and pure moves;
 * the controller owns one NavState and replaces it on every key.
 *
 * A position is a seq P in 0..length: the state shown is the state after events [0, P),
 * exactly `chronovisor state --at P`, and the selected event is event P, the one about to
 * happen (at P = length, the end of the run, there is none). A debugger shows an instruction
 * the same way: stopped on it, not yet run.
 */
import type { DomainId, Seq } from '../events/schema.ts';
import { PANES, type PaneId, type StatePaneId } from './keymap.ts';

export interface NavState {
  pos: Seq;
  focus: PaneId;
  /** The state pane on screen (the focused one, or the last focused when the events are). */
  shown: StatePaneId;
  /** Panes follow the selected event (its domain, its frame) until the user picks for them. */
  machine: { dom: DomainId | undefined; follow: boolean };
  memory: { dom: DomainId | undefined; gfn: number; row: number; follow: boolean };
  /** row -1: the default (the first frame Xen gives to domains). */
  smm: { row: number; follow: boolean };
  /** Lines scrolled in the I/O pane; 0 is the overview, where every section gets a share. */
  io: { row: number };
  /** At the end of a live run: stay at the end as it grows. */
  followEnd: boolean;
}

export function initialNav(): NavState {
  return {
    pos: 0,
    focus: 'events',
    shown: 'machine',
    machine: { dom: undefined, follow: true },
    memory: { dom: undefined, gfn: 0, row: 0, follow: true },
    smm: { row: -1, follow: true },
    io: { row: 0 },
    followEnd: false,
  };
}

export function moveTo(nav: NavState, seq: Seq, length: Seq): NavState {
  const pos = Math.max(0, Math.min(length, Math.round(seq)));
  return { ...nav, pos, followEnd: pos === length };
}

export function moveBy(nav: NavState, delta: number, length: Seq): NavState {
  return moveTo(nav, nav.pos + delta, length);
}

export function focusPane(nav: NavState, focus: PaneId): NavState {
  return { ...nav, focus, shown: focus === 'events' ? nav.shown : focus };
}

export function focusBy(nav: NavState, by: 1 | -1): NavState {
  const at = PANES.indexOf(nav.focus);
  return focusPane(nav, PANES[(at + by + PANES.length) % PANES.length]);
}

/**
 * What the state panes' own keys do to the navigation state: pick a domain, a guest frame,
 * scroll a frame or the frame map, or follow the selected event again. Pure: each takes the
 * state shown and returns the next NavState. A pick starts from what the pane shows (which
 * may be the followed event's frame) and stops following.
 */
import type { Event } from '../events/schema.ts';
import type { MachineState } from '../core/machine/state.ts';
import type { DomainNames } from '../replay/format.ts';
import type { PaneAction } from './keymap.ts';
import type { Layout } from './layout.ts';
import { selectedDomain } from './machine-view.ts';
import { clampRow, rowsPerFrame } from './memory-view.ts';
import type { NavState } from './navigation.ts';
import { ioAllLines } from './io-view.ts';
import { clampMapRow } from './smm-view.ts';
import { PLAIN } from './theme.ts';
import { memoryTarget, paneView } from './view.ts';

export interface PaneContext {
  state: MachineState;
  event: Event | undefined;
  names: DomainNames;
  layout: Layout;
}

export function machineKey(nav: NavState, action: PaneAction, c: PaneContext): NavState {
  if (action === 'follow') return { ...nav, machine: { ...nav.machine, follow: true } };
  const view = paneView('machine', nav, c.state, c.event, c.names, c.layout);
  const domains = [...c.state.domains.keys()];
  const at = domains.indexOf(selectedDomain(c.state, view.id === 'machine' ? view.dom : undefined)?.id ?? -1);
  const next = domains[Math.max(0, Math.min(domains.length - 1, at + (action === 'select-next' ? 1 : -1)))];
  return { ...nav, machine: { dom: next, follow: false } };
}

export function memoryKey(nav: NavState, action: PaneAction, c: PaneContext): NavState {
  if (action === 'follow') return { ...nav, memory: { ...nav.memory, follow: true } };
  const { width } = c.layout;
  const dataRows = c.layout.paneRows - 2;
  const shown = memoryTarget(nav, c.state, c.event, width, dataRows).target;
  if (shown === undefined) return nav;
  let { dom, gfn } = shown;
  let row = clampRow(shown.row, width, dataRows);
  if (action === 'select-previous' || action === 'select-next') {
    gfn = Math.max(0, gfn + (action === 'select-next' ? 1 : -1));
    row = 0;
  } else if (action === 'domain-previous' || action === 'domain-next') {
    const domains = [...c.state.domains.keys()];
    dom = domains[(domains.indexOf(dom) + (action === 'domain-next' ? 1 : domains.length - 1)) % domains.length];
    gfn = Math.min(...(c.state.domains.get(dom)?.p2m.keys() ?? [0]), gfn);
    row = 0;
  } else if (action === 'scroll-up' || action === 'scroll-down') {
    row = Math.max(0, Math.min(rowsPerFrame(width) - dataRows, row + (action === 'scroll-down' ? 1 : -1)));
  }
  return { ...nav, memory: { dom, gfn, row, follow: false } };
}

export function smmKey(nav: NavState, action: PaneAction, c: PaneContext): NavState {
  if (action === 'follow') return { ...nav, smm: { ...nav.smm, follow: true } };
  const mapRows = c.layout.paneRows - 4;
  const shown = paneView('smm', nav, c.state, c.event, c.names, c.layout);
  const row = clampMapRow(c.state, shown.id === 'smm' ? shown.row : 0, c.layout.width, mapRows);
  const next = clampMapRow(c.state, row + (action === 'scroll-down' ? 1 : -1), c.layout.width, mapRows);
  return { ...nav, smm: { row: next, follow: false } };
}

/** Scrolls the I/O pane a line: 0 is the overview, N > 0 the sections in full from line N-1. */
export function ioKey(nav: NavState, action: PaneAction, c: PaneContext): NavState {
  if (action !== 'scroll-up' && action !== 'scroll-down') return nav;
  const rows = c.layout.paneRows;
  const all = ioAllLines(c.state, c.layout.width, PLAIN).length;
  const max = all <= rows ? 0 : all - rows + 1;
  const row = Math.max(0, Math.min(max, Math.min(nav.io.row, max) + (action === 'scroll-down' ? 1 : -1)));
  return { ...nav, io: { row } };
}

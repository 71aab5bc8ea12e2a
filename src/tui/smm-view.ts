/**
 * The SMM pane: the page permission table as a map of host frames, one letter per frame
 * for its owner (coloured by owner when colour is on), and the key table: which domain has
 * a key (shown by a hash prefix, never the key) and whose key each pCPU holds live.
 */
import type { DomainId, Mfn } from '../events/schema.ts';
import { XEN_RESERVED_FRAMES } from '../core/hypervisor/config.ts';
import type { MachineState } from '../core/machine/state.ts';
import type { DomainNames } from '../replay/format.ts';
import { line, type Line, type Span } from './span-lines.ts';
import { keyId, nameOf } from './machine-view.ts';
import { accent, domainColor, type Theme } from './theme.ts';

const FREE = '.';
const XEN = 'x';
const MARK = '*';

/** One letter per domain: its name's initial when free, else the next free letter. */
export function ownerLetters(state: MachineState): Map<DomainId, string> {
  const letters = new Map<DomainId, string>();
  const used = new Set([FREE, XEN, MARK, '?']);
  for (const d of [...state.domains.values()].sort((a, b) => a.id - b.id)) {
    const candidates = d.id === 0 ? ['0'] : [d.name[0]?.toLowerCase(), d.name[0]?.toUpperCase(), ...'abcdefghijklmnopqrstuvwyzABCDEFGHIJKLMNOPQRSTUVWYZ123456789'];
    const letter = candidates.find((c) => c !== undefined && /^[0-9A-Za-z]$/.test(c) && !used.has(c)) ?? '?';
    used.add(letter);
    letters.set(d.id, letter);
  }
  return letters;
}

export function framesPerRow(width: number): number {
  return width >= 8 + 64 ? 64 : 32;
}

interface Cell {
  letter: string;
  owner: DomainId;
}

function cellOf(state: MachineState, letters: Map<DomainId, string>, mfn: Mfn, marked: Mfn | undefined): Cell {
  const owner = state.ppt.get(mfn)?.owner;
  if (mfn === marked) return { letter: MARK, owner: -2 };
  if (owner !== undefined) return { letter: letters.get(owner) ?? '?', owner };
  return { letter: mfn < XEN_RESERVED_FRAMES ? XEN : FREE, owner: -1 };
}

/** One map row as spans of equal owners (so colour changes only where the owner does). */
function mapRow(state: MachineState, letters: Map<DomainId, string>, first: Mfn, count: number, marked: Mfn | undefined, theme: Theme): Line {
  const spans: Span[] = [{ text: `${String(first).padStart(6)} ` }];
  let run: Cell | undefined;
  let text = '';
  const flush = (): void => {
    if (run) spans.push({ text, color: run.owner === -2 ? accent(theme, 'problem') : domainColor(theme, run.owner) });
  };
  for (let mfn = first; mfn < first + count && mfn < state.config.frames; mfn++) {
    const cell = cellOf(state, letters, mfn, marked);
    if (run === undefined || cell.owner !== run.owner) { flush(); run = cell; text = ''; }
    text += cell.letter;
  }
  flush();
  return spans;
}

function legend(state: MachineState, letters: Map<DomainId, string>, theme: Theme): Line {
  const spans: Span[] = [{ text: `${XEN} xen  ${FREE} free  ${MARK} this event's frame ` }];
  for (const [dom, letter] of letters) spans.push({ text: ` ${letter} ${state.domains.get(dom)?.name ?? `d${dom}`}`, color: domainColor(theme, dom) });
  return spans;
}

function keyLines(state: MachineState, names: DomainNames): Line[] {
  const keys = [...state.keyTable.entries()].map(([dom, key]) => `${nameOf(names, dom)} ${keyId(key)}`);
  const live = state.sched.smmLive.map((dom, i) => `p${i} ${nameOf(names, dom)}`);
  return [
    line(`key table: ${keys.length ? keys.join('  ') : state.profile === 'vanilla' ? 'empty (vanilla: no SMM encryption)' : 'empty'}`),
    line(`live keys: ${live.join('  ')}`),
  ];
}

/** The first map row to show so that the map fills its rows. */
export function clampMapRow(state: MachineState, row: number, width: number, mapRows: number): number {
  const total = Math.ceil(state.config.frames / framesPerRow(width));
  return Math.max(0, Math.min(row, total - mapRows));
}

export function smmLines(state: MachineState, names: DomainNames, row: number, marked: Mfn | undefined, width: number, rows: number, theme: Theme): Line[] {
  const letters = ownerLetters(state);
  const perRow = framesPerRow(width);
  const mapRows = Math.max(1, rows - 4);
  const first = clampMapRow(state, row, width, mapRows);
  const owned = state.ppt.size;
  const out: Line[] = [
    line(`page permission table: ${state.config.frames} frames, ${owned} owned${marked !== undefined ? `, this event: frame ${marked}` : ''}`),
    legend(state, letters, theme),
  ];
  for (let r = first; r < first + mapRows && r * perRow < state.config.frames; r++) {
    out.push(mapRow(state, letters, r * perRow, perRow, marked, theme));
  }
  return [...out, ...keyLines(state, names)];
}

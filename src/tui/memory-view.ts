/**
 * The memory pane: one guest frame in hex, as stored (what physical memory and a dom0
 * foreign mapping see: ciphertext under SMM) beside the owner's plaintext (ownerPlaintext:
 * decrypted with the owner's key from the SMM key table).
 */
import type { DomainId } from '../events/schema.ts';
import { PAGE_SIZE } from '../core/hypervisor/config.ts';
import { ownerPlaintext } from '../core/hypervisor/memory/smm.ts';
import type { MachineState } from '../core/machine/state.ts';
import type { DomainNames } from '../replay/format.ts';
import { line, type Line } from './span-lines.ts';
import { nameOf } from './machine-view.ts';
import { accent, type Theme } from './theme.ts';
import { asciiBytes, hexBytes, hexOrNone } from './text.ts';

export interface MemoryTarget {
  dom: DomainId;
  gfn: number;
  /** The first row shown. */
  row: number;
}

/** Bytes an event touched in the frame shown, to mark their rows. */
export interface ByteRange {
  offset: number;
  length: number;
}

/** Bytes per row: 16 when both sides fit, else 8. */
export function bytesPerRow(width: number): number {
  return width >= 9 + 2 * 16 * 4 ? 16 : 8;
}

export function rowsPerFrame(width: number): number {
  return PAGE_SIZE / bytesPerRow(width);
}

function frameTitle(state: MachineState, names: DomainNames, target: MemoryTarget, mfn: number): string {
  const owner = state.ppt.get(mfn)?.owner;
  const page = state.memory.get(mfn);
  const stored = state.profile === 'secure' && owner !== undefined && state.keyTable.has(owner)
    ? 'stored as AES-XTS ciphertext' : 'stored in plaintext';
  const holds = page === undefined ? 'never written (zeros)' : `last written by ${nameOf(names, page.writer)}`;
  return `${nameOf(names, target.dom)} gfn ${hexOrNone(target.gfn)} -> mfn ${mfn} (owner ${owner === undefined ? 'none' : nameOf(names, owner)}), ${stored}, ${holds}`;
}

function hexRow(stored: Uint8Array, plain: Uint8Array, offset: number, marked: boolean): string {
  return `${marked ? '*' : ' '}${hexOrNone(offset).padEnd(6)} ${hexBytes(stored)}  ${asciiBytes(stored)} | ${hexBytes(plain)}  ${asciiBytes(plain)}`;
}

const touches = (range: ByteRange | undefined, from: number, to: number): boolean =>
  range !== undefined && range.offset < to && range.offset + range.length > from;

/** The first row to show so that the frame fills the pane. */
export function clampRow(row: number, width: number, dataRows: number): number {
  return Math.max(0, Math.min(row, rowsPerFrame(width) - dataRows));
}

export function memoryLines(
  state: MachineState, names: DomainNames, target: MemoryTarget | undefined, mark: ByteRange | undefined,
  width: number, rows: number, theme: Theme,
): Line[] {
  if (target === undefined) return [line('no guest frame to show: no domain has memory yet')];
  const domain = state.domains.get(target.dom);
  const mfn = domain?.p2m.get(target.gfn);
  if (domain === undefined || mfn === undefined) {
    const frames = domain ? `${domain.p2m.size} frames` : 'no such domain';
    return [line(`${nameOf(names, target.dom)} has no frame at gfn ${hexOrNone(target.gfn)} (${frames}; up/down picks a frame, < > a domain)`)];
  }
  const perRow = bytesPerRow(width);
  const dataRows = Math.max(1, rows - 2);
  const first = clampRow(target.row, width, dataRows);
  const header = `${' '.repeat(7)} ${'as stored: physical memory, dom0'.padEnd(perRow * 4 + 1)} | plaintext: what ${nameOf(names, target.dom)} reads`;
  const out: Line[] = [line(frameTitle(state, names, target, mfn)), line(header)];
  const stored = state.memory.get(mfn)?.bytes;
  for (let r = first; r < first + dataRows && r * perRow < PAGE_SIZE; r++) {
    const offset = r * perRow;
    const bytes = stored ? stored.subarray(offset, offset + perRow) : new Uint8Array(perRow);
    const marked = touches(mark, offset, offset + perRow);
    out.push(line(hexRow(bytes, ownerPlaintext(state, mfn, offset, perRow), offset, marked), marked ? accent(theme, 'selected') : undefined));
  }
  return out;
}

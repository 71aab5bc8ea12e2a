/**
 * Byte locations as small numbers, for the data-flow graph of provenance and reach:
 *
 * - a host memory byte: mfn * 4096 + offset (>= 0, below PSEUDO_BASE);
 * - a register byte of an x86 vCPU: negative;
 * - a byte carried by an event (a frame at a point of the network, a DMA request's data, a
 *   netback copy): PSEUDO_BASE + seq * 65536 + position, so an event names its own bytes.
 *
 * Numbers, not objects: a window of flows holds hundreds of thousands of them in maps.
 */
import type { DomainId, Mfn, Seq } from '../../events/schema.ts';
import { PAGE_SIZE } from '../../core/hypervisor/config.ts';
import { EFLAGS_SLOT, formatHostRange, formatRegister, type HostRange, type RegisterBytes } from './address.ts';

export type Loc = number;

const PSEUDO_BASE = 2 ** 48;
const EVENT_BYTES = 65536;
const VCPUS_PER_DOMAIN = 64;
const SLOTS = 16;

export const memLoc = (mfn: Mfn, offset: number): Loc => mfn * PAGE_SIZE + offset;
export const regLoc = (dom: DomainId, vcpu: number, slot: number, byte: number): Loc => -1 - (((dom * VCPUS_PER_DOMAIN + vcpu) * SLOTS + slot) * 4 + byte);
export const eventLoc = (seq: Seq, position: number): Loc => PSEUDO_BASE + seq * EVENT_BYTES + position;

export const isRegLoc = (loc: Loc): boolean => loc < 0;
export const isMemLoc = (loc: Loc): boolean => loc >= 0 && loc < PSEUDO_BASE;
export const isEventLoc = (loc: Loc): boolean => loc >= PSEUDO_BASE;

export function memOf(loc: Loc): { mfn: Mfn; offset: number } {
  return { mfn: Math.floor(loc / PAGE_SIZE), offset: loc % PAGE_SIZE };
}

export function regOf(loc: Loc): { dom: DomainId; vcpu: number; slot: number; byte: number } {
  const n = -1 - loc;
  const byte = n % 4;
  const rest = Math.floor(n / 4);
  return { dom: Math.floor(rest / (SLOTS * VCPUS_PER_DOMAIN)), vcpu: Math.floor(rest / SLOTS) % VCPUS_PER_DOMAIN, slot: rest % SLOTS, byte };
}

export function eventOf(loc: Loc): { seq: Seq; position: number } {
  const n = loc - PSEUDO_BASE;
  return { seq: Math.floor(n / EVENT_BYTES), position: n % EVENT_BYTES };
}

/** The bytes of a register, as locations. */
export function registerLocs(r: RegisterBytes): Loc[] {
  return Array.from({ length: r.length }, (_, i) => regLoc(r.dom, r.vcpu, r.slot, r.byte + i));
}

/** The bytes of host ranges, as locations. */
export function rangeLocs(ranges: readonly HostRange[]): Loc[] {
  return ranges.flatMap((r) => Array.from({ length: r.length }, (_, i) => memLoc(r.mfn, r.offset + i)));
}

/**
 * Groups locations (in the order given) into runs a person reads: consecutive bytes of one
 * frame, one register or one event's data.
 */
export function locRuns(locs: readonly Loc[]): { first: Loc; length: number }[] {
  const runs: { first: Loc; length: number }[] = [];
  for (const loc of locs) {
    const last = runs.at(-1);
    if (last !== undefined && sameRun(last.first, last.length, loc)) last.length++;
    else runs.push({ first: loc, length: 1 });
  }
  return runs;
}

function sameRun(first: Loc, length: number, next: Loc): boolean {
  if (isRegLoc(first)) {
    if (!isRegLoc(next)) return false;
    const a = regOf(first);
    const b = regOf(next);
    return a.dom === b.dom && a.vcpu === b.vcpu && a.slot === b.slot && b.byte === a.byte + length;
  }
  if (isMemLoc(first)) return isMemLoc(next) && next === first + length && memOf(first).mfn === memOf(next).mfn;
  return isEventLoc(next) && next === first + length && eventOf(first).seq === eventOf(next).seq;
}

/** A run of locations as an address: `mfn:404/62`, `reg:alice.v0:ax`, or `<what> @seq[from..to]`. */
export function runText(run: { first: Loc; length: number }, names: ReadonlyMap<DomainId, string>, eventName: (seq: Seq) => string): string {
  if (isMemLoc(run.first)) return formatHostRange({ ...memOf(run.first), length: run.length });
  if (isRegLoc(run.first)) {
    const r = regOf(run.first);
    return formatRegister({ dom: r.dom, vcpu: r.vcpu, slot: r.slot, byte: r.byte, length: run.length }, names);
  }
  const { seq, position } = eventOf(run.first);
  return `${eventName(seq)}[${position}${run.length > 1 ? `..${position + run.length - 1}` : ''}]`;
}

export { EFLAGS_SLOT };

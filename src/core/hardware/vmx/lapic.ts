/**
 * The local APIC timer as the x2APIC MSRs program it (SDM Vol. 3, 10.5.4): the LVT timer
 * register (vector 7:0, mask 16, mode 18:17: 00 one-shot, 01 periodic) and the initial
 * count, here in ticks (retired instructions) with a divide of 1. At reset the LVT is masked.
 */
/**
 * The timer's registers: the LVT timer register, the initial count (in ticks, retired
 * instructions), the tick the count runs out (-1: stopped) and whether its interrupt is pending.
 */
export interface Lapic {
  lvt: number;
  initialCount: number;
  deadline: number;
  pending: boolean;
}

export const LVT_MASKED = 1 << 16;
const LVT_MODE_SHIFT = 17;
const LVT_MODE_PERIODIC = 1;
export const LVT_RESET = LVT_MASKED;

export const lapicVector = (lapic: Lapic): number => lapic.lvt & 0xff;
export const lapicMasked = (lapic: Lapic): boolean => (lapic.lvt & LVT_MASKED) !== 0;
export const lapicPeriodic = (lapic: Lapic): boolean => ((lapic.lvt >>> LVT_MODE_SHIFT) & 3) === LVT_MODE_PERIODIC;

export function resetLapic(): Lapic {
  return { lvt: LVT_RESET, initialCount: 0, deadline: -1, pending: false };
}

/** The deadline after `tick` once the count ran out: the next period, or -1 (one-shot). */
export function nextDeadline(lapic: Lapic, tick: number): number {
  if (!lapicPeriodic(lapic) || lapic.initialCount <= 0 || lapic.deadline < 0) return -1;
  const missed = Math.floor((tick - lapic.deadline) / lapic.initialCount) + 1;
  return lapic.deadline + missed * lapic.initialCount;
}

/** The count ran out and an unmasked timer raises its interrupt (not yet pending). */
export function timerDue(lapic: Lapic, tick: number): boolean {
  return lapic.deadline >= 0 && lapic.deadline <= tick && !lapic.pending && !lapicMasked(lapic);
}

/** A write of the LVT: a timer whose count ran out while masked starts again from now. */
export function writeLvt(lapic: Lapic, value: number, tick: number): Lapic {
  const next = { ...lapic, lvt: value >>> 0 };
  if (next.deadline >= 0 && next.deadline <= tick && lapicMasked(lapic)) next.deadline = nextDeadline(next, tick);
  return next;
}

/** A write of the initial count: 0 stops the timer, anything else starts it from now. */
export function writeInitialCount(lapic: Lapic, count: number, tick: number): Lapic {
  return { ...lapic, initialCount: count >>> 0, deadline: count === 0 ? -1 : tick + count };
}

/**
 * A scripted vCPU's program counter: loop control (repeat/end) is free of time, so the next
 * operation that takes time is found by following it. The scheduler asks this whether a
 * scripted vCPU has work; the guest runs the operation it names.
 */
import { assert } from '../../events/errors.ts';
import type { GuestOp } from './config.ts';

/**
 * Follows loop control from `pc` to the next operation that takes time. Returns its index
 * and the loop counters at that point, or undefined when the program is finished.
 */
export function resolveControl(program: readonly GuestOp[], pc: number, loops: readonly number[]): { pc: number; loops: number[] } | undefined {
  let at = pc;
  let counters = loops as number[];
  // Every repeat body holds an operation that takes time, so this ends within a pass.
  for (let guard = 0; guard <= 2 * program.length + 2; guard++) {
    const op = program[at];
    if (op === undefined) return undefined;
    if (op.op === 'repeat') {
      if (op.times === 0) { at = op.end + 1; continue; }
      counters = withCounter(counters, op.slot, op.times);
      at += 1;
    } else if (op.op === 'end') {
      const left = (counters[op.slot] ?? 1) - 1;
      counters = withCounter(counters, op.slot, left);
      at = left > 0 ? op.start + 1 : at + 1;
    } else {
      return { pc: at, loops: counters };
    }
  }
  assert(false, () => `loop control did not reach an operation from pc ${pc}`);
}

/** Loop counters with one slot changed (a copy: the caller's list may be the state's). */
function withCounter(counters: readonly number[], slot: number, value: number): number[] {
  const next = [...counters];
  while (next.length <= slot) next.push(0);
  next[slot] = value;
  return next;
}


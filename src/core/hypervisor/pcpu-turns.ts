/**
 * Physical CPUs take turns: each takes one step, then hands over to the next; a full round
 * of pCPUs is one tick of the virtual clock. Every step's opening event says so in its fold.
 */
import type { HostState } from './state.ts';

/** The pCPU that just took a step hands over; a full round of pCPUs is one tick. */
export function advanceTurn(state: HostState, pcpu: number): void {
  state.sched.turn = (pcpu + 1) % state.sched.pcpus.length;
  if (state.sched.turn === 0) state.tick += 1;
}

export function usedPcpu(state: HostState, pcpu: number): void {
  const p = state.sched.pcpus[pcpu];
  p.quantumLeft = Math.max(0, p.quantumLeft - 1);
  advanceTurn(state, pcpu);
}


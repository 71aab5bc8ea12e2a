/**
 * Physical CPUs take turns: each awake pCPU takes one step, then hands over to the next
 * awake one; a full round of the awake pCPUs is one tick of the virtual clock. A pCPU with
 * nothing to run sleeps (scheduler.ts) and is skipped, so a machine with more pCPUs than
 * work spends no steps on idle turns. Every step's opening event says so in its fold.
 */
import type { HostState } from './state.ts';

/** The pCPU that just took a step hands over to the next awake one; passing pCPU 0 again ends a tick. */
export function advanceTurn(state: HostState, pcpu: number): void {
  const pcpus = state.sched.pcpus;
  let next = pcpu;
  // Bounded: a pCPU sleeps only while another runs a vCPU, so one of them is awake.
  for (let hops = 0; hops < pcpus.length; hops++) {
    next = (next + 1) % pcpus.length;
    if (next === 0) state.tick += 1;
    if (!pcpus[next].asleep) break;
  }
  state.sched.turn = next;
}

export function usedPcpu(state: HostState, pcpu: number): void {
  const p = state.sched.pcpus[pcpu];
  p.quantumLeft = Math.max(0, p.quantumLeft - 1);
  advanceTurn(state, pcpu);
}

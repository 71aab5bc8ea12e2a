/**
 * The seed paper's experiment on this model: the same guest workloads under shadow paging
 * and under EPT, compared by VM exits, page walks and modelled cycles.
 *
 * Each workload runs alone on one pCPU. Cycles are modelled, not measured, with a small cost
 * model stated here so a reader can hold the table against it: one cycle per retired
 * instruction, a VM exit and entry round trip of EXIT_CYCLES (the order measured on
 * Nehalem-to-Skylake parts), and WALK_REF_CYCLES per paging-structure reference of a TLB
 * miss (a two-dimensional walk under EPT takes up to 14 references for two-level guest
 * paging: (2 + 1) x (4 + 1) - 1, shadow paging's hardware walk takes 2).
 */
import type { Event } from '../events/schema.ts';
import { Machine } from '../core/machine/machine.ts';
import { parseScenario, type ReadInclude } from '../core/machine/scenario.ts';
import { initialState } from '../core/machine/state.ts';
import type { PagingMode } from '../core/hardware/vmx/controls.ts';
import { ExitReason, exitReasonName } from '../core/hardware/vmx/exit-reasons.ts';
import { nextStep } from './recorder.ts';

export const EXIT_CYCLES = 1200;
export const WALK_REF_CYCLES = 20;
/** A bound on any one workload, far above what the bundled ones need. */
const EVENTS_MAX = 20_000_000;

export interface PagingWorkload {
  name: string;
  /** The guest's assembly source, as a scenario names it: `readFile` reads it and its includes. */
  source: string;
  readFile: ReadInclude;
}

export interface PagingResult {
  workload: string;
  paging: PagingMode;
  instructions: number;
  exits: number;
  exitsByReason: Record<string, number>;
  pageWalks: number;
  walkRefs: number;
  cycles: number;
  console: string;
}

function scenario(source: string, paging: PagingMode): string {
  return [
    'seed: paging-bench',
    'machine: { memoryMiB: 16, pcpus: 1, profile: secure, timeslice: 100000 }',
    'dom0: { memoryKiB: 64 }',
    'domains:',
    `  - { name: guest, memoryKiB: 1024, paging: ${paging}, guest: { x86: { source: ${JSON.stringify(source)} } } }`,
  ].join('\n');
}

export function runPagingWorkload(workload: PagingWorkload, paging: PagingMode): PagingResult {
  const config = parseScenario(scenario(workload.source, paging), `${workload.name}-${paging}`, workload.readFile);
  const machine = new Machine(initialState(config));
  const result: PagingResult = {
    workload: workload.name, paging, instructions: 0, exits: 0, exitsByReason: {}, pageWalks: 0, walkRefs: 0, cycles: 0, console: '',
  };
  let events = 0;
  while (!machine.state.halted && events < EVENTS_MAX) {
    for (const event of nextStep(machine)) {
      events++;
      count(result, event);
    }
  }
  result.cycles = result.instructions + result.exits * EXIT_CYCLES + result.walkRefs * WALK_REF_CYCLES;
  return result;
}

/**
 * Exits whose handler completes the instruction that caused them, so that a guest's retired
 * instructions count the same under both methods (under shadow paging MOV CR3 and INVLPG
 * retire in Xen, under EPT in the guest). A fault the guest takes (#PF) retires nothing: its
 * instruction runs again.
 */
const INSTRUCTION_EXITS: ReadonlySet<number> = new Set([
  ExitReason.CPUID, ExitReason.HLT, ExitReason.INVLPG, ExitReason.VMCALL, ExitReason.CR_ACCESS,
  ExitReason.IO_INSTRUCTION, ExitReason.MSR_READ, ExitReason.MSR_WRITE, ExitReason.EPT_MISCONFIG,
]);

function count(result: PagingResult, event: Event): void {
  switch (event.kind) {
    case 'cpu.step':
      result.instructions++;
      return;
    case 'vm.exit': {
      result.exits++;
      // The handler ran the instruction that exited (Xen emulates it and moves EIP on).
      if (INSTRUCTION_EXITS.has(event.reason)) result.instructions++;
      const name = exitReasonName(event.reason);
      result.exitsByReason[name] = (result.exitsByReason[name] ?? 0) + 1;
      return;
    }
    case 'tlb.fill':
      result.pageWalks++;
      result.walkRefs += event.refs;
      return;
    case 'shadow.switch':
      // The hypervisor's resync of a kept shadow reads the guest's tables too.
      result.walkRefs += event.refs;
      return;
    case 'io':
      if (event.port === 0xe9 && event.out) result.console += String.fromCharCode(event.value & 0xff);
      return;
    case 'hypercall':
      result.console += event.text;
      return;
    default:
  }
}

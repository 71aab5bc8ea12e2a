/**
 * What an exit handler works with (the exiting vCPU and its exit information) and what it
 * decides: resume the guest (with an event to inject), halt it, crash or shut the domain
 * down, or leave the vCPU descheduled. The vCPU driver (vcpu-run.ts) carries the decision out.
 */
import type { CpuState } from '../../hardware/cpu/cpu-state.ts';
import { Vector } from '../../hardware/cpu/outcomes.ts';
import type { Domain, ExitInfo, Host, X86Vcpu } from '../state.ts';

export interface Injection {
  vector: number;
  errorCode: number;
  cr2: number;
}

export type ExitAction =
  | { kind: 'resume'; cpu: CpuState; inject: Injection | null }
  | { kind: 'halt'; cpu: CpuState }
  | { kind: 'crash'; reason: string }
  | { kind: 'shutdown' }
  | { kind: 'deschedule' };

export interface ExitContext {
  host: Host;
  domain: Domain;
  vcpu: number;
  pcpu: number;
  x86: X86Vcpu;
  exit: ExitInfo;
}

export const gp = (): Injection => ({ vector: Vector.GP, errorCode: 0, cr2: 0 });

export const resume = (cpu: CpuState, inject: Injection | null = null): ExitAction => ({ kind: 'resume', cpu, inject });


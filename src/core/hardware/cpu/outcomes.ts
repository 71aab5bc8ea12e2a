// What one step of the interpreter can end in, and the numbers those outcomes carry: the
// exception vectors (SDM Vol. 3, Table 6-1) and the VMX basic exit reasons (SDM Vol. 3,
// Appendix C) of the instructions that exit.

import type { Instruction } from '../x86/index.ts';

export const Vector = {
  DE: 0, // divide error
  DB: 1,
  NMI: 2,
  BP: 3, // INT3
  OF: 4,
  BR: 5,
  UD: 6, // invalid opcode
  NM: 7,
  DF: 8, // double fault
  TS: 10,
  NP: 11, // segment (here: gate) not present
  SS: 12,
  GP: 13,
  PF: 14,
  MF: 16,
  AC: 17,
  MC: 18,
  XM: 19,
} as const;

export const ExitReason = {
  EXCEPTION_NMI: 0,
  EXTERNAL_INTERRUPT: 1,
  TRIPLE_FAULT: 2,
  INTERRUPT_WINDOW: 7,
  CPUID: 10,
  HLT: 12,
  INVLPG: 14,
  RDTSC: 16,
  VMCALL: 18,
  CR_ACCESS: 28,
  IO_INSTRUCTION: 30,
  MSR_READ: 31,
  MSR_WRITE: 32,
  PAUSE: 40,
  EPT_VIOLATION: 48,
  EPT_MISCONFIG: 49,
} as const;

export interface RetiredOutcome {
  readonly kind: 'retired';
  /** HLT retired without exiting: the caller stops fetching until an interrupt arrives. */
  readonly halted?: true;
  /** INVLPG retired without exiting: the caller drops its cached translation of this linear address. */
  readonly invlpg?: number;
  /**
   * A MOV to CR retired that invalidates cached translations (SDM Vol. 3, 4.10.4.1): CR3
   * loads drop the non-global entries, changes of CR0.PG/WP or CR4.PSE/PAE/PGE/SMEP/SMAP all.
   */
  readonly tlbFlush?: 'non-global' | 'all';
  /** STI that set IF: external interrupts stay blocked until after the next instruction (SDM Vol. 3, 6.8.3). */
  readonly interruptShadow?: true;
  /**
   * TF was set when the instruction began: a single-step #DB trap is pending. The caller
   * delivers it (vector 1, no error code, not software) before the next instruction; EIP
   * already points there, which is what a trap pushes. DR6 is not modelled.
   */
  readonly singleStep?: true;
}

export interface ExceptionOutcome {
  readonly kind: 'exception';
  readonly vector: number;
  readonly errorCode: number | null;
  /** The faulting linear address of a #PF; deliverEvent loads it into CR2. */
  readonly cr2?: number;
  /** INT n / INT3: delivery pushes the address of the next instruction, `length` bytes on. */
  readonly software?: true;
  readonly length?: number;
}

export interface ExitOutcome {
  readonly kind: 'exit';
  readonly reason: number;
  readonly qualification: number;
  /** Instruction length, for the handler to advance EIP; 0 when the exit came before decoding finished. */
  readonly length: number;
  readonly instruction?: Instruction;
  readonly gla: number | null;
  readonly gpa: number | null;
}

export type StepOutcome = RetiredOutcome | ExceptionOutcome | ExitOutcome;

export const RETIRED: RetiredOutcome = Object.freeze({ kind: 'retired' });

/** A hardware exception (EXT = 1 when it has to be delivered). */
export function exception(vector: number, errorCode: number | null = null): ExceptionOutcome {
  return { kind: 'exception', vector, errorCode };
}

/** An exit caused by executing an instruction (SDM Vol. 3, 26.1.2 and 26.1.3). */
export function instructionExit(reason: number, qualification: number, instruction: Instruction): ExitOutcome {
  return { kind: 'exit', reason, qualification: qualification >>> 0, length: instruction.length, instruction, gla: null, gpa: null };
}

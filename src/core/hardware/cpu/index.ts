// Public surface of the IA-32 interpreter: CPU state and its deltas, the bus the machine
// provides, one-step execution, and event delivery through the IDT.
//
// What the model is: 32-bit protected mode, flat segments, CPL 0 always (the guest kernels
// run everything in ring 0), paging outside the interpreter (behind CpuBus), every mnemonic of
// src/core/x86's subset with exact EFLAGS. What it leaves out, on purpose:
// - segmentation and privilege: no segment registers, limits, TSS, task gates, 16-bit gates,
//   stack switches or IOPL/I/O permission checks; IRETD ignores the popped CS;
// - real mode and virtual-8086 mode (MOV to CR0 that clears PE is #GP(0));
// - x87/SSE, MSRs of its own (RDMSR/WRMSR either exit or #GP(0)), debug registers (TF
//   single-step is reported as `singleStep` on the retired outcome, DR6 is not modelled),
//   alignment checks, NMI/SMI blocking, and VMX read shadows for CR0/CR4.

export { applyCpuDelta, cpuDelta, resetCpu, CpuRegisterIndex, Eflags, Cr0, CR0_PROTECTED_MODE, STATUS_FLAGS, WRITABLE_FLAGS } from './cpu-state.ts';
export type { CpuState } from './cpu-state.ts';
export type { AccessSize, CpuBus, Fault } from './bus.ts';
export { isFault } from './bus.ts';
export { Cr4 } from './control-registers.ts';
export { step, fetchInstruction } from './interpreter.ts';
export type { ExitControls, ExceptionOutcome, ExitOutcome, RetiredOutcome, StepOutcome } from './interpreter.ts';
export { ExitReason, Vector } from './outcomes.ts';
export { deliverEvent, causesDoubleFault, FLAT_CODE_SELECTOR } from './exceptions.ts';
export type { DeliveryResult, EventDetail } from './exceptions.ts';

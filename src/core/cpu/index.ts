// Public surface of the IA-32 interpreter: CPU state and its deltas, the bus the machine
// provides, one-step execution, and event delivery through the IDT.

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

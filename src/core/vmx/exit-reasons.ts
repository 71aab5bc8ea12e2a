/** VMX basic exit reasons (SDM Vol. 3, Appendix C), the numbers Linux's vmx.h uses. */
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

const NAMES = new Map<number, string>(Object.entries(ExitReason).map(([name, number]) => [number, name]));

export function exitReasonName(reason: number): string {
  return NAMES.get(reason) ?? `EXIT_${reason}`;
}

/** Exception vectors the model raises or injects. */
export const Vector = {
  DE: 0, UD: 6, DF: 8, GP: 13, PF: 14,
} as const;

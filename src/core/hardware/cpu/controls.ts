// The VM-execution controls the interpreter consults (SDM Vol. 3, 25.6). The caller decides
// their values (Xen's HVM defaults, or a scenario's); the interpreter only obeys them.

export interface ExitControls {
  /** CPUID exits unconditionally on real VT-x; false models a CPU outside VMX non-root operation. */
  cpuid: boolean;
  /** "HLT exiting". */
  hlt: boolean;
  /** "Unconditional I/O exiting". Informational here: IN/OUT always end the step with exit 30 and the caller decides. */
  io: boolean;
  /** MSR accesses exit (as if every MSR bitmap bit were set); false makes RDMSR/WRMSR raise #GP(0). */
  rdmsr: boolean;
  wrmsr: boolean;
  /** "RDTSC exiting"; otherwise RDTSC returns the caller's `tsc` in EDX:EAX. */
  rdtsc: boolean;
  /** "CR3-load exiting" and "CR3-store exiting". */
  cr3Load: boolean;
  cr3Store: boolean;
  /** "INVLPG exiting". */
  invlpg: boolean;
  /** "PAUSE exiting". */
  pause: boolean;
  /** VMCALL exits unconditionally in VMX non-root operation; false models a CPU outside VMX operation (#UD). */
  vmcall: boolean;
  /** CR0/CR4 guest/host masks: a MOV to CR0/CR4 that changes a masked bit exits. */
  cr0Mask: number;
  cr4Mask: number;
}

// The CPUID answers of the model's own CPU, used only when CPUID does not exit. On real VT-x
// CPUID exits unconditionally in VMX non-root operation, so a hypervisor answers instead;
// this table exists for runs that model a guest outside VMX (controls.cpuid = false).

export interface CpuidResult {
  readonly eax: number;
  readonly ebx: number;
  readonly ecx: number;
  readonly edx: number;
}

const HIGHEST_BASIC_LEAF = 1;
const HIGHEST_EXTENDED_LEAF = 0x80000000;

// "GenuineIntel" in EBX, EDX, ECX order.
const VENDOR = { ebx: 0x756e6547, edx: 0x49656e69, ecx: 0x6c65746e } as const;

// Leaf 1 EDX: PSE (bit 3: 4 MiB pages), TSC (bit 4), MSR (bit 5). No FPU, no VMX in ECX:
// the model has neither. EAX: family 6, model 15, stepping 1.
const FEATURES: CpuidResult = { eax: 0x000006f1, ebx: 0, ecx: 0, edx: (1 << 3) | (1 << 4) | (1 << 5) };

/**
 * A leaf above the highest one answers with the highest basic leaf's data, as the SDM
 * specifies for Intel processors (CPUID, "INPUT EAX = 0").
 */
export function nativeCpuid(leaf: number): CpuidResult {
  const request = leaf >>> 0;
  if (request === 0) return { eax: HIGHEST_BASIC_LEAF, ...VENDOR };
  if (request === HIGHEST_EXTENDED_LEAF) return { eax: HIGHEST_EXTENDED_LEAF, ebx: 0, ecx: 0, edx: 0 };
  return FEATURES;
}

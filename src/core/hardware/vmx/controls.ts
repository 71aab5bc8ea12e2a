/**
 * The VM-execution controls chronovisor's Xen sets for an HVM guest (after Xen's vmx.c):
 * CPUID, HLT, VMCALL, port I/O (the I/O bitmap traps every port) and MSRs (the MSR bitmap
 * traps all but a few) always exit; RDTSC does not (TSC offsetting: the guest reads virtual
 * time). Under shadow paging the hypervisor must also see CR3 loads and stores, INVLPG, CR0
 * and CR4 paging bits and every #PF; under EPT it sees none of them.
 */
import type { ExitControls } from '../cpu/interpreter.ts';

/** How guest-physical memory is virtualised: the processor's EPT, or the hypervisor's shadow page tables. */
export type PagingMode = 'ept' | 'shadow';

const CR0_PE = 1 << 0;
const CR0_WP = 1 << 16;
const CR0_PG = 1 << 31;
const CR4_PSE = 1 << 4;
const CR4_PAE = 1 << 5;
const CR4_PGE = 1 << 7;
const CR4_VMXE = 1 << 13;

export function xenHvmControls(paging: PagingMode): ExitControls {
  const shadow = paging === 'shadow';
  return {
    cpuid: true, hlt: true, io: true, rdmsr: true, wrmsr: true, rdtsc: false,
    cr3Load: shadow, cr3Store: shadow, invlpg: shadow, pause: false, vmcall: true,
    cr0Mask: shadow ? (CR0_PE | CR0_WP | CR0_PG) >>> 0 : 0,
    // VMXE is always owned by the hypervisor: a guest may not turn VMX on.
    cr4Mask: (shadow ? CR4_PSE | CR4_PAE | CR4_PGE : 0) | CR4_VMXE,
  };
}

/** Exceptions that exit instead of reaching the guest's IDT (the exception bitmap). */
export function interceptsException(paging: PagingMode, vector: number): boolean {
  return paging === 'shadow' && vector === 14;
}

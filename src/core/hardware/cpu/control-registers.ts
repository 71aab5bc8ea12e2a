// Which values MOV to CR0/CR4 accepts, and which changes flush the TLB (SDM Vol. 3, 2.5 and
// 4.10.4.1; MOV "Move to/from Control Registers" in Vol. 2).

import { Cr0 } from './cpu-state.ts';

export const Cr4 = {
  VME: 1 << 0,
  PVI: 1 << 1,
  TSD: 1 << 2,
  DE: 1 << 3,
  PSE: 1 << 4,
  PAE: 1 << 5,
  MCE: 1 << 6,
  PGE: 1 << 7,
  PCE: 1 << 8,
  OSFXSR: 1 << 9,
  OSXMMEXCPT: 1 << 10,
  UMIP: 1 << 11,
  VMXE: 1 << 13,
  SMXE: 1 << 14,
  FSGSBASE: 1 << 16,
  PCIDE: 1 << 17,
  OSXSAVE: 1 << 18,
  SMEP: 1 << 20,
  SMAP: 1 << 21,
  PKE: 1 << 22,
} as const;

const CR0_DEFINED = Cr0.PE | Cr0.MP | Cr0.EM | Cr0.TS | Cr0.ET | Cr0.NE | Cr0.WP | Cr0.AM | Cr0.NW | Cr0.CD | Cr0.PG;

/**
 * CR4 bits a MOV may set in 32-bit protected mode. PCIDE (only legal in IA-32e mode), LA57,
 * CET and the bits this model's CPU does not have count as reserved: setting them is #GP(0).
 */
const CR4_WRITABLE = Object.values(Cr4).reduce((bits, bit) => bits | bit, 0) & ~Cr4.PCIDE;

/**
 * The new CR0, or undefined for #GP(0): PG without PE, or NW without CD (SDM MOV CRn,
 * Protected Mode Exceptions). Clearing PE is #GP(0) too: the model has no real mode, and a
 * VMX processor without "unrestricted guest" fixes CR0.PE to 1 in VMX operation and faults
 * any attempt to clear it (SDM Vol. 3, 24.8). A hypervisor that wants to see such writes puts
 * PE in the CR0 guest/host mask, and the exit comes first.
 */
export function checkCr0(value: number): number | undefined {
  if ((value & Cr0.PE) === 0) return undefined;
  if ((value & Cr0.NW) !== 0 && (value & Cr0.CD) === 0) return undefined;
  // Writes to reserved CR0[31:0] bits are ignored (as KVM does), and ET is hardwired to 1.
  return ((value & CR0_DEFINED) | Cr0.ET) >>> 0;
}

/** The new CR4, or undefined for #GP(0) when a reserved bit is set. */
export function checkCr4(value: number): number | undefined {
  return (value & ~CR4_WRITABLE) === 0 ? value >>> 0 : undefined;
}

// Changing these bits invalidates every TLB entry, global ones included (SDM Vol. 3, 4.10.4.1).
const CR0_FLUSH_ALL = Cr0.PG | Cr0.WP;
const CR4_FLUSH_ALL = Cr4.PSE | Cr4.PAE | Cr4.PGE | Cr4.SMEP | Cr4.SMAP;

export function cr0ChangeFlushesTlb(before: number, after: number): boolean {
  return ((before ^ after) & CR0_FLUSH_ALL) !== 0;
}

export function cr4ChangeFlushesTlb(before: number, after: number): boolean {
  return ((before ^ after) & CR4_FLUSH_ALL) !== 0;
}

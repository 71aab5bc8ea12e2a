/**
 * The guest's own two-level IA-32 paging (SDM Vol. 3, 4.3): CR3 -> page directory -> page
 * table, with 4 MiB pages when CR4.PSE is set. Reads and writes of the paging structures go
 * through a port, because where guest-physical memory is depends on the paging method (EPT
 * or the p2m under shadow paging) and every access goes through SMM.
 */
import type { Fault } from '../cpu/bus.ts';
import { Vector } from '../cpu/outcomes.ts';

export const PTE_PRESENT = 1 << 0;
export const PTE_WRITABLE = 1 << 1;
export const PTE_USER = 1 << 2;
export const PTE_ACCESSED = 1 << 5;
export const PTE_DIRTY = 1 << 6;
export const PDE_LARGE = 1 << 7;
export const CR0_PG = 1 << 31;
export const CR0_WP = 1 << 16;
export const CR4_PSE = 1 << 4;

/** #PF error code bits (SDM 4.7). */
export const PF_PRESENT = 1 << 0;
export const PF_WRITE = 1 << 1;

export interface WalkPort {
  read32(gpa: number): number | Fault;
  write32(gpa: number, value: number): Fault | undefined;
}

export interface WalkResult {
  gpa: number;
  /** PTE_WRITABLE when a write is allowed, PTE_DIRTY when the dirty bit is set. */
  flags: number;
  /** Paging-structure entries read. */
  refs: number;
}

const isFault = (value: unknown): value is Fault => typeof value === 'object' && value !== null;

function pageFault(linear: number, present: boolean, write: boolean): Fault {
  return { kind: 'exception', vector: Vector.PF, errorCode: (present ? PF_PRESENT : 0) | (write ? PF_WRITE : 0), cr2: linear >>> 0 };
}

/** Sets accessed (and dirty) bits the way the processor does, only when they change. */
function touch(port: WalkPort, gpa: number, entry: number, bits: number): Fault | undefined {
  return (entry & bits) === bits ? undefined : port.write32(gpa, (entry | bits) >>> 0);
}

export function guestWalk(port: WalkPort, cpu: { cr0: number; cr3: number; cr4: number }, linear: number, write: boolean): WalkResult | Fault {
  const pdeAddress = ((cpu.cr3 & ~0xfff) + (linear >>> 22) * 4) >>> 0;
  const pde = port.read32(pdeAddress);
  if (isFault(pde)) return pde;
  if ((pde & PTE_PRESENT) === 0) return pageFault(linear, false, write);
  const wp = (cpu.cr0 & CR0_WP) !== 0;
  if ((pde & PDE_LARGE) !== 0 && (cpu.cr4 & CR4_PSE) !== 0) {
    if (write && wp && (pde & PTE_WRITABLE) === 0) return pageFault(linear, true, write);
    const fault = touch(port, pdeAddress, pde, PTE_ACCESSED | (write ? PTE_DIRTY : 0));
    if (fault) return fault;
    const gpa = ((pde & 0xffc00000) | (linear & 0x3fffff)) >>> 0;
    return { gpa, flags: writableFlags(wp, pde) | (write ? PTE_DIRTY : pde & PTE_DIRTY), refs: 1 };
  }
  const pteAddress = ((pde & ~0xfff) + ((linear >>> 12) & 0x3ff) * 4) >>> 0;
  const pte = port.read32(pteAddress);
  if (isFault(pte)) return pte;
  if ((pte & PTE_PRESENT) === 0) return pageFault(linear, false, write);
  const writable = (pde & pte & PTE_WRITABLE) !== 0;
  if (write && wp && !writable) return pageFault(linear, true, write);
  const pdeFault = touch(port, pdeAddress, pde, PTE_ACCESSED);
  if (pdeFault) return pdeFault;
  const pteFault = touch(port, pteAddress, pte, PTE_ACCESSED | (write ? PTE_DIRTY : 0));
  if (pteFault) return pteFault;
  const flags = (writable || !wp ? PTE_WRITABLE : 0) | (write ? PTE_DIRTY : pte & PTE_DIRTY);
  return { gpa: ((pte & ~0xfff) | (linear & 0xfff)) >>> 0, flags, refs: 2 };
}

function writableFlags(wp: boolean, pde: number): number {
  return (pde & PTE_WRITABLE) !== 0 || !wp ? PTE_WRITABLE : 0;
}

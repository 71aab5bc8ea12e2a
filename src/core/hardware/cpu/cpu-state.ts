// The architectural state the interpreter owns: general registers, EIP, EFLAGS, the control
// registers and IDTR. Segment registers are absent on purpose: the guests run with flat
// 4 GiB segments at CPL 0, so CS/DS/ES/SS never change an address and never get checked.

import { assert } from '../../../events/errors.ts';

export interface CpuState {
  /** 8 x uint32 in SDM encoding order: EAX ECX EDX EBX ESP EBP ESI EDI. */
  gpr: number[];
  eip: number;
  /** Bit 1 is reserved and always reads 1 (SDM Vol. 1, 3.4.3). */
  eflags: number;
  cr0: number;
  cr2: number;
  cr3: number;
  cr4: number;
  idtrBase: number;
  idtrLimit: number;
  /**
   * The VMCS guest interruptibility state: bit 0, "blocking by STI". An STI that sets IF
   * holds interrupts off until the next instruction has run (SDM Vol. 3, 25.4.2).
   */
  interruptibility: number;
}

export const GPR_COUNT = 8;

// Register indices of a compact delta, as the event log stores them.
export const CpuRegisterIndex = {
  EIP: 8,
  EFLAGS: 9,
  CR0: 10,
  CR2: 11,
  CR3: 12,
  CR4: 13,
  IDTR_BASE: 14,
  IDTR_LIMIT: 15,
  INTERRUPTIBILITY: 16,
} as const;

export const CPU_REGISTER_COUNT = 17;
export const BLOCKING_BY_STI = 1;

/** EFLAGS bits (SDM Vol. 1, Figure 3-8). */
export const Eflags = {
  CF: 1 << 0,
  FIXED_1: 1 << 1,
  PF: 1 << 2,
  AF: 1 << 4,
  ZF: 1 << 6,
  SF: 1 << 7,
  TF: 1 << 8,
  IF: 1 << 9,
  DF: 1 << 10,
  OF: 1 << 11,
  NT: 1 << 14,
  RF: 1 << 16,
  VM: 1 << 17,
} as const;

/** The six status flags the arithmetic instructions write. */
export const STATUS_FLAGS = Eflags.CF | Eflags.PF | Eflags.AF | Eflags.ZF | Eflags.SF | Eflags.OF;

/**
 * Bits POPFD and IRETD may change. At CPL 0 real hardware also lets IOPL, NT, AC and ID
 * through; the model leaves them out because nothing here reads them (no privilege levels,
 * no task switches, no alignment checks, CPUID is always present).
 */
export const WRITABLE_FLAGS = STATUS_FLAGS | Eflags.TF | Eflags.IF | Eflags.DF;

/** CR0 bits (SDM Vol. 3, 2.5). */
export const Cr0 = {
  PE: 1 << 0,
  MP: 1 << 1,
  EM: 1 << 2,
  TS: 1 << 3,
  ET: 1 << 4,
  NE: 1 << 5,
  WP: 1 << 16,
  AM: 1 << 18,
  NW: 1 << 29,
  CD: 1 << 30,
  PG: 1 << 31,
} as const;

/** Protected mode, paging off, ET hardwired to 1 as on every processor since the Pentium. */
export const CR0_PROTECTED_MODE = Cr0.PE | Cr0.ET;

/**
 * The state a loader hands to a 32-bit kernel entry point: protected mode, paging off,
 * interrupts masked (EFLAGS = 2), IDTR at its reset value (base 0, limit 0xFFFF).
 */
export function resetCpu(entry: number, stack: number): CpuState {
  return {
    gpr: [0, 0, 0, 0, stack >>> 0, 0, 0, 0],
    eip: entry >>> 0,
    eflags: Eflags.FIXED_1,
    cr0: CR0_PROTECTED_MODE,
    cr2: 0,
    cr3: 0,
    cr4: 0,
    idtrBase: 0,
    idtrLimit: 0xffff,
    interruptibility: 0,
  };
}

/** Field by field, not by spread: one object shape for every CpuState, and it runs per instruction. */
export function cloneCpu(cpu: CpuState): CpuState {
  return {
    gpr: cpu.gpr.slice(), eip: cpu.eip, eflags: cpu.eflags, cr0: cpu.cr0, cr2: cpu.cr2, cr3: cpu.cr3, cr4: cpu.cr4,
    idtrBase: cpu.idtrBase, idtrLimit: cpu.idtrLimit, interruptibility: cpu.interruptibility,
  };
}

/** Overwrites `target` with `source` field by field, keeping the caller's object identity. */
export function copyCpuInto(target: CpuState, source: CpuState): void {
  for (let index = 0; index < GPR_COUNT; index += 1) target.gpr[index] = source.gpr[index];
  target.eip = source.eip;
  target.eflags = source.eflags;
  target.cr0 = source.cr0;
  target.cr2 = source.cr2;
  target.cr3 = source.cr3;
  target.cr4 = source.cr4;
  target.idtrBase = source.idtrBase;
  target.idtrLimit = source.idtrLimit;
  target.interruptibility = source.interruptibility;
}

export function readRegister(cpu: CpuState, index: number): number {
  if (index < GPR_COUNT) return cpu.gpr[index];
  switch (index) {
    case CpuRegisterIndex.EIP: return cpu.eip;
    case CpuRegisterIndex.EFLAGS: return cpu.eflags;
    case CpuRegisterIndex.CR0: return cpu.cr0;
    case CpuRegisterIndex.CR2: return cpu.cr2;
    case CpuRegisterIndex.CR3: return cpu.cr3;
    case CpuRegisterIndex.CR4: return cpu.cr4;
    case CpuRegisterIndex.IDTR_BASE: return cpu.idtrBase;
    case CpuRegisterIndex.IDTR_LIMIT: return cpu.idtrLimit;
    case CpuRegisterIndex.INTERRUPTIBILITY: return cpu.interruptibility;
  }
  assert(false, () => `cpu: no register with delta index ${index}`);
}

function writeRegister(cpu: CpuState, index: number, value: number): void {
  if (index < GPR_COUNT) {
    cpu.gpr[index] = value;
    return;
  }
  switch (index) {
    case CpuRegisterIndex.EIP: cpu.eip = value; return;
    case CpuRegisterIndex.EFLAGS: cpu.eflags = value; return;
    case CpuRegisterIndex.CR0: cpu.cr0 = value; return;
    case CpuRegisterIndex.CR2: cpu.cr2 = value; return;
    case CpuRegisterIndex.CR3: cpu.cr3 = value; return;
    case CpuRegisterIndex.CR4: cpu.cr4 = value; return;
    case CpuRegisterIndex.IDTR_BASE: cpu.idtrBase = value; return;
    case CpuRegisterIndex.IDTR_LIMIT: cpu.idtrLimit = value; return;
    case CpuRegisterIndex.INTERRUPTIBILITY: cpu.interruptibility = value; return;
  }
  assert(false, () => `cpu: no register with delta index ${index}`);
}

/** What changed from `before` to `after`, as flat [index, value, ...] pairs in index order. */
/**
 * What changed, as [index, value, ...] in index order (field by field: this runs per
 * instruction). `withEip` false leaves EIP out, for events that carry it on their own.
 */
export function cpuDelta(before: CpuState, after: CpuState, withEip = true): number[] {
  const delta: number[] = [];
  const a = after.gpr;
  const b = before.gpr;
  for (let index = 0; index < GPR_COUNT; index += 1) if (a[index] !== b[index]) delta.push(index, a[index]);
  if (withEip && after.eip !== before.eip) delta.push(CpuRegisterIndex.EIP, after.eip);
  if (after.eflags !== before.eflags) delta.push(CpuRegisterIndex.EFLAGS, after.eflags);
  if (after.cr0 !== before.cr0) delta.push(CpuRegisterIndex.CR0, after.cr0);
  if (after.cr2 !== before.cr2) delta.push(CpuRegisterIndex.CR2, after.cr2);
  if (after.cr3 !== before.cr3) delta.push(CpuRegisterIndex.CR3, after.cr3);
  if (after.cr4 !== before.cr4) delta.push(CpuRegisterIndex.CR4, after.cr4);
  if (after.idtrBase !== before.idtrBase) delta.push(CpuRegisterIndex.IDTR_BASE, after.idtrBase);
  if (after.idtrLimit !== before.idtrLimit) delta.push(CpuRegisterIndex.IDTR_LIMIT, after.idtrLimit);
  if (after.interruptibility !== before.interruptibility) delta.push(CpuRegisterIndex.INTERRUPTIBILITY, after.interruptibility);
  return delta;
}

export function applyCpuDelta(cpu: CpuState, delta: readonly number[]): void {
  if (delta.length % 2 !== 0) assert(false, `cpu delta has odd length ${delta.length}`);
  for (let at = 0; at < delta.length; at += 2) {
    const index = delta[at];
    const value = delta[at + 1];
    // (x >>> 0 === x: an integer in 0..2^32-1; checked without closures, this runs per instruction)
    if (index >>> 0 !== index || index >= CPU_REGISTER_COUNT) assert(false, `cpu delta: bad register index ${index}`);
    if (value >>> 0 !== value) assert(false, `cpu delta: register ${index} value ${value} is not a uint32`);
    if (index < GPR_COUNT) cpu.gpr[index] = value;
    else writeRegister(cpu, index, value);
  }
}

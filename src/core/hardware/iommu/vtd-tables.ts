/**
 * The software side of VT-d: builders that compute the words of root, context and
 * second-level entries, IRTEs, invalidation descriptors, register values and MSIs from
 * their fields, and helpers that compute the writes mapping or unmapping a page. The
 * hypervisor programs the unit with them; tests build tables with them.
 *
 * Builders check their fields with assertions: a wrong field here is a bug of the caller
 * (the hypervisor model or a test), not behaviour of the hardware. Hostile tables are
 * written as raw words instead.
 */
import { assert } from '../../../events/errors.ts';
import {
  VTD_ADDRESS_MASK, VTD_CONTEXT_ENTRY_DID_SHIFT, VTD_CONTEXT_ENTRY_FPD, VTD_CONTEXT_ENTRY_P,
  VTD_CONTEXT_ENTRY_SIZE, VTD_CONTEXT_ENTRY_TT_SHIFT, VTD_CCMD_CIRG_SHIFT, VTD_CCMD_FM_SHIFT,
  VTD_CCMD_ICC, VTD_CCMD_SID_SHIFT, VTD_HAW, VTD_INV_DESC_CC, VTD_INV_DESC_DEVICE_TLB,
  VTD_INV_DESC_G_SHIFT, VTD_INV_DESC_IEC, VTD_INV_DESC_IEC_G_INDEX, VTD_INV_DESC_IOTLB,
  VTD_INV_DESC_IOTLB_DR, VTD_INV_DESC_IOTLB_DW, VTD_INV_DESC_WAIT, VTD_INV_DESC_WAIT_FN,
  VTD_INV_DESC_WAIT_IF, VTD_INV_DESC_WAIT_SW, VTD_IOTLB_DID_SHIFT, VTD_IOTLB_DR, VTD_IOTLB_DW,
  VTD_IOTLB_IIRG_SHIFT, VTD_IOTLB_IVT, VTD_IQA_QS_MASK, VTD_IRTA_EIME, VTD_IRTA_S_MASK,
  VTD_IRTE_DLM_SHIFT, VTD_IRTE_DM, VTD_IRTE_DST_SHIFT, VTD_IRTE_FPD, VTD_IRTE_P, VTD_IRTE_RH,
  VTD_IRTE_SQ_SHIFT, VTD_IRTE_SVT_SHIFT, VTD_IRTE_TM, VTD_IRTE_VECTOR_SHIFT, VTD_IVA_AM_MASK,
  VTD_IVA_IH, VTD_MSI_ADDRESS_BASE, VTD_MSI_ADDR_HANDLE_15, VTD_MSI_ADDR_HANDLE_SHIFT,
  VTD_MSI_ADDR_IF_REMAPPABLE, VTD_MSI_ADDR_SHV, VTD_PAGE_SIZE, VTD_ROOT_ENTRY_P,
  VTD_ROOT_ENTRY_SIZE, VTD_SL_LEVEL_BITS, VTD_SL_PS, VTD_SL_R, VTD_SL_TM, VTD_SL_W,
} from './vtd-internal.ts';
import type {
  PhysicalMemory, VtdContextInvalidation, VtdIecInvalidation, VtdIotlbInvalidation,
} from './vtd-state.ts';

/** A 128-bit entry or descriptor: the low 64 bits at the lower address. */
export interface VtdEntry128 {
  lo: bigint;
  hi: bigint;
}

/** One 64-bit store the software makes. */
export interface VtdWordWrite {
  hpa: number;
  value: bigint;
}

const U64 = 0xffff_ffff_ffff_ffffn;

function vtdCheckField(name: string, value: number, bits: number): bigint {
  assert(Number.isInteger(value) && value >= 0 && value < 2 ** bits, () => `${name} ${value} does not fit ${bits} bits`);
  return BigInt(value);
}

function vtdCheckPointer(name: string, hpa: number, alignment = VTD_PAGE_SIZE): bigint {
  assert(Number.isInteger(hpa) && hpa >= 0 && hpa < 2 ** VTD_HAW && hpa % alignment === 0,
    () => `${name} ${hpa} is not a ${alignment}-aligned address below 2^${VTD_HAW}`);
  return BigInt(hpa);
}

/** Source id: bus << 8 | device << 3 | function. */
export function vtdSid(bus: number, device: number, fn: number): number {
  vtdCheckField('bus', bus, 8);
  vtdCheckField('device', device, 5);
  vtdCheckField('function', fn, 3);
  return (bus << 8) | (device << 3) | fn;
}

/** Where the root entry for a bus lives, and the context entry for a devfn in its table. */
export function vtdRootEntryAddress(rootTable: number, bus: number): number {
  return rootTable + bus * VTD_ROOT_ENTRY_SIZE;
}
export function vtdContextEntryAddress(contextTable: number, devfn: number): number {
  return contextTable + devfn * VTD_CONTEXT_ENTRY_SIZE;
}

/** A root entry: P and the context-table pointer (spec 9.1). */
export function vtdRootEntry(fields: { present?: boolean; contextTable: number }): VtdEntry128 {
  const lo = vtdCheckPointer('context table', fields.contextTable) | ((fields.present ?? true) ? VTD_ROOT_ENTRY_P : 0n);
  return { lo, hi: 0n };
}

export interface VtdContextFields {
  present?: boolean;
  /** Fault processing disable: qualified faults of this device are not recorded. */
  fpd?: boolean;
  /** 0 multi-level, 1 device-TLB, 2 pass-through (3 is reserved). */
  tt?: number;
  /** Second-level page-table pointer (ignored for pass-through). */
  slptptr?: number;
  /** 1 = 39-bit 3-level, 2 = 48-bit 4-level. */
  aw?: number;
  did: number;
}

/** A context entry (spec 9.3). */
export function vtdContextEntry(fields: VtdContextFields): VtdEntry128 {
  const lo = vtdCheckPointer('SLPTPTR', fields.slptptr ?? 0) |
    (vtdCheckField('TT', fields.tt ?? 0, 2) << VTD_CONTEXT_ENTRY_TT_SHIFT) |
    (fields.fpd ? VTD_CONTEXT_ENTRY_FPD : 0n) | ((fields.present ?? true) ? VTD_CONTEXT_ENTRY_P : 0n);
  const hi = vtdCheckField('AW', fields.aw ?? 2, 3) | (vtdCheckField('DID', fields.did, 16) << VTD_CONTEXT_ENTRY_DID_SHIFT);
  return { lo, hi };
}

export interface VtdSecondLevelFields {
  read: boolean;
  write: boolean;
  /** The next table, or the page (aligned to its size for a large page). */
  address: number;
  /** A leaf above level 1: a 2 MiB (level 2) or 1 GiB (level 3) page. */
  largePage?: boolean;
  transient?: boolean;
}

/** A second-level paging entry (spec 9.8). */
export function vtdSecondLevelEntry(fields: VtdSecondLevelFields): bigint {
  return vtdCheckPointer('address', fields.address) | (fields.read ? VTD_SL_R : 0n) | (fields.write ? VTD_SL_W : 0n) |
    (fields.largePage ? VTD_SL_PS : 0n) | (fields.transient ? VTD_SL_TM : 0n);
}

export interface VtdIrteFields {
  present?: boolean;
  fpd?: boolean;
  /** Destination mode: 0 physical, 1 logical. */
  dm?: number;
  rh?: number;
  tm?: number;
  /** Delivery mode: 0 fixed, 1 lowest priority, 2 SMI, 4 NMI, 5 INIT, 7 ExtINT. */
  dlm?: number;
  vector: number;
  /** APIC id. In xAPIC mode (the default) an 8-bit id placed in DST[15:8]. */
  destination: number;
  /** x2APIC mode (IRTA.EIME = 1): the whole 32-bit DST is the id. */
  x2apic?: boolean;
  /** Source validation type 0..3, qualifier 0..3 and the SID field. */
  svt?: number;
  sq?: number;
  sid?: number;
}

/** An interrupt remapping table entry in remapped format (spec 9.10). */
export function vtdIrte(fields: VtdIrteFields): VtdEntry128 {
  const destination = fields.x2apic ? vtdCheckField('destination', fields.destination, 32)
    : vtdCheckField('destination', fields.destination, 8) << 8n;
  const lo = ((fields.present ?? true) ? VTD_IRTE_P : 0n) | (fields.fpd ? VTD_IRTE_FPD : 0n) |
    (fields.dm ? VTD_IRTE_DM : 0n) | (fields.rh ? VTD_IRTE_RH : 0n) | (fields.tm ? VTD_IRTE_TM : 0n) |
    (vtdCheckField('DLM', fields.dlm ?? 0, 3) << VTD_IRTE_DLM_SHIFT) |
    (vtdCheckField('vector', fields.vector, 8) << VTD_IRTE_VECTOR_SHIFT) | (destination << VTD_IRTE_DST_SHIFT);
  const hi = vtdCheckField('SID', fields.sid ?? 0, 16) | (vtdCheckField('SQ', fields.sq ?? 0, 2) << VTD_IRTE_SQ_SHIFT) |
    (vtdCheckField('SVT', fields.svt ?? 0, 2) << VTD_IRTE_SVT_SHIFT);
  return { lo, hi };
}

/** An MSI as a device sends it: a 32-bit write of `data` at `address`. */
export interface VtdMsi {
  address: number;
  data: number;
}

/** A remappable-format MSI (spec 5.1.5.2): handle in address [19:5] and [2], SHV, subhandle in data. */
export function vtdRemappableMsi(fields: { handle: number; subhandle?: number }): VtdMsi {
  vtdCheckField('handle', fields.handle, 16);
  const shv = fields.subhandle !== undefined;
  const address = VTD_MSI_ADDRESS_BASE | ((fields.handle & 0x7fff) << VTD_MSI_ADDR_HANDLE_SHIFT) |
    VTD_MSI_ADDR_IF_REMAPPABLE | (shv ? VTD_MSI_ADDR_SHV : 0) | (fields.handle & 0x8000 ? VTD_MSI_ADDR_HANDLE_15 : 0);
  return { address: address >>> 0, data: shv ? Number(vtdCheckField('subhandle', fields.subhandle!, 16)) : 0 };
}

/** A compatibility-format MSI (Intel SDM 11.11): destination in address [19:12], vector in data [7:0]. */
export function vtdCompatibilityMsi(fields: { destination: number; vector: number; deliveryMode?: number }): VtdMsi {
  vtdCheckField('destination', fields.destination, 8);
  vtdCheckField('vector', fields.vector, 8);
  const deliveryMode = Number(vtdCheckField('delivery mode', fields.deliveryMode ?? 0, 3));
  return { address: (VTD_MSI_ADDRESS_BASE | (fields.destination << 12)) >>> 0, data: fields.vector | (deliveryMode << 8) };
}

// ---- invalidation descriptors (spec 6.5.2) -------------------------------------------

export function vtdContextCacheDescriptor(inv: VtdContextInvalidation): VtdEntry128 {
  const lo = BigInt(VTD_INV_DESC_CC) | (vtdCheckField('G', inv.granularity, 2) << VTD_INV_DESC_G_SHIFT) |
    (vtdCheckField('DID', inv.did, 16) << 16n) | (vtdCheckField('SID', inv.sid, 16) << 32n) | (vtdCheckField('FM', inv.fm, 2) << 48n);
  return { lo, hi: 0n };
}

/** An IOTLB invalidation descriptor; `drain` sets DR and DW (drain reads and writes). */
export function vtdIotlbDescriptor(inv: VtdIotlbInvalidation & { drain?: boolean; ih?: boolean }): VtdEntry128 {
  const lo = BigInt(VTD_INV_DESC_IOTLB) | (vtdCheckField('G', inv.granularity, 2) << VTD_INV_DESC_G_SHIFT) |
    (vtdCheckField('DID', inv.did, 16) << 16n) | (inv.drain ? VTD_INV_DESC_IOTLB_DR | VTD_INV_DESC_IOTLB_DW : 0n);
  const address = BigInt(inv.address) & ~0xfffn;
  const hi = (address & U64) | (inv.ih ? BigInt(VTD_IVA_IH) : 0n) | vtdCheckField('AM', inv.am, 6);
  return { lo, hi };
}

export function vtdIecDescriptor(inv: VtdIecInvalidation): VtdEntry128 {
  const lo = BigInt(VTD_INV_DESC_IEC) | (inv.global ? 0n : VTD_INV_DESC_IEC_G_INDEX) |
    (vtdCheckField('IM', inv.im, 5) << 27n) | (vtdCheckField('IIDX', inv.index, 16) << 32n);
  return { lo, hi: 0n };
}

/** An invalidation wait descriptor: status write (SW) of `statusData` at `statusAddress`, interrupt (IF), fence (FN). */
export function vtdWaitDescriptor(fields: { statusAddress?: number; statusData?: number; interrupt?: boolean; fence?: boolean }): VtdEntry128 {
  const sw = fields.statusAddress !== undefined;
  const lo = BigInt(VTD_INV_DESC_WAIT) | (fields.interrupt ? VTD_INV_DESC_WAIT_IF : 0n) | (sw ? VTD_INV_DESC_WAIT_SW : 0n) |
    (fields.fence ? VTD_INV_DESC_WAIT_FN : 0n) | (vtdCheckField('status data', fields.statusData ?? 0, 32) << 32n);
  const hi = sw ? vtdCheckPointer('status address', fields.statusAddress!, 4) : 0n;
  return { lo, hi };
}

/** A device-TLB invalidation of everything the device caches (S = 1, address all ones below bit 63). */
export function vtdDeviceTlbDescriptor(fields: { sid: number }): VtdEntry128 {
  const lo = BigInt(VTD_INV_DESC_DEVICE_TLB) | (vtdCheckField('SID', fields.sid, 16) << 32n);
  return { lo, hi: 0x7fff_ffff_ffff_f001n };
}

// ---- register values -------------------------------------------------------------------

/** IQA: queue base, 128-bit descriptors, 2^QS pages. */
export function vtdIqaValue(base: number, qs: number): bigint {
  return vtdCheckPointer('queue base', base) | vtdCheckField('QS', qs, 3) & BigInt(VTD_IQA_QS_MASK);
}

/** IQT for the descriptor index `index`. */
export function vtdIqtValue(index: number): bigint {
  return vtdCheckField('queue index', index, 15) << 4n;
}

/** IRTA: table base, size 2^(S+1) entries, extended interrupt mode. */
export function vtdIrtaValue(base: number, s: number, eime = false): bigint {
  return vtdCheckPointer('IRT base', base) | (vtdCheckField('S', s, 4) & BigInt(VTD_IRTA_S_MASK)) | (eime ? BigInt(VTD_IRTA_EIME) : 0n);
}

/** CCMD with ICC set: a register-based context-cache invalidation. */
export function vtdCcmdValue(inv: VtdContextInvalidation): bigint {
  return VTD_CCMD_ICC | (vtdCheckField('CIRG', inv.granularity, 2) << VTD_CCMD_CIRG_SHIFT) |
    (vtdCheckField('FM', inv.fm, 2) << VTD_CCMD_FM_SHIFT) | (vtdCheckField('SID', inv.sid, 16) << VTD_CCMD_SID_SHIFT) |
    vtdCheckField('DID', inv.did, 16);
}

/** IOTLB_REG with IVT set; a page-selective one takes its address and AM from IVA (`vtdIvaValue`). */
export function vtdIotlbRegValue(granularity: number, did: number): bigint {
  return VTD_IOTLB_IVT | (vtdCheckField('IIRG', granularity, 2) << VTD_IOTLB_IIRG_SHIFT) | VTD_IOTLB_DR | VTD_IOTLB_DW |
    (vtdCheckField('DID', did, 16) << VTD_IOTLB_DID_SHIFT);
}

export function vtdIvaValue(address: number, am: number, ih = false): bigint {
  return (BigInt(address) & ~0xfffn) | (vtdCheckField('AM', am, 6) & BigInt(VTD_IVA_AM_MASK)) | (ih ? BigInt(VTD_IVA_IH) : 0n);
}

// ---- page tables -------------------------------------------------------------------------

export interface VtdMapping {
  slptptr: number;
  /** Context AW: 1 = 3 levels, 2 = 4 levels. */
  aw: number;
  iova: number;
  hpa: number;
  read: boolean;
  write: boolean;
  /** Leaf level: 1 = 4 KiB, 2 = 2 MiB, 3 = 1 GiB. */
  level?: number;
}

function vtdEntryIndex(iova: number, level: number): number {
  return Math.floor(iova / 2 ** (12 + VTD_SL_LEVEL_BITS * (level - 1))) % 512;
}

/**
 * The stores that map one page: intermediate tables are made present (R and W, so the leaf
 * alone decides the permissions) in frames from `allocateTable`, which must return zeroed,
 * 4 KiB-aligned frames. An existing large page on the way is a caller error.
 */
export function vtdMapPageWrites(memory: PhysicalMemory, mapping: VtdMapping, allocateTable: () => number): VtdWordWrite[] {
  const leafLevel = mapping.level ?? 1;
  const levels = mapping.aw + 2;
  assert(leafLevel >= 1 && leafLevel <= 3 && leafLevel < levels, () => `leaf level ${leafLevel} with AW ${mapping.aw}`);
  assert(mapping.iova >= 0 && mapping.iova < 2 ** (30 + 9 * mapping.aw), () => `iova ${mapping.iova} is beyond what AW ${mapping.aw} tables reach`);
  assert(mapping.iova % (2 ** (12 + VTD_SL_LEVEL_BITS * (leafLevel - 1))) === 0, () => `iova ${mapping.iova} is not aligned to its page`);
  const writes: VtdWordWrite[] = [];
  let table = mapping.slptptr;
  for (let level = levels; level > leafLevel; level--) {
    const slot = table + vtdEntryIndex(mapping.iova, level) * 8;
    const entry = memory.read64(slot) ?? 0n;
    if ((entry & (VTD_SL_R | VTD_SL_W)) !== 0n) {
      assert((entry & VTD_SL_PS) === 0n, () => `a large page at level ${level} is in the way of iova ${mapping.iova}`);
      table = Number(entry & VTD_ADDRESS_MASK);
      continue;
    }
    const next = allocateTable();
    writes.push({ hpa: slot, value: vtdSecondLevelEntry({ read: true, write: true, address: next }) });
    // The new table is zero: nothing below it exists yet, so the rest of the way is new too.
    table = next;
    for (level--; level > leafLevel; level--) {
      const child = allocateTable();
      writes.push({ hpa: table + vtdEntryIndex(mapping.iova, level) * 8, value: vtdSecondLevelEntry({ read: true, write: true, address: child }) });
      table = child;
    }
    break;
  }
  const leaf = vtdSecondLevelEntry({ read: mapping.read, write: mapping.write, address: mapping.hpa, largePage: leafLevel > 1 });
  writes.push({ hpa: table + vtdEntryIndex(mapping.iova, leafLevel) * 8, value: leaf });
  return writes;
}

/** The store that unmaps the page (of any size) mapping `iova`; none when nothing maps it. */
export function vtdUnmapPageWrites(memory: PhysicalMemory, fields: { slptptr: number; aw: number; iova: number }): VtdWordWrite[] {
  if (fields.iova >= 2 ** (30 + 9 * fields.aw)) return [];
  let table = fields.slptptr;
  for (let level = fields.aw + 2; level >= 1; level--) {
    const slot = table + vtdEntryIndex(fields.iova, level) * 8;
    const entry = memory.read64(slot);
    if (entry === undefined || (entry & (VTD_SL_R | VTD_SL_W)) === 0n) return [];
    if (level === 1 || (entry & VTD_SL_PS) !== 0n) return [{ hpa: slot, value: 0n }];
    table = Number(entry & VTD_ADDRESS_MASK);
  }
  return [];
}

/**
 * Host memory as a map of 64-bit words (absent words read as zero) below `sizeBytes`: the
 * reference PhysicalMemory for tests and tools. The machine implements the port over its
 * frames instead.
 */
export class VtdWordMemory implements PhysicalMemory {
  readonly words = new Map<number, bigint>();
  constructor(readonly sizeBytes: number) {}

  read64(hpa: number): bigint | undefined {
    if (!(hpa >= 0 && hpa + 8 <= this.sizeBytes)) return undefined;
    assert(hpa % 8 === 0, () => `unaligned 64-bit read at ${hpa}`);
    return this.words.get(hpa) ?? 0n;
  }

  write64(hpa: number, value: bigint): void {
    assert(hpa >= 0 && hpa + 8 <= this.sizeBytes && hpa % 8 === 0, () => `64-bit write at ${hpa} outside memory`);
    this.words.set(hpa, value & U64);
  }

  /** A little-endian 32-bit store (the wait descriptor's status write). */
  write32(hpa: number, value: number): void {
    const word = hpa - (hpa % 8);
    const shift = BigInt((hpa % 8) * 8);
    assert(hpa % 4 === 0, () => `unaligned 32-bit write at ${hpa}`);
    const old = this.read64(word);
    assert(old !== undefined, () => `32-bit write at ${hpa} outside memory`);
    this.write64(word, (old & ~(0xffff_ffffn << shift)) | (BigInt(value >>> 0) << shift));
  }

  read32(hpa: number): number | undefined {
    const word = this.read64(hpa - (hpa % 8));
    return word === undefined ? undefined : Number((word >> BigInt((hpa % 8) * 8)) & 0xffff_ffffn);
  }

  write128(hpa: number, entry: VtdEntry128): void {
    this.write64(hpa, entry.lo);
    this.write64(hpa + 8, entry.hi);
  }

  apply(writes: readonly VtdWordWrite[]): void {
    for (const w of writes) this.write64(w.hpa, w.value);
  }
}

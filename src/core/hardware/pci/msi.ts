/**
 * Message signalled interrupts as a function raises them (PCI 3.0, 6.8): MSI from the
 * capability's address/data registers, MSI-X from the table in BAR memory. A masked vector
 * sets its pending bit instead of sending; unmasking a pending vector sends it then. The
 * message is a memory write by the function, so Bus Master Enable must be set; the machine
 * hands the message to interrupt remapping with the function's routing ID as source id.
 *
 * Functions here read a PciFunction or change it copy-on-write; bus.ts wraps them in effects.
 */
import { assert } from '../../../events/errors.ts';
import { pciCapabilityFind, pciGetLe, type Bdf, type PciFunction } from './config-space.ts';
import {
  PCI_CAP_ID_MSI, PCI_CAP_ID_MSIX, PCI_COMMAND, PCI_COMMAND_INTX_DISABLE, PCI_COMMAND_MASTER, PCI_INTERRUPT_PIN,
  PCI_MSI_ADDRESS_HI, PCI_MSI_ADDRESS_LO, PCI_MSI_DATA_32, PCI_MSI_DATA_64, PCI_MSI_FLAGS, PCI_MSI_FLAGS_64BIT,
  PCI_MSI_FLAGS_ENABLE, PCI_MSI_FLAGS_MASKBIT, PCI_MSI_FLAGS_QMASK, PCI_MSI_FLAGS_QMASK_SHIFT, PCI_MSI_FLAGS_QSIZE,
  PCI_MSI_FLAGS_QSIZE_SHIFT, PCI_MSI_MASK_32, PCI_MSI_MASK_64, PCI_MSI_PENDING_32, PCI_MSI_PENDING_64, PCI_MSIX_BIR_MASK,
  PCI_MSIX_ENTRY_CTRL_MASKBIT, PCI_MSIX_ENTRY_DATA, PCI_MSIX_ENTRY_LOWER_ADDR, PCI_MSIX_ENTRY_SIZE, PCI_MSIX_ENTRY_UPPER_ADDR,
  PCI_MSIX_ENTRY_VECTOR_CTRL, PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE, PCI_MSIX_FLAGS_MASKALL, PCI_MSIX_FLAGS_QSIZE, PCI_MSIX_PBA,
  PCI_MSIX_TABLE,
} from './pci-regs.ts';

export type PciMsiMechanism = 'msi' | 'msix';

/** The memory write a function sends to signal a vector. */
export interface PciMsiMessage {
  /** Requester ID: what interrupt remapping validates (SVT/SQ/SID). */
  source: Bdf;
  mechanism: PciMsiMechanism;
  vector: number;
  addressLow: number;
  addressHigh: number;
  data: number;
}

/** What raising a vector did. */
export type PciSignal =
  | { kind: 'message'; message: PciMsiMessage }
  | { kind: 'pending'; mechanism: PciMsiMechanism; vector: number }
  | { kind: 'intx'; pin: number }
  | { kind: 'dropped'; reason: PciSignalDropReason };

export type PciSignalDropReason =
  | 'absent' /* no such function */
  | 'bus-master-disabled' /* MSI/MSI-X enabled but the function may not write memory */
  | 'vector-out-of-range' /* beyond the enabled MSI vectors or the MSI-X table */
  | 'intx-disabled' /* neither MSI nor MSI-X enabled and Interrupt Disable set */
  | 'no-interrupt'; /* neither enabled and the function has no INTx pin */

export interface PciMsiCapability {
  capOffset: number;
  enabled: boolean;
  address64: boolean;
  perVectorMask: boolean;
  vectorsCapable: number;
  /** 2^(Multiple Message Enable), at most the capable count. */
  vectorsEnabled: number;
  dataOffset: number;
  maskOffset: number;
  pendingOffset: number;
}

export interface PciMsixCapability {
  capOffset: number;
  enabled: boolean;
  functionMasked: boolean;
  vectors: number;
  tableBar: number;
  tableOffset: number;
  pbaBar: number;
  pbaOffset: number;
}

export function pciMsiCapability(fn: PciFunction): PciMsiCapability | undefined {
  const at = pciCapabilityFind(fn.config, PCI_CAP_ID_MSI);
  if (at === 0) return undefined;
  const flags = pciGetLe(fn.config, at + PCI_MSI_FLAGS, 2);
  const address64 = (flags & PCI_MSI_FLAGS_64BIT) !== 0;
  const capable = 2 ** ((flags & PCI_MSI_FLAGS_QMASK) >> PCI_MSI_FLAGS_QMASK_SHIFT);
  // Enabling more vectors than capable is undefined; the function uses what it has.
  const enabled = Math.min(capable, 2 ** ((flags & PCI_MSI_FLAGS_QSIZE) >> PCI_MSI_FLAGS_QSIZE_SHIFT));
  return {
    capOffset: at, enabled: (flags & PCI_MSI_FLAGS_ENABLE) !== 0, address64,
    perVectorMask: (flags & PCI_MSI_FLAGS_MASKBIT) !== 0, vectorsCapable: capable, vectorsEnabled: enabled,
    dataOffset: at + (address64 ? PCI_MSI_DATA_64 : PCI_MSI_DATA_32),
    maskOffset: at + (address64 ? PCI_MSI_MASK_64 : PCI_MSI_MASK_32),
    pendingOffset: at + (address64 ? PCI_MSI_PENDING_64 : PCI_MSI_PENDING_32),
  };
}

export function pciMsixCapability(fn: PciFunction): PciMsixCapability | undefined {
  const at = pciCapabilityFind(fn.config, PCI_CAP_ID_MSIX);
  if (at === 0) return undefined;
  const flags = pciGetLe(fn.config, at + PCI_MSIX_FLAGS, 2);
  const table = pciGetLe(fn.config, at + PCI_MSIX_TABLE, 4);
  const pba = pciGetLe(fn.config, at + PCI_MSIX_PBA, 4);
  return {
    capOffset: at, enabled: (flags & PCI_MSIX_FLAGS_ENABLE) !== 0,
    functionMasked: (flags & PCI_MSIX_FLAGS_MASKALL) !== 0, vectors: (flags & PCI_MSIX_FLAGS_QSIZE) + 1,
    tableBar: table & PCI_MSIX_BIR_MASK, tableOffset: (table & ~PCI_MSIX_BIR_MASK) >>> 0,
    pbaBar: pba & PCI_MSIX_BIR_MASK, pbaOffset: (pba & ~PCI_MSIX_BIR_MASK) >>> 0,
  };
}

// ---- the MSI-X table and PBA in BAR memory -------------------------------------------------

export type PciMsixRegion = 'table' | 'pba';

/** Whether `offset` in BAR `bar` falls in the MSI-X table or PBA, and where in it. */
export function pciMsixRegion(fn: PciFunction, bar: number, offset: number): { region: PciMsixRegion; offset: number } | undefined {
  const cap = pciMsixCapability(fn);
  if (cap === undefined || fn.msixTable === undefined || fn.msixPba === undefined) return undefined;
  if (bar === cap.tableBar && offset >= cap.tableOffset && offset < cap.tableOffset + fn.msixTable.length) {
    return { region: 'table', offset: offset - cap.tableOffset };
  }
  if (bar === cap.pbaBar && offset >= cap.pbaOffset && offset < cap.pbaOffset + fn.msixPba.length) {
    return { region: 'pba', offset: offset - cap.pbaOffset };
  }
  return undefined;
}

/** Bytes of the table or PBA; bytes past its end (an access straddling it) read 0. */
export function pciMsixRead(fn: PciFunction, region: PciMsixRegion, offset: number, size: number): number {
  const bytes = region === 'table' ? fn.msixTable : fn.msixPba;
  assert(bytes !== undefined, 'MSI-X read of a function without MSI-X');
  let value = 0;
  for (let i = size - 1; i >= 0; i--) value = value * 256 + (offset + i < bytes.length ? bytes[offset + i] : 0);
  return value;
}

/** Writable bits of each dword of a table entry: address bits 1:0 and control bits 31:1 are reserved. */
const MSIX_ENTRY_MASKS = [0xfffffffc, 0xffffffff, 0xffffffff, PCI_MSIX_ENTRY_CTRL_MASKBIT];

/** A table write (the PBA is read-only to software). Copy-on-write. */
export function pciMsixWrite(fn: PciFunction, offset: number, size: number, value: number): void {
  const old = fn.msixTable;
  assert(old !== undefined, 'MSI-X write of a function without MSI-X');
  const next = old.slice();
  for (let i = 0; i < size && offset + i < old.length; i++) {
    const at = offset + i;
    const mask = Math.floor(MSIX_ENTRY_MASKS[(at % PCI_MSIX_ENTRY_SIZE) >> 2] / 256 ** (at % 4)) & 0xff;
    const byte = Math.floor(value / 256 ** i) & 0xff;
    next[at] = (old[at] & ~mask) | (byte & mask);
  }
  fn.msixTable = next;
}

// ---- pending bits --------------------------------------------------------------------------

export function pciMsiPending(fn: PciFunction, mechanism: PciMsiMechanism, vector: number): boolean {
  if (mechanism === 'msix') {
    const pba = fn.msixPba;
    return pba !== undefined && vector >> 3 < pba.length && (pba[vector >> 3] & (1 << (vector & 7))) !== 0;
  }
  const cap = pciMsiCapability(fn);
  if (cap === undefined || !cap.perVectorMask) return false;
  return (fn.config[cap.pendingOffset + (vector >> 3)] & (1 << (vector & 7))) !== 0;
}

/** Sets or clears a pending bit (the function's doing, so past the read-only mask). */
export function pciMsiSetPending(fn: PciFunction, mechanism: PciMsiMechanism, vector: number, pending: boolean): void {
  const bit = 1 << (vector & 7);
  if (mechanism === 'msix') {
    assert(fn.msixPba !== undefined && vector >> 3 < fn.msixPba.length, () => `MSI-X vector ${vector} has no pending bit`);
    const next = fn.msixPba.slice();
    next[vector >> 3] = pending ? next[vector >> 3] | bit : next[vector >> 3] & ~bit;
    fn.msixPba = next;
    return;
  }
  const cap = pciMsiCapability(fn);
  assert(cap !== undefined && cap.perVectorMask && vector < cap.vectorsCapable, () => `MSI vector ${vector} has no pending bit`);
  const next = fn.config.slice();
  const at = cap.pendingOffset + (vector >> 3);
  next[at] = pending ? next[at] | bit : next[at] & ~bit;
  fn.config = next;
}

// ---- raising a vector ----------------------------------------------------------------------

function busMaster(fn: PciFunction): boolean {
  return (pciGetLe(fn.config, PCI_COMMAND, 2) & PCI_COMMAND_MASTER) !== 0;
}

function msixMessage(fn: PciFunction, vector: number): PciMsiMessage {
  const table = fn.msixTable!;
  const entry = vector * PCI_MSIX_ENTRY_SIZE;
  return {
    source: fn.bdf, mechanism: 'msix', vector,
    addressLow: pciGetLe(table, entry + PCI_MSIX_ENTRY_LOWER_ADDR, 4),
    addressHigh: pciGetLe(table, entry + PCI_MSIX_ENTRY_UPPER_ADDR, 4),
    data: pciGetLe(table, entry + PCI_MSIX_ENTRY_DATA, 4),
  };
}

function msixMasked(fn: PciFunction, cap: PciMsixCapability, vector: number): boolean {
  const control = fn.msixTable![vector * PCI_MSIX_ENTRY_SIZE + PCI_MSIX_ENTRY_VECTOR_CTRL];
  return cap.functionMasked || (control & PCI_MSIX_ENTRY_CTRL_MASKBIT) !== 0;
}

/** With several vectors enabled, the function puts the vector number in the data's low bits. */
function msiMessage(fn: PciFunction, cap: PciMsiCapability, vector: number): PciMsiMessage {
  const data = pciGetLe(fn.config, cap.dataOffset, 2);
  return {
    source: fn.bdf, mechanism: 'msi', vector,
    addressLow: pciGetLe(fn.config, cap.capOffset + PCI_MSI_ADDRESS_LO, 4),
    addressHigh: cap.address64 ? pciGetLe(fn.config, cap.capOffset + PCI_MSI_ADDRESS_HI, 4) : 0,
    data: ((data & ~(cap.vectorsEnabled - 1)) | vector) >>> 0,
  };
}

function msiMasked(fn: PciFunction, cap: PciMsiCapability, vector: number): boolean {
  return cap.perVectorMask && (fn.config[cap.maskOffset + (vector >> 3)] & (1 << (vector & 7))) !== 0;
}

/**
 * What the function does when its device logic raises `vector`: MSI-X if enabled, else MSI,
 * else INTx (enabling both MSI and MSI-X is undefined; MSI-X wins here). Pure.
 */
export function pciSignalDecide(fn: PciFunction, vector: number): PciSignal {
  assert(Number.isInteger(vector) && vector >= 0, () => `vector ${vector}`);
  const msix = pciMsixCapability(fn);
  if (msix !== undefined && msix.enabled) {
    if (!busMaster(fn)) return { kind: 'dropped', reason: 'bus-master-disabled' };
    if (vector >= msix.vectors) return { kind: 'dropped', reason: 'vector-out-of-range' };
    if (msixMasked(fn, msix, vector)) return { kind: 'pending', mechanism: 'msix', vector };
    return { kind: 'message', message: msixMessage(fn, vector) };
  }
  const msi = pciMsiCapability(fn);
  if (msi !== undefined && msi.enabled) {
    if (!busMaster(fn)) return { kind: 'dropped', reason: 'bus-master-disabled' };
    if (vector >= msi.vectorsEnabled) return { kind: 'dropped', reason: 'vector-out-of-range' };
    if (msiMasked(fn, msi, vector)) return { kind: 'pending', mechanism: 'msi', vector };
    return { kind: 'message', message: msiMessage(fn, msi, vector) };
  }
  const pin = fn.config[PCI_INTERRUPT_PIN];
  if (pin === 0) return { kind: 'dropped', reason: 'no-interrupt' };
  if ((pciGetLe(fn.config, PCI_COMMAND, 2) & PCI_COMMAND_INTX_DISABLE) !== 0) return { kind: 'dropped', reason: 'intx-disabled' };
  return { kind: 'intx', pin };
}

/** Whether any pending bit is set (cheap test before looking for releasable vectors). */
export function pciMsiAnyPending(fn: PciFunction): boolean {
  if (fn.msixPba !== undefined && fn.msixPba.some((b) => b !== 0)) return true;
  const msi = pciMsiCapability(fn);
  return msi !== undefined && msi.perVectorMask && pciGetLe(fn.config, msi.pendingOffset, 4) !== 0;
}

/** Pending vectors the function may send now (enabled, unmasked, bus master), in order. */
export function pciMsiReleasable(fn: PciFunction): PciMsiMessage[] {
  if (!busMaster(fn)) return [];
  const messages: PciMsiMessage[] = [];
  const msix = pciMsixCapability(fn);
  if (msix !== undefined && msix.enabled) {
    for (let v = 0; v < msix.vectors; v++) {
      if (pciMsiPending(fn, 'msix', v) && !msixMasked(fn, msix, v)) messages.push(msixMessage(fn, v));
    }
    return messages;
  }
  const msi = pciMsiCapability(fn);
  if (msi !== undefined && msi.enabled) {
    for (let v = 0; v < msi.vectorsEnabled; v++) {
      if (pciMsiPending(fn, 'msi', v) && !msiMasked(fn, msi, v)) messages.push(msiMessage(fn, msi, v));
    }
  }
  return messages;
}

/**
 * One PCI function's configuration space as plain data: 4 KiB of bytes plus two masks that
 * say, bit by bit, what software may change (the write mask) and what it clears by writing
 * ones (the W1C mask). Everything else is read-only: identity, class, BAR type bits and size,
 * the capability list. Reading and writing through the masks is all the "hardware" a config
 * access needs, as in real devices (and QEMU's wmask/w1cmask), with a few rules on top that
 * the SR-IOV and PCIe specs attach to particular registers (see `pciFunctionWrite`).
 *
 * The arrays of a function are never changed in place: a write replaces `config` with a new
 * array (copy-on-write, like memory pages), so a frozen snapshot can share them. The masks
 * and the reset image are built once and shared by every function made from one spec (all
 * the VFs of a PF share one template).
 */
import { assert } from '../../../events/errors.ts';
import {
  PCI_BASE_ADDRESS_0, PCI_BASE_ADDRESS_IO_FLAGS, PCI_BASE_ADDRESS_MEM_FLAGS, PCI_BASE_ADDRESS_MEM_PREFETCH,
  PCI_BASE_ADDRESS_MEM_TYPE_64, PCI_BASE_ADDRESS_MEM_TYPE_MASK, PCI_BASE_ADDRESS_SPACE_IO, PCI_CAP_ID_MSIX, PCI_CAP_LIST_NEXT,
  PCI_CAPABILITY_LIST, PCI_CFG_SPACE_EXT_START, PCI_EXT_CAP_ID_MASK, PCI_EXT_CAP_NEXT_SHIFT, PCI_EXT_CAP_VER_SHIFT,
  PCI_FIND_CAP_TTL, PCI_FIND_EXT_CAP_TTL, PCI_MSIX_ENTRY_CTRL_MASKBIT, PCI_MSIX_ENTRY_SIZE, PCI_MSIX_ENTRY_VECTOR_CTRL,
  PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_QSIZE, PCI_NUM_BARS, PCI_SRIOV_BAR, PCI_SRIOV_CTRL, PCI_SRIOV_CTRL_MSE, PCI_SRIOV_CTRL_VFE,
  PCI_SRIOV_NUM_BARS, PCI_SRIOV_PAGE_SHIFT, PCI_SRIOV_SYS_PGSIZE, PCI_STATUS, PCI_STATUS_CAP_LIST, PCI_STD_HEADER_SIZEOF,
} from './pci-regs.ts';

// ---- routing IDs ---------------------------------------------------------------------------

/** A routing ID (requester / source ID): bus << 8 | device << 3 | function, 16 bits. */
export type Bdf = number;
/** Used where an access reached no function at all (no configuration cycle happened). */
export const PCI_NO_BDF: Bdf = -1;
export const PCI_BDF_MAX = 0xffff;

export function pciBdf(bus: number, device: number, fn: number): Bdf {
  assert(bus >= 0 && bus <= 0xff, () => `PCI bus number ${bus} outside 0..255`);
  assert(device >= 0 && device <= 0x1f, () => `PCI device number ${device} outside 0..31`);
  assert(fn >= 0 && fn <= 7, () => `PCI function number ${fn} outside 0..7`);
  return (bus << 8) | (device << 3) | fn;
}

export function pciBdfBus(bdf: Bdf): number { return (bdf >> 8) & 0xff; }
export function pciBdfDevice(bdf: Bdf): number { return (bdf >> 3) & 0x1f; }
export function pciBdfFunction(bdf: Bdf): number { return bdf & 7; }

/** As lspci prints it: "02:10.1". */
export function pciBdfFormat(bdf: Bdf): string {
  if (bdf === PCI_NO_BDF) return '--:--.-';
  const hex = (n: number): string => n.toString(16).padStart(2, '0');
  return `${hex(pciBdfBus(bdf))}:${hex(pciBdfDevice(bdf))}.${pciBdfFunction(bdf)}`;
}

// ---- little-endian fields ------------------------------------------------------------------

/** An unsigned little-endian field of 1 to 4 bytes. */
export function pciGetLe(bytes: Uint8Array, offset: number, size: number): number {
  assert(size >= 1 && size <= 4 && offset >= 0 && offset + size <= bytes.length,
    () => `field of ${size} bytes at ${offset} outside ${bytes.length} bytes`);
  let value = 0;
  for (let i = size - 1; i >= 0; i--) value = value * 256 + bytes[offset + i];
  return value;
}

/** Only for arrays nobody else holds yet (builders and copy-on-write copies). */
export function setLe(bytes: Uint8Array, offset: number, size: number, value: number): void {
  for (let i = 0; i < size; i++) bytes[offset + i] = Math.floor(value / 256 ** i) & 0xff;
}

// ---- what a function is made of ------------------------------------------------------------

/** A BAR as the device implements it; sizes are powers of two (PCI 3.0, 6.2.5.1). */
export type PciBarSpec =
  | { kind: 'mem32'; sizeBytes: number; prefetchable?: boolean }
  | { kind: 'mem64'; sizeBytes: number; prefetchable?: boolean }
  | { kind: 'io'; sizeBytes: number };

export type PciCapabilitySpec =
  | { kind: 'msi'; offset?: number; vectors: number; address64: boolean; perVectorMask: boolean }
  | {
    kind: 'msix'; offset?: number; tableSize: number;
    tableBar: number; tableOffset: number; pbaBar: number; pbaOffset: number;
  }
  | { kind: 'pcie'; offset?: number; flr: boolean; linkWidth?: number };

export interface PciIdentity {
  vendorId: number;
  deviceId: number;
  revisionId: number;
  /** 24 bits: base class, sub-class, programming interface. */
  classCode: number;
  subsystemVendorId: number;
  subsystemId: number;
}

export interface PciSriovSpec {
  /** Where the extended capability sits; 0x100 when not given. */
  offset?: number;
  initialVfs?: number;
  totalVfs: number;
  firstVfOffset: number;
  vfStride: number;
  vfDeviceId: number;
  /** VF BAR0..5 (memory only): each VF gets one such BAR, VF n at base + (n-1) * size. */
  vfBars: (PciBarSpec | undefined)[];
  /** What differs in a VF's own configuration space. */
  vf: { revisionId?: number; subsystemId?: number; capabilities: PciCapabilitySpec[] };
}

export interface PciFunctionSpec {
  identity: PciIdentity;
  multiFunction?: boolean;
  /** 0 none, 1..4 INTA#..INTD#. */
  interruptPin: number;
  /** Up to six slots; a 64-bit BAR takes its slot and the next one, which stays undefined. */
  bars: (PciBarSpec | undefined)[];
  capabilities: PciCapabilitySpec[];
  sriov?: PciSriovSpec;
}

/** A configuration space at reset with its masks. */
export interface PciConfigImage {
  config: Uint8Array;
  writeMask: Uint8Array;
  w1cMask: Uint8Array;
}

/** A function on the bus: plain data, so the machine can keep it in its state. */
export interface PciFunction {
  bdf: Bdf;
  /** Current contents; replaced (never changed in place) on every write. */
  config: Uint8Array;
  /** Bits software may write; built once, shared, never changed. */
  writeMask: Uint8Array;
  /** Bits software clears by writing 1; built once, shared, never changed. */
  w1cMask: Uint8Array;
  /** The contents after reset (a function level reset returns here). */
  resetConfig: Uint8Array;
  /** MSI-X table (16 bytes a vector) and pending bit array, which live in BAR memory. */
  msixTable?: Uint8Array;
  msixPba?: Uint8Array;
  /** On a PF with the SR-IOV capability. */
  sriov?: PciSriov;
  /** On a VF: its PF and its VF number (1-based, as the spec counts). */
  vf?: { pf: Bdf; number: number };
}

export interface PciSriov {
  capOffset: number;
  /** A VF's configuration space at reset, shared by every VF of this PF. */
  vfTemplate: PciConfigImage;
  /** The VFs that exist, VF n at index n - 1; empty while VF Enable is clear. */
  vfs: PciFunction[];
}

// ---- building an image ---------------------------------------------------------------------

// ---- functions -----------------------------------------------------------------------------

// ---- MSI-X storage -------------------------------------------------------------------------

// ---- walking the capability lists ----------------------------------------------------------

export interface PciCapabilityEntry { id: number; offset: number }
export interface PciExtCapabilityEntry { id: number; version: number; offset: number }

/** The standard capability list, in list order, as software walks it (bounded against loops). */
export function pciCapabilityList(config: Uint8Array): PciCapabilityEntry[] {
  const list: PciCapabilityEntry[] = [];
  if ((pciGetLe(config, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST) === 0) return list;
  let at = config[PCI_CAPABILITY_LIST] & ~3;
  for (let ttl = PCI_FIND_CAP_TTL; at >= PCI_STD_HEADER_SIZEOF && ttl > 0; ttl--) {
    list.push({ id: config[at], offset: at });
    at = config[at + PCI_CAP_LIST_NEXT] & ~3;
  }
  return list;
}

/** Offset of the first capability with this id, or 0. */
export function pciCapabilityFind(config: Uint8Array, id: number): number {
  return pciCapabilityList(config).find((c) => c.id === id)?.offset ?? 0;
}

/** The extended capability list from 0x100 (PCIe Base 7.6.1); empty when its header is 0. */
export function pciExtCapabilityList(config: Uint8Array): PciExtCapabilityEntry[] {
  const list: PciExtCapabilityEntry[] = [];
  let at = PCI_CFG_SPACE_EXT_START;
  for (let ttl = PCI_FIND_EXT_CAP_TTL; at >= PCI_CFG_SPACE_EXT_START && ttl > 0; ttl--) {
    const header = pciGetLe(config, at, 4);
    if (header === 0 || header === 0xffffffff) break;
    list.push({ id: header & PCI_EXT_CAP_ID_MASK, version: (header >>> PCI_EXT_CAP_VER_SHIFT) & 0xf, offset: at });
    at = (header >>> PCI_EXT_CAP_NEXT_SHIFT) & ~3;
  }
  return list;
}

// ---- decoding BARs -------------------------------------------------------------------------

export interface PciBarInfo {
  space: 'mem' | 'io';
  is64: boolean;
  prefetchable: boolean;
  /** The programmed base address (exact below 2^53). */
  base: number;
  sizeBytes: number;
}

function lowestSetBit(mask: number): number {
  return (mask & -mask) >>> 0;
}

/**
 * The BAR whose low dword is at `offset`, as its type bits, programmed value and write mask
 * say (the size is what sizing would find). Undefined for an unimplemented BAR.
 */
export function pciBarDecode(config: Uint8Array, writeMask: Uint8Array, offset: number): PciBarInfo | undefined {
  const value = pciGetLe(config, offset, 4);
  const mask = pciGetLe(writeMask, offset, 4);
  if ((value & PCI_BASE_ADDRESS_SPACE_IO) !== 0) {
    if (mask === 0) return undefined;
    const base = (value & ~PCI_BASE_ADDRESS_IO_FLAGS) >>> 0;
    return { space: 'io', is64: false, prefetchable: false, base, sizeBytes: lowestSetBit(mask & ~PCI_BASE_ADDRESS_IO_FLAGS) };
  }
  const is64 = (value & PCI_BASE_ADDRESS_MEM_TYPE_MASK) === PCI_BASE_ADDRESS_MEM_TYPE_64;
  const highMask = is64 ? pciGetLe(writeMask, offset + 4, 4) : 0;
  if (mask === 0 && highMask === 0) return undefined;
  const low = (value & ~PCI_BASE_ADDRESS_MEM_FLAGS) >>> 0;
  const high = is64 ? pciGetLe(config, offset + 4, 4) : 0;
  const lowMask = (mask & ~PCI_BASE_ADDRESS_MEM_FLAGS) >>> 0;
  const sizeBytes = lowMask !== 0 ? lowestSetBit(lowMask) : lowestSetBit(highMask) * 2 ** 32;
  return {
    space: 'mem', is64, prefetchable: (value & PCI_BASE_ADDRESS_MEM_PREFETCH) !== 0,
    base: high * 2 ** 32 + low, sizeBytes,
  };
}

/** The function's own BARs, by index (the upper half of a 64-bit BAR has no entry). */
export function pciFunctionBars(fn: PciFunction): { index: number; info: PciBarInfo }[] {
  const bars: { index: number; info: PciBarInfo }[] = [];
  for (let i = 0; i < PCI_NUM_BARS; i++) {
    const info = pciBarDecode(fn.config, fn.writeMask, PCI_BASE_ADDRESS_0 + 4 * i);
    if (info === undefined) continue;
    bars.push({ index: i, info });
    if (info.is64) i++;
  }
  return bars;
}

/** The PF's VF BARs, by index, with the size each VF gets (at least the System Page Size). */
export function pciSriovVfBars(pf: PciFunction): { index: number; info: PciBarInfo }[] {
  const s = pf.sriov;
  assert(s !== undefined, () => `${pciBdfFormat(pf.bdf)} has no SR-IOV capability`);
  const page = pciSriovPageBytes(pf);
  const bars: { index: number; info: PciBarInfo }[] = [];
  for (const low of sriovVfBarLows(pf)) {
    const info = pciBarDecode(pf.config, pf.writeMask, low);
    if (info === undefined) continue;
    const sizeBytes = Math.max(info.sizeBytes, page);
    const base = info.base - (info.base % sizeBytes);
    bars.push({ index: (low - s.capOffset - PCI_SRIOV_BAR) / 4, info: { ...info, sizeBytes, base } });
  }
  return bars;
}

/** Whether the SR-IOV control register has VF MSE set (VF memory decodes only then). */
export function pciSriovMemoryEnabled(pf: PciFunction): boolean {
  const s = pf.sriov;
  if (s === undefined) return false;
  const ctrl = pf.config[s.capOffset + PCI_SRIOV_CTRL];
  return (ctrl & PCI_SRIOV_CTRL_VFE) !== 0 && (ctrl & PCI_SRIOV_CTRL_MSE) !== 0;
}

/** Whether a function has a register block that needs more than masks (the SR-IOV rules). */
export function sriovField(fn: PciFunction, offset: number, field: number, size: number): boolean {
  const s = fn.sriov;
  if (s === undefined) return false;
  const rel = offset - s.capOffset;
  return rel >= field && rel < field + size;
}

/** The page size VFs are mapped with: the one System Page Size bit set, else 4 KiB. */
export function pciSriovPageBytes(pf: PciFunction): number {
  const s = pf.sriov;
  assert(s !== undefined, () => `${pciBdfFormat(pf.bdf)} has no SR-IOV capability`);
  const page = pciGetLe(pf.config, s.capOffset + PCI_SRIOV_SYS_PGSIZE, 4);
  // Exactly one supported bit is what the spec allows; anything else is undefined: 4 KiB here.
  if (page === 0 || (page & (page - 1)) !== 0) return 2 ** PCI_SRIOV_PAGE_SHIFT;
  return 2 ** (Math.log2(page) + PCI_SRIOV_PAGE_SHIFT);
}

/** Offsets of the low dwords of the PF's implemented VF BARs. */
export function sriovVfBarLows(pf: PciFunction): number[] {
  const s = pf.sriov!;
  const lows: number[] = [];
  for (let i = 0; i < PCI_SRIOV_NUM_BARS; i++) {
    const at = s.capOffset + PCI_SRIOV_BAR + 4 * i;
    const info = pciBarDecode(pf.config, pf.writeMask, at);
    if (info === undefined) continue;
    lows.push(at);
    if (info.is64) i++;
  }
  return lows;
}

/** Entries come out of reset masked, the PBA clear (PCI 3.0, 6.8.2.9). */
export function msixReset(fn: PciFunction): void {
  const at = pciCapabilityFind(fn.config, PCI_CAP_ID_MSIX);
  if (at === 0) return;
  const vectors = (pciGetLe(fn.config, at + PCI_MSIX_FLAGS, 2) & PCI_MSIX_FLAGS_QSIZE) + 1;
  const table = new Uint8Array(vectors * PCI_MSIX_ENTRY_SIZE);
  for (let v = 0; v < vectors; v++) table[v * PCI_MSIX_ENTRY_SIZE + PCI_MSIX_ENTRY_VECTOR_CTRL] = PCI_MSIX_ENTRY_CTRL_MASKBIT;
  fn.msixTable = table;
  fn.msixPba = new Uint8Array(Math.ceil(vectors / 64) * 8);
}


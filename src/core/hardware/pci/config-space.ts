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
  PCI_BASE_ADDRESS_MEM_TYPE_64, PCI_BASE_ADDRESS_MEM_TYPE_MASK, PCI_BASE_ADDRESS_SPACE_IO, PCI_CACHE_LINE_SIZE,
  PCI_CAP_EXP_ENDPOINT_SIZEOF_V2, PCI_CAP_ID_EXP, PCI_CAP_ID_MSI, PCI_CAP_ID_MSIX, PCI_CAP_LIST_NEXT,
  PCI_CAP_MSIX_SIZEOF, PCI_CAPABILITY_LIST, PCI_CFG_SPACE_EXP_SIZE, PCI_CFG_SPACE_EXT_START, PCI_CLASS_PROG,
  PCI_COMMAND, PCI_COMMAND_INTX_DISABLE, PCI_COMMAND_IO, PCI_COMMAND_MASTER, PCI_COMMAND_MEMORY,
  PCI_COMMAND_PARITY, PCI_COMMAND_SERR, PCI_CONFIG_SPACE_SIZE, PCI_DEVICE_ID, PCI_EXP_DEVCAP,
  PCI_EXP_DEVCAP_FLR, PCI_EXP_DEVCTL, PCI_EXP_DEVCTL_BCR_FLR, PCI_EXP_DEVCTL2, PCI_EXP_DEVCTL2_COMP_TIMEOUT,
  PCI_EXP_DEVCTL2_COMP_TMOUT_DIS, PCI_EXP_DEVSTA, PCI_EXP_DEVSTA_CED, PCI_EXP_DEVSTA_FED, PCI_EXP_DEVSTA_NFED,
  PCI_EXP_DEVSTA_URD, PCI_EXP_FLAGS, PCI_EXP_FLAGS_TYPE_SHIFT, PCI_EXP_LINK_SPEED_5_0GT, PCI_EXP_LNKCAP,
  PCI_EXP_LNKCTL, PCI_EXP_LNKCTL_ASPMC, PCI_EXP_LNKCTL_CCC, PCI_EXP_LNKCTL_ES, PCI_EXP_LNKCTL_RCB,
  PCI_EXP_LNKSTA, PCI_EXP_TYPE_ENDPOINT, PCI_EXT_CAP_ID_MASK, PCI_EXT_CAP_ID_SRIOV, PCI_EXT_CAP_NEXT_SHIFT,
  PCI_EXT_CAP_SRIOV_SIZEOF, PCI_EXT_CAP_VER_SHIFT, PCI_FIND_CAP_TTL, PCI_FIND_EXT_CAP_TTL, PCI_HEADER_TYPE,
  PCI_HEADER_TYPE_MFD, PCI_INTERRUPT_LINE, PCI_INTERRUPT_PIN, PCI_MSI_ADDRESS_HI, PCI_MSI_ADDRESS_LO,
  PCI_MSI_DATA_32, PCI_MSI_DATA_64, PCI_MSI_FLAGS, PCI_MSI_FLAGS_64BIT, PCI_MSI_FLAGS_ENABLE,
  PCI_MSI_FLAGS_MASKBIT, PCI_MSI_FLAGS_QMASK_SHIFT, PCI_MSI_FLAGS_QSIZE, PCI_MSI_MASK_32, PCI_MSI_MASK_64,
  PCI_MSI_VECTORS_MAX, PCI_MSIX_ENTRY_CTRL_MASKBIT, PCI_MSIX_ENTRY_SIZE,
  PCI_MSIX_ENTRY_VECTOR_CTRL, PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE, PCI_MSIX_FLAGS_MASKALL,
  PCI_MSIX_FLAGS_QSIZE, PCI_MSIX_PBA, PCI_MSIX_TABLE, PCI_MSIX_VECTORS_MAX, PCI_NUM_BARS, PCI_REVISION_ID,
  PCI_SRIOV_BAR, PCI_SRIOV_CTRL, PCI_SRIOV_CTRL_ARI, PCI_SRIOV_CTRL_MSE, PCI_SRIOV_CTRL_VFE,
  PCI_SRIOV_FUNC_LINK, PCI_SRIOV_INITIAL_VF, PCI_SRIOV_NUM_BARS, PCI_SRIOV_NUM_VF, PCI_SRIOV_PAGE_SHIFT,
  PCI_SRIOV_SUP_PGSIZE, PCI_SRIOV_SUP_PGSIZE_MINREQ, PCI_SRIOV_SYS_PGSIZE, PCI_SRIOV_TOTAL_VF,
  PCI_SRIOV_VF_DID, PCI_SRIOV_VF_OFFSET, PCI_SRIOV_VF_STRIDE, PCI_STATUS, PCI_STATUS_CAP_LIST,
  PCI_STATUS_W1C_MASK, PCI_STD_HEADER_SIZEOF, PCI_SUBSYSTEM_ID, PCI_SUBSYSTEM_VENDOR_ID, PCI_VENDOR_ID,
  PCI_VENDOR_ID_NONE,
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
function setLe(bytes: Uint8Array, offset: number, size: number, value: number): void {
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

interface Builder {
  image: PciConfigImage;
  /** Byte ranges [start, end) already claimed by a register block. */
  claimed: [number, number][];
}

function builderCreate(): Builder {
  return {
    image: {
      config: new Uint8Array(PCI_CFG_SPACE_EXP_SIZE),
      writeMask: new Uint8Array(PCI_CFG_SPACE_EXP_SIZE),
      w1cMask: new Uint8Array(PCI_CFG_SPACE_EXP_SIZE),
    },
    claimed: [[0, PCI_STD_HEADER_SIZEOF]],
  };
}

function claim(b: Builder, start: number, sizeBytes: number, what: string): void {
  const end = start + sizeBytes;
  for (const [s, e] of b.claimed) {
    assert(end <= s || start >= e, () => `${what} at 0x${start.toString(16)} overlaps 0x${s.toString(16)}..0x${e.toString(16)}`);
  }
  b.claimed.push([start, end]);
}

/** A read-only field. */
function ro(b: Builder, offset: number, size: number, value: number): void {
  setLe(b.image.config, offset, size, value);
}

/** A field with a reset value and the bits software may write. */
function rw(b: Builder, offset: number, size: number, value: number, mask: number): void {
  setLe(b.image.config, offset, size, value);
  setLe(b.image.writeMask, offset, size, mask);
}

function w1c(b: Builder, offset: number, size: number, mask: number): void {
  setLe(b.image.w1cMask, offset, size, mask);
}

function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && 2 ** Math.round(Math.log2(n)) === n;
}

/** Places the BAR's type bits and the write masks that make sizing work (PCI 3.0, 6.2.5.1). */
function barProgram(b: Builder, offset: number, bar: PciBarSpec, what: string): number {
  assert(isPowerOfTwo(bar.sizeBytes), () => `${what}: size ${bar.sizeBytes} is not a power of two`);
  if (bar.kind === 'io') {
    assert(bar.sizeBytes >= 4 && bar.sizeBytes <= 256, () => `${what}: I/O BAR size ${bar.sizeBytes} outside 4..256`);
    // A 16-bit I/O decoder hardwires bits 31:16 to 0, which is all an x86 port space needs.
    rw(b, offset, 4, PCI_BASE_ADDRESS_SPACE_IO, (0x10000 - bar.sizeBytes) & 0xfffc);
    return 1;
  }
  const flags = (bar.kind === 'mem64' ? PCI_BASE_ADDRESS_MEM_TYPE_64 : 0) |
    (bar.prefetchable === true ? PCI_BASE_ADDRESS_MEM_PREFETCH : 0);
  const limit = bar.kind === 'mem64' ? 2 ** 48 : 2 ** 31;
  assert(bar.sizeBytes >= 16 && bar.sizeBytes <= limit, () => `${what}: memory BAR size ${bar.sizeBytes} outside 16..${limit}`);
  const low = bar.sizeBytes >= 2 ** 32 ? 0 : ((2 ** 32 - bar.sizeBytes) & ~PCI_BASE_ADDRESS_MEM_FLAGS) >>> 0;
  rw(b, offset, 4, flags, low);
  if (bar.kind === 'mem32') return 1;
  const high = bar.sizeBytes <= 2 ** 32 ? 0xffffffff : (2 ** 32 - bar.sizeBytes / 2 ** 32) >>> 0;
  rw(b, offset + 4, 4, 0, high);
  return 2;
}

function barsProgram(b: Builder, base: number, bars: (PciBarSpec | undefined)[], what: string, memoryOnly: boolean): void {
  assert(bars.length <= PCI_NUM_BARS, () => `${what}: ${bars.length} BARs, at most ${PCI_NUM_BARS}`);
  for (let i = 0; i < bars.length; i++) {
    const bar = bars[i];
    if (bar === undefined) continue;
    assert(!memoryOnly || bar.kind !== 'io', () => `${what} BAR${i}: VF BARs are memory BARs only`);
    assert(bar.kind !== 'mem64' || (i + 1 < PCI_NUM_BARS && bars[i + 1] === undefined),
      () => `${what} BAR${i}: a 64-bit BAR needs the next slot free`);
    const slots = barProgram(b, base + 4 * i, bar, `${what} BAR${i}`);
    i += slots - 1;
  }
}

function capabilitySize(cap: PciCapabilitySpec): number {
  switch (cap.kind) {
    case 'msi': return (cap.address64 ? 0x0e : 0x0a) + (cap.perVectorMask ? 0x0a : 0);
    case 'msix': return PCI_CAP_MSIX_SIZEOF;
    case 'pcie': return PCI_CAP_EXP_ENDPOINT_SIZEOF_V2;
  }
}

function capabilityProgram(b: Builder, at: number, cap: PciCapabilitySpec, bars: (PciBarSpec | undefined)[]): void {
  switch (cap.kind) {
    case 'msi': return msiProgram(b, at, cap);
    case 'msix': return msixProgram(b, at, cap, bars);
    case 'pcie': return pcieProgram(b, at, cap);
  }
}

/** MSI (PCI 3.0, 6.8.1): enable and Multiple Message Enable writable, the rest as capable. */
function msiProgram(b: Builder, at: number, cap: Extract<PciCapabilitySpec, { kind: 'msi' }>): void {
  assert(isPowerOfTwo(cap.vectors) && cap.vectors <= PCI_MSI_VECTORS_MAX, () => `MSI: ${cap.vectors} vectors`);
  ro(b, at, 1, PCI_CAP_ID_MSI);
  const flags = (Math.log2(cap.vectors) << PCI_MSI_FLAGS_QMASK_SHIFT) |
    (cap.address64 ? PCI_MSI_FLAGS_64BIT : 0) | (cap.perVectorMask ? PCI_MSI_FLAGS_MASKBIT : 0);
  rw(b, at + PCI_MSI_FLAGS, 2, flags, PCI_MSI_FLAGS_ENABLE | PCI_MSI_FLAGS_QSIZE);
  rw(b, at + PCI_MSI_ADDRESS_LO, 4, 0, 0xfffffffc);
  if (cap.address64) rw(b, at + PCI_MSI_ADDRESS_HI, 4, 0, 0xffffffff);
  // Message Data is 16 bits; the Extended Message Data word after it reads 0 (not capable).
  rw(b, at + (cap.address64 ? PCI_MSI_DATA_64 : PCI_MSI_DATA_32), 2, 0, 0xffff);
  if (cap.perVectorMask) {
    const mask = cap.vectors === 32 ? 0xffffffff : 2 ** cap.vectors - 1;
    rw(b, at + (cap.address64 ? PCI_MSI_MASK_64 : PCI_MSI_MASK_32), 4, 0, mask);
    // Pending bits are read-only: only the function sets them (pciMsiSetPending).
  }
}

/** MSI-X (PCI 3.0, 6.8.2): enable and function mask writable; the table lives in a BAR. */
function msixProgram(b: Builder, at: number, cap: Extract<PciCapabilitySpec, { kind: 'msix' }>, bars: (PciBarSpec | undefined)[]): void {
  assert(cap.tableSize >= 1 && cap.tableSize <= PCI_MSIX_VECTORS_MAX, () => `MSI-X: table size ${cap.tableSize}`);
  const tableBytes = cap.tableSize * PCI_MSIX_ENTRY_SIZE;
  const pbaBytes = Math.ceil(cap.tableSize / 64) * 8;
  for (const [bir, offset, bytes, what] of [
    [cap.tableBar, cap.tableOffset, tableBytes, 'table'], [cap.pbaBar, cap.pbaOffset, pbaBytes, 'PBA'],
  ] as const) {
    const bar = bars[bir];
    assert(bar !== undefined && bar.kind !== 'io', () => `MSI-X ${what}: BAR${bir} is not a memory BAR`);
    assert(offset % 8 === 0 && offset + bytes <= bar.sizeBytes, () => `MSI-X ${what}: offset 0x${offset.toString(16)} does not fit BAR${bir}`);
  }
  if (cap.tableBar === cap.pbaBar) {
    const apart = cap.tableOffset + tableBytes <= cap.pbaOffset || cap.pbaOffset + pbaBytes <= cap.tableOffset;
    assert(apart, 'MSI-X: table and PBA overlap');
  }
  ro(b, at, 1, PCI_CAP_ID_MSIX);
  rw(b, at + PCI_MSIX_FLAGS, 2, cap.tableSize - 1, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
  ro(b, at + PCI_MSIX_TABLE, 4, cap.tableOffset + cap.tableBar);
  ro(b, at + PCI_MSIX_PBA, 4, cap.pbaOffset + cap.pbaBar);
}

/** The PCI Express capability of an endpoint (PCIe Base 7.5.3), version 2. */
function pcieProgram(b: Builder, at: number, cap: Extract<PciCapabilitySpec, { kind: 'pcie' }>): void {
  const width = cap.linkWidth ?? 8;
  ro(b, at, 1, PCI_CAP_ID_EXP);
  ro(b, at + PCI_EXP_FLAGS, 2, 2 | (PCI_EXP_TYPE_ENDPOINT << PCI_EXP_FLAGS_TYPE_SHIFT));
  ro(b, at + PCI_EXP_DEVCAP, 4, 1 /* 256-byte max payload */ | (cap.flr ? PCI_EXP_DEVCAP_FLR : 0));
  // Initiate FLR (bit 15) is not in the mask: it always reads 0; pciFunctionWrite acts on it.
  rw(b, at + PCI_EXP_DEVCTL, 2, 0x2810, 0x7fff & ~0x0600);
  w1c(b, at + PCI_EXP_DEVSTA, 2, PCI_EXP_DEVSTA_CED | PCI_EXP_DEVSTA_NFED | PCI_EXP_DEVSTA_FED | PCI_EXP_DEVSTA_URD);
  ro(b, at + PCI_EXP_LNKCAP, 4, PCI_EXP_LINK_SPEED_5_0GT | (width << 4));
  rw(b, at + PCI_EXP_LNKCTL, 2, 0, PCI_EXP_LNKCTL_ASPMC | PCI_EXP_LNKCTL_RCB | PCI_EXP_LNKCTL_CCC | PCI_EXP_LNKCTL_ES);
  ro(b, at + PCI_EXP_LNKSTA, 2, PCI_EXP_LINK_SPEED_5_0GT | (width << 4));
  rw(b, at + PCI_EXP_DEVCTL2, 2, 0, PCI_EXP_DEVCTL2_COMP_TIMEOUT | PCI_EXP_DEVCTL2_COMP_TMOUT_DIS);
}

/** Lays capabilities out in list order (at their offsets, or packed after the previous one). */
function capabilitiesProgram(b: Builder, caps: PciCapabilitySpec[], bars: (PciBarSpec | undefined)[]): void {
  let next = PCI_STD_HEADER_SIZEOF;
  let previousNext = PCI_CAPABILITY_LIST;
  for (const cap of caps) {
    const at = cap.offset ?? next;
    const size = capabilitySize(cap);
    assert(at % 4 === 0 && at >= PCI_STD_HEADER_SIZEOF && at + size <= PCI_CONFIG_SPACE_SIZE,
      () => `${cap.kind} capability at 0x${at.toString(16)} outside 0x40..0xff or unaligned`);
    claim(b, at, size, `${cap.kind} capability`);
    capabilityProgram(b, at, cap, bars);
    ro(b, previousNext, 1, at);
    previousNext = at + PCI_CAP_LIST_NEXT;
    next = (at + size + 3) & ~3;
  }
  if (caps.length > 0) ro(b, PCI_STATUS, 2, PCI_STATUS_CAP_LIST);
}

interface HeaderRules {
  identity: PciIdentity;
  multiFunction: boolean;
  interruptPin: number;
  commandMask: number;
  cacheLineWritable: boolean;
}

function headerProgram(b: Builder, h: HeaderRules): void {
  const id = h.identity;
  ro(b, PCI_VENDOR_ID, 2, id.vendorId);
  ro(b, PCI_DEVICE_ID, 2, id.deviceId);
  rw(b, PCI_COMMAND, 2, 0, h.commandMask);
  w1c(b, PCI_STATUS, 2, PCI_STATUS_W1C_MASK);
  ro(b, PCI_REVISION_ID, 1, id.revisionId);
  ro(b, PCI_CLASS_PROG, 3, id.classCode);
  rw(b, PCI_CACHE_LINE_SIZE, 1, 0, h.cacheLineWritable ? 0xff : 0);
  ro(b, PCI_HEADER_TYPE, 1, h.multiFunction ? PCI_HEADER_TYPE_MFD : 0);
  ro(b, PCI_SUBSYSTEM_VENDOR_ID, 2, id.subsystemVendorId);
  ro(b, PCI_SUBSYSTEM_ID, 2, id.subsystemId);
  rw(b, PCI_INTERRUPT_LINE, 1, 0, h.interruptPin !== 0 ? 0xff : 0);
  ro(b, PCI_INTERRUPT_PIN, 1, h.interruptPin);
}

function identityCheck(id: PciIdentity): void {
  assert(id.vendorId >= 0 && id.vendorId < PCI_VENDOR_ID_NONE, () => `vendor id 0x${id.vendorId.toString(16)} is reserved`);
  assert(id.deviceId >= 0 && id.deviceId <= 0xffff, () => `device id 0x${id.deviceId.toString(16)}`);
  assert(id.classCode >= 0 && id.classCode <= 0xffffff, () => `class code 0x${id.classCode.toString(16)}`);
}

/** The image of a function at reset, with its masks. */
export function pciImageBuild(spec: PciFunctionSpec, functionNumber: number): PciConfigImage {
  identityCheck(spec.identity);
  assert(spec.interruptPin >= 0 && spec.interruptPin <= 4, () => `interrupt pin ${spec.interruptPin}`);
  const b = builderCreate();
  const hasIo = spec.bars.some((bar) => bar?.kind === 'io');
  const hasMemory = spec.bars.some((bar) => bar !== undefined && bar.kind !== 'io');
  // A function hardwires the enable of a space it does not decode (PCI 3.0, 6.2.2).
  const commandMask = (hasIo ? PCI_COMMAND_IO : 0) | (hasMemory ? PCI_COMMAND_MEMORY : 0) | PCI_COMMAND_MASTER |
    PCI_COMMAND_PARITY | PCI_COMMAND_SERR | (spec.interruptPin !== 0 ? PCI_COMMAND_INTX_DISABLE : 0);
  headerProgram(b, {
    identity: spec.identity, multiFunction: spec.multiFunction === true,
    interruptPin: spec.interruptPin, commandMask, cacheLineWritable: true,
  });
  barsProgram(b, PCI_BASE_ADDRESS_0, spec.bars, 'function', false);
  capabilitiesProgram(b, spec.capabilities, spec.bars);
  if (spec.sriov !== undefined) sriovProgram(b, spec.sriov, functionNumber);
  return b.image;
}

/** The SR-IOV extended capability (PCIe Base 9.3.3), the only extended capability here. */
function sriovProgram(b: Builder, s: PciSriovSpec, functionNumber: number): void {
  const at = s.offset ?? PCI_CFG_SPACE_EXT_START;
  assert(at % 4 === 0 && at >= PCI_CFG_SPACE_EXT_START && at + PCI_EXT_CAP_SRIOV_SIZEOF <= PCI_CFG_SPACE_EXP_SIZE,
    () => `SR-IOV capability at 0x${at.toString(16)}`);
  assert(s.totalVfs >= 1 && s.totalVfs <= 0xffff, () => `TotalVFs ${s.totalVfs}`);
  const initial = s.initialVfs ?? s.totalVfs;
  assert(initial <= s.totalVfs, () => `InitialVFs ${initial} above TotalVFs ${s.totalVfs}`);
  assert(s.firstVfOffset >= 1 && s.firstVfOffset <= 0xffff, () => `First VF Offset ${s.firstVfOffset}`);
  assert(s.vfStride <= 0xffff && (s.vfStride >= 1 || s.totalVfs === 1), () => `VF Stride ${s.vfStride}`);
  claim(b, at, PCI_EXT_CAP_SRIOV_SIZEOF, 'SR-IOV capability');
  ro(b, at, 4, PCI_EXT_CAP_ID_SRIOV | (1 << PCI_EXT_CAP_VER_SHIFT) | (0 << PCI_EXT_CAP_NEXT_SHIFT));
  ro(b, at + 4, 4, 0); // no VF migration
  rw(b, at + PCI_SRIOV_CTRL, 2, 0, PCI_SRIOV_CTRL_VFE | PCI_SRIOV_CTRL_MSE | PCI_SRIOV_CTRL_ARI);
  ro(b, at + PCI_SRIOV_INITIAL_VF, 2, initial);
  ro(b, at + PCI_SRIOV_TOTAL_VF, 2, s.totalVfs);
  rw(b, at + PCI_SRIOV_NUM_VF, 2, 0, 0xffff);
  ro(b, at + PCI_SRIOV_FUNC_LINK, 1, functionNumber);
  ro(b, at + PCI_SRIOV_VF_OFFSET, 2, s.firstVfOffset);
  ro(b, at + PCI_SRIOV_VF_STRIDE, 2, s.vfStride);
  ro(b, at + PCI_SRIOV_VF_DID, 2, s.vfDeviceId);
  ro(b, at + PCI_SRIOV_SUP_PGSIZE, 4, PCI_SRIOV_SUP_PGSIZE_MINREQ);
  rw(b, at + PCI_SRIOV_SYS_PGSIZE, 4, 1, PCI_SRIOV_SUP_PGSIZE_MINREQ);
  barsProgram(b, at + PCI_SRIOV_BAR, s.vfBars, 'VF', true);
}

/**
 * A VF's configuration space (PCIe Base 9.3.4): Vendor ID and Device ID read 0xFFFF (software
 * takes them from the PF: its Vendor ID and the VF Device ID field); Memory and I/O Space
 * Enable, Interrupt Disable, cache line size, interrupt line and pin and all six BARs are
 * hardwired to 0 (VF memory is decoded through the PF's VF BARs and VF MSE); Bus Master
 * Enable is the VF's own. Class code and subsystem vendor come from the PF.
 */
export function pciVfImageBuild(pf: PciFunctionSpec): PciConfigImage {
  const s = pf.sriov;
  assert(s !== undefined, 'a VF image needs a PF with the SR-IOV capability');
  const b = builderCreate();
  headerProgram(b, {
    identity: {
      vendorId: PCI_VENDOR_ID_NONE, deviceId: PCI_VENDOR_ID_NONE,
      revisionId: s.vf.revisionId ?? pf.identity.revisionId, classCode: pf.identity.classCode,
      subsystemVendorId: pf.identity.subsystemVendorId, subsystemId: s.vf.subsystemId ?? pf.identity.subsystemId,
    },
    multiFunction: false, interruptPin: 0, commandMask: PCI_COMMAND_MASTER, cacheLineWritable: false,
  });
  capabilitiesProgram(b, s.vf.capabilities, s.vfBars);
  return b.image;
}

// ---- functions -----------------------------------------------------------------------------

/** A new function at reset. `bdf` is where it will sit on the bus. */
export function pciFunctionCreate(bdf: Bdf, spec: PciFunctionSpec): PciFunction {
  assert(bdf >= 0 && bdf <= PCI_BDF_MAX, () => `BDF ${bdf} outside 0..0xffff`);
  const image = pciImageBuild(spec, pciBdfFunction(bdf));
  const fn: PciFunction = {
    bdf, config: image.config, writeMask: image.writeMask, w1cMask: image.w1cMask, resetConfig: image.config,
  };
  msixReset(fn);
  if (spec.sriov !== undefined) {
    fn.sriov = { capOffset: spec.sriov.offset ?? PCI_CFG_SPACE_EXT_START, vfTemplate: pciVfImageBuild(spec), vfs: [] };
  }
  return fn;
}

/** The routing ID of VF `number` (1-based): PF RID + First VF Offset + (n - 1) * VF Stride. */
export function pciVfRid(pf: PciFunction, number: number): Bdf {
  const s = pf.sriov;
  assert(s !== undefined, () => `${pciBdfFormat(pf.bdf)} has no SR-IOV capability`);
  const offset = pciGetLe(pf.config, s.capOffset + PCI_SRIOV_VF_OFFSET, 2);
  const stride = pciGetLe(pf.config, s.capOffset + PCI_SRIOV_VF_STRIDE, 2);
  return pf.bdf + offset + (number - 1) * stride;
}

function vfCreate(pf: PciFunction, number: number): PciFunction {
  const t = pf.sriov!.vfTemplate;
  const fn: PciFunction = {
    bdf: pciVfRid(pf, number), config: t.config, writeMask: t.writeMask, w1cMask: t.w1cMask,
    resetConfig: t.config, vf: { pf: pf.bdf, number },
  };
  msixReset(fn);
  return fn;
}

/** Bytes read from the function's configuration space (1 to 4, little-endian). */
export function pciFunctionRead(fn: PciFunction, offset: number, size: number): number {
  return pciGetLe(fn.config, offset, size);
}

/** Whether a function has a register block that needs more than masks (the SR-IOV rules). */
function sriovField(fn: PciFunction, offset: number, field: number, size: number): boolean {
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
function sriovVfBarLows(pf: PciFunction): number[] {
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

/**
 * The write mask as the spec's rules make it right now: NumVFs and System Page Size are
 * read-only while VF Enable is set (PCIe 9.3.3.7, 9.3.3.13: changing them then is undefined;
 * the model keeps them), and a VF BAR aligns to the System Page Size (9.3.3.14).
 */
function effectiveWriteMask(fn: PciFunction, offset: number): number {
  const mask = fn.writeMask[offset];
  const s = fn.sriov;
  if (s === undefined || offset < s.capOffset || offset >= s.capOffset + PCI_EXT_CAP_SRIOV_SIZEOF) return mask;
  const vfEnable = (fn.config[s.capOffset + PCI_SRIOV_CTRL] & PCI_SRIOV_CTRL_VFE) !== 0;
  if (vfEnable && (sriovField(fn, offset, PCI_SRIOV_NUM_VF, 2) || sriovField(fn, offset, PCI_SRIOV_SYS_PGSIZE, 4))) return 0;
  if (sriovField(fn, offset, PCI_SRIOV_BAR, 4 * PCI_SRIOV_NUM_BARS)) {
    const page = pciSriovPageBytes(fn);
    for (const low of sriovVfBarLows(fn)) {
      if (offset < low || offset >= low + 4 || page >= 2 ** 32) continue;
      const pageMask = (2 ** 32 - page) >>> 0;
      return mask & Math.floor(pageMask / 256 ** (offset - low)) & 0xff;
    }
  }
  return mask;
}

/**
 * A configuration write of 1 to 4 bytes, applied through the masks: read-only bits keep their
 * value, writable bits take the new one, W1C bits clear where a 1 is written. Then the
 * register rules: VF Enable 0 -> 1 creates VFs 1..NumVFs (none when NumVFs exceeds TotalVFs,
 * which the spec leaves undefined), 1 -> 0 destroys them; Initiate FLR resets the function.
 * Mutates `fn` (replacing its arrays); used by the fold and, on a scratch copy, by decisions.
 */
export function pciFunctionWrite(fn: PciFunction, offset: number, size: number, value: number): void {
  assert(size >= 1 && size <= 4 && offset >= 0 && offset + size <= PCI_CFG_SPACE_EXP_SIZE,
    () => `config write of ${size} bytes at 0x${offset.toString(16)}`);
  const old = fn.config;
  const next = old.slice();
  let flr = false;
  const pcie = pciCapabilityFind(old, PCI_CAP_ID_EXP);
  for (let i = 0; i < size; i++) {
    const at = offset + i;
    const byte = Math.floor(value / 256 ** i) & 0xff;
    const mask = effectiveWriteMask(fn, at);
    next[at] = ((old[at] & ~mask) | (byte & mask)) & ~(byte & fn.w1cMask[at]);
    if (pcie !== 0 && at === pcie + PCI_EXP_DEVCTL + 1 && (byte & (PCI_EXP_DEVCTL_BCR_FLR >> 8)) !== 0) flr = true;
  }
  fn.config = next;
  if (flr && (pciGetLe(old, pcie + PCI_EXP_DEVCAP, 4) & PCI_EXP_DEVCAP_FLR) !== 0) {
    pciFunctionReset(fn);
    return;
  }
  const s = fn.sriov;
  if (s === undefined) return;
  const ctrl = s.capOffset + PCI_SRIOV_CTRL;
  const before = (old[ctrl] & PCI_SRIOV_CTRL_VFE) !== 0;
  const after = (next[ctrl] & PCI_SRIOV_CTRL_VFE) !== 0;
  if (!before && after) {
    const numVfs = pciGetLe(next, s.capOffset + PCI_SRIOV_NUM_VF, 2);
    const totalVfs = pciGetLe(next, s.capOffset + PCI_SRIOV_TOTAL_VF, 2);
    const count = numVfs <= totalVfs ? numVfs : 0;
    s.vfs = Array.from({ length: count }, (_, n) => vfCreate(fn, n + 1));
  } else if (before && !after) {
    s.vfs = [];
  }
}

/** A function level reset (PCIe 6.6.2): the function returns to its reset image; a PF's VFs go. */
export function pciFunctionReset(fn: PciFunction): void {
  fn.config = fn.resetConfig;
  msixReset(fn);
  if (fn.sriov !== undefined) fn.sriov.vfs = [];
}

/** The number of VFs the PF has now (0 while VF Enable is clear). */
export function pciSriovVfCount(pf: PciFunction): number {
  return pf.sriov?.vfs.length ?? 0;
}

/** A copy that may be written without touching `fn` (its arrays are copy-on-write). */
export function pciFunctionScratch(fn: PciFunction): PciFunction {
  return { ...fn, sriov: fn.sriov === undefined ? undefined : { ...fn.sriov } };
}

// ---- MSI-X storage -------------------------------------------------------------------------

/** Entries come out of reset masked, the PBA clear (PCI 3.0, 6.8.2.9). */
function msixReset(fn: PciFunction): void {
  const at = pciCapabilityFind(fn.config, PCI_CAP_ID_MSIX);
  if (at === 0) return;
  const vectors = (pciGetLe(fn.config, at + PCI_MSIX_FLAGS, 2) & PCI_MSIX_FLAGS_QSIZE) + 1;
  const table = new Uint8Array(vectors * PCI_MSIX_ENTRY_SIZE);
  for (let v = 0; v < vectors; v++) table[v * PCI_MSIX_ENTRY_SIZE + PCI_MSIX_ENTRY_VECTOR_CTRL] = PCI_MSIX_ENTRY_CTRL_MASKBIT;
  fn.msixTable = table;
  fn.msixPba = new Uint8Array(Math.ceil(vectors / 64) * 8);
}

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


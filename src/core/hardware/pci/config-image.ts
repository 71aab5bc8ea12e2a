/**
 * Building a function's configuration space from its spec: the reset image with its write
 * and W1C masks, capability by capability (MSI, MSI-X, PCI Express, SR-IOV), as the device's
 * hardware fixes them. Built once per spec and shared by every function made from it.
 */
import { assert } from '../../../events/errors.ts';
import {
  msixReset, PCI_BDF_MAX, pciBdfFormat, pciBdfFunction, pciGetLe, setLe, type Bdf, type PciBarSpec, type PciCapabilitySpec,
  type PciConfigImage, type PciFunction, type PciFunctionSpec, type PciIdentity, type PciSriovSpec,
} from './config-space.ts';
import {
  PCI_BASE_ADDRESS_0, PCI_BASE_ADDRESS_MEM_FLAGS, PCI_BASE_ADDRESS_MEM_PREFETCH, PCI_BASE_ADDRESS_MEM_TYPE_64,
  PCI_BASE_ADDRESS_SPACE_IO, PCI_CACHE_LINE_SIZE, PCI_CAP_EXP_ENDPOINT_SIZEOF_V2, PCI_CAP_ID_EXP, PCI_CAP_ID_MSI,
  PCI_CAP_ID_MSIX, PCI_CAP_LIST_NEXT, PCI_CAP_MSIX_SIZEOF, PCI_CAPABILITY_LIST, PCI_CFG_SPACE_EXP_SIZE, PCI_CFG_SPACE_EXT_START,
  PCI_CLASS_PROG, PCI_COMMAND, PCI_COMMAND_INTX_DISABLE, PCI_COMMAND_IO, PCI_COMMAND_MASTER, PCI_COMMAND_MEMORY,
  PCI_COMMAND_PARITY, PCI_COMMAND_SERR, PCI_CONFIG_SPACE_SIZE, PCI_DEVICE_ID, PCI_EXP_DEVCAP, PCI_EXP_DEVCAP_FLR, PCI_EXP_DEVCTL,
  PCI_EXP_DEVCTL2, PCI_EXP_DEVCTL2_COMP_TIMEOUT, PCI_EXP_DEVCTL2_COMP_TMOUT_DIS, PCI_EXP_DEVSTA, PCI_EXP_DEVSTA_CED,
  PCI_EXP_DEVSTA_FED, PCI_EXP_DEVSTA_NFED, PCI_EXP_DEVSTA_URD, PCI_EXP_FLAGS, PCI_EXP_FLAGS_TYPE_SHIFT, PCI_EXP_LINK_SPEED_5_0GT,
  PCI_EXP_LNKCAP, PCI_EXP_LNKCTL, PCI_EXP_LNKCTL_ASPMC, PCI_EXP_LNKCTL_CCC, PCI_EXP_LNKCTL_ES, PCI_EXP_LNKCTL_RCB,
  PCI_EXP_LNKSTA, PCI_EXP_TYPE_ENDPOINT, PCI_EXT_CAP_ID_SRIOV, PCI_EXT_CAP_NEXT_SHIFT, PCI_EXT_CAP_SRIOV_SIZEOF,
  PCI_EXT_CAP_VER_SHIFT, PCI_HEADER_TYPE, PCI_HEADER_TYPE_MFD, PCI_INTERRUPT_LINE, PCI_INTERRUPT_PIN, PCI_MSI_ADDRESS_HI,
  PCI_MSI_ADDRESS_LO, PCI_MSI_DATA_32, PCI_MSI_DATA_64, PCI_MSI_FLAGS, PCI_MSI_FLAGS_64BIT, PCI_MSI_FLAGS_ENABLE,
  PCI_MSI_FLAGS_MASKBIT, PCI_MSI_FLAGS_QMASK_SHIFT, PCI_MSI_FLAGS_QSIZE, PCI_MSI_MASK_32, PCI_MSI_MASK_64, PCI_MSI_VECTORS_MAX,
  PCI_MSIX_ENTRY_SIZE, PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE, PCI_MSIX_FLAGS_MASKALL, PCI_MSIX_PBA, PCI_MSIX_TABLE,
  PCI_MSIX_VECTORS_MAX, PCI_NUM_BARS, PCI_REVISION_ID, PCI_SRIOV_BAR, PCI_SRIOV_CTRL, PCI_SRIOV_CTRL_ARI, PCI_SRIOV_CTRL_MSE,
  PCI_SRIOV_CTRL_VFE, PCI_SRIOV_FUNC_LINK, PCI_SRIOV_INITIAL_VF, PCI_SRIOV_NUM_VF, PCI_SRIOV_SUP_PGSIZE,
  PCI_SRIOV_SUP_PGSIZE_MINREQ, PCI_SRIOV_SYS_PGSIZE, PCI_SRIOV_TOTAL_VF, PCI_SRIOV_VF_DID, PCI_SRIOV_VF_OFFSET,
  PCI_SRIOV_VF_STRIDE, PCI_STATUS, PCI_STATUS_CAP_LIST, PCI_STATUS_W1C_MASK, PCI_STD_HEADER_SIZEOF, PCI_SUBSYSTEM_ID,
  PCI_SUBSYSTEM_VENDOR_ID, PCI_VENDOR_ID, PCI_VENDOR_ID_NONE,
} from './pci-regs.ts';

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

export function vfCreate(pf: PciFunction, number: number): PciFunction {
  const t = pf.sriov!.vfTemplate;
  const fn: PciFunction = {
    bdf: pciVfRid(pf, number), config: t.config, writeMask: t.writeMask, w1cMask: t.w1cMask,
    resetConfig: t.config, vf: { pf: pf.bdf, number },
  };
  msixReset(fn);
  return fn;
}


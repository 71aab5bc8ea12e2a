/**
 * Configuration reads and writes through the masks, with the rules the SR-IOV and PCIe specs
 * attach to particular registers: VF Enable creates and removes the VFs, an FLR resets the
 * function, and a VF's registers are the PF's where SR-IOV says so.
 */
import { assert } from '../../../events/errors.ts';
import { vfCreate } from './config-image.ts';
import { msixReset, pciCapabilityFind, pciGetLe, pciSriovPageBytes, sriovField, sriovVfBarLows, type PciFunction } from './config-space.ts';
import {
  PCI_CAP_ID_EXP, PCI_CFG_SPACE_EXP_SIZE, PCI_EXP_DEVCAP, PCI_EXP_DEVCAP_FLR, PCI_EXP_DEVCTL, PCI_EXP_DEVCTL_BCR_FLR,
  PCI_EXT_CAP_SRIOV_SIZEOF, PCI_SRIOV_BAR, PCI_SRIOV_CTRL, PCI_SRIOV_CTRL_VFE, PCI_SRIOV_NUM_BARS, PCI_SRIOV_NUM_VF,
  PCI_SRIOV_SYS_PGSIZE, PCI_SRIOV_TOTAL_VF,
} from './pci-regs.ts';

/** Bytes read from the function's configuration space (1 to 4, little-endian). */
export function pciFunctionRead(fn: PciFunction, offset: number, size: number): number {
  return pciGetLe(fn.config, offset, size);
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


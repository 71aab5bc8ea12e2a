/**
 * Xen's vPCI trap of a VF's MSI-X table (BAR3): the guest never writes the real table. Xen
 * keeps the guest's view of entry 0 (address, data, mask) for the guest to read back and,
 * for an assigned VF, puts its own remappable message in the real table, with an IRTE for
 * the VF behind it (msiProgram). The PBA shows the device's pending bit. For dom0's emulated
 * VF (vanilla) the guest's entry is all there is.
 */
import { laneMerge, laneRead, MSIX_PENDING, nicSetRegister, nicSignal, type NicPort } from '../../hardware/nic/device.ts';
import { NIC_VF_BAR_MSIX } from '../../hardware/nic/pf-config.ts';
import { vfNumbered, vfRegister, type NicVf } from '../../hardware/nic/vf.ts';
import {
  PCI_MSIX_ENTRY_CTRL_MASKBIT, PCI_MSIX_ENTRY_DATA, PCI_MSIX_ENTRY_LOWER_ADDR, PCI_MSIX_ENTRY_UPPER_ADDR,
  PCI_MSIX_ENTRY_VECTOR_CTRL,
} from '../../hardware/pci/index.ts';
import type { Host } from '../state.ts';
import { msiProgram } from '../vtd-driver/interrupt-remapping.ts';
import { isPassthrough, MSIX_ADDR, MSIX_CTRL, MSIX_DATA } from './io-path.ts';

/** The remappable message Xen put in the real entry 0 (model registers, kept with the guest's view). */
const MSIX_HOST_ADDR = 'MSIX0.hostAddr';
const MSIX_HOST_DATA = 'MSIX0.hostData';

/** The PBA's place in BAR3 (pf-config.ts: table at 0, PBA at 0x2000). */
const MSIX_PBA_OFFSET = 0x2000;

/** Entry 0 at reset, as the guest's view starts: nothing programmed, masked. */
export const MSIX_RESET_REGISTERS: Record<string, number> = {
  [MSIX_ADDR]: 0, [MSIX_DATA]: 0, [MSIX_CTRL]: PCI_MSIX_ENTRY_CTRL_MASKBIT, [MSIX_PENDING]: 0, [MSIX_HOST_ADDR]: 0, [MSIX_HOST_DATA]: 0,
};

const reg = (port: NicPort, vf: number, name: string): number => vfRegister(vfNumbered(port.vfs(), vf), name);

/** The guest's view of MSI-X entry 0 and the PBA; other entries read as at reset. */
export function msixRead(port: NicPort, vf: number, offset: number, size: number): number {
  const dword = offset & ~3;
  const view: Record<number, number> = {
    [PCI_MSIX_ENTRY_LOWER_ADDR]: reg(port, vf, MSIX_ADDR),
    [PCI_MSIX_ENTRY_DATA]: reg(port, vf, MSIX_DATA),
    [PCI_MSIX_ENTRY_VECTOR_CTRL]: reg(port, vf, MSIX_CTRL),
    [MSIX_PBA_OFFSET]: reg(port, vf, MSIX_PENDING),
  };
  const entryControl = dword < MSIX_PBA_OFFSET && dword % 16 === PCI_MSIX_ENTRY_VECTOR_CTRL ? PCI_MSIX_ENTRY_CTRL_MASKBIT : 0;
  return laneRead(view[dword] ?? entryControl, offset, size);
}

/** Xen writes a dword of the real table entry 0 (the fold applies it to the function). */
function xenTableWrite(host: Host, vf: NicVf, offset: number, value: number): void {
  host.emit('pci.mmio', { dom: 0, bdf: vf.bdf, bar: NIC_VF_BAR_MSIX, offset, size: 4, write: true, value: value >>> 0 });
}

/**
 * Xen's vPCI puts its own message in the real entry: the guest's write to the table (which
 * the bus saw) must not leave the guest's compatibility-format message there.
 */
function xenMessageRestore(host: Host, port: NicPort, vf: NicVf, dword: number): void {
  const own: Record<number, number> = {
    [PCI_MSIX_ENTRY_LOWER_ADDR]: reg(port, vf.vf, MSIX_HOST_ADDR), [PCI_MSIX_ENTRY_UPPER_ADDR]: 0, [PCI_MSIX_ENTRY_DATA]: reg(port, vf.vf, MSIX_HOST_DATA),
  };
  if (reg(port, vf.vf, MSIX_HOST_ADDR) !== 0) xenTableWrite(host, vf, dword, own[dword]);
}

/**
 * The guest writes the data (its vector): Xen sets up the remapped interrupt (msiProgram: an
 * IRTE for this VF, to the guest's vCPU 0) and writes the remappable message into the real
 * table. A write that leaves the vector as it was only restores Xen's message.
 */
function msixDataWrite(host: Host, port: NicPort, vf: NicVf, offset: number, size: number, value: number): void {
  const before = reg(port, vf.vf, MSIX_DATA) & 0xff;
  nicSetRegister(port, vf.vf, MSIX_DATA, laneMerge(reg(port, vf.vf, MSIX_DATA), offset, size, value));
  if (!isPassthrough(host)) return;
  const vector = reg(port, vf.vf, MSIX_DATA) & 0xff;
  if (reg(port, vf.vf, MSIX_HOST_ADDR) !== 0 && vector === before) return xenMessageRestore(host, port, vf, PCI_MSIX_ENTRY_DATA);
  const message = msiProgram(host, vf.bdf, vector, vf.dom, 0);
  nicSetRegister(port, vf.vf, MSIX_HOST_ADDR, message.address);
  nicSetRegister(port, vf.vf, MSIX_HOST_DATA, message.data);
  xenTableWrite(host, vf, PCI_MSIX_ENTRY_LOWER_ADDR, message.address);
  xenTableWrite(host, vf, PCI_MSIX_ENTRY_UPPER_ADDR, 0);
  xenTableWrite(host, vf, PCI_MSIX_ENTRY_DATA, message.data);
}

/** The guest unmasks or masks entry 0: the bit goes through; unmasking sends a pending message. */
function msixControlWrite(host: Host, port: NicPort, vf: NicVf, offset: number, size: number, value: number): void {
  const control = laneMerge(reg(port, vf.vf, MSIX_CTRL), offset, size, value) & PCI_MSIX_ENTRY_CTRL_MASKBIT;
  nicSetRegister(port, vf.vf, MSIX_CTRL, control);
  if (isPassthrough(host)) xenTableWrite(host, vf, PCI_MSIX_ENTRY_VECTOR_CTRL, control);
  if (control === 0 && reg(port, vf.vf, MSIX_PENDING) !== 0) nicSignal(port, vf.vf);
}

/**
 * The guest writes entry 0 (other entries are not used: every cause signals entry 0). Xen
 * keeps the guest's address and data for the guest to read back.
 */
export function msixWrite(host: Host, port: NicPort, vf: number, offset: number, size: number, value: number): void {
  const v = vfNumbered(port.vfs(), vf);
  switch (offset & ~3) {
    case PCI_MSIX_ENTRY_DATA: return msixDataWrite(host, port, v, offset, size, value);
    case PCI_MSIX_ENTRY_VECTOR_CTRL: return msixControlWrite(host, port, v, offset, size, value);
    case PCI_MSIX_ENTRY_LOWER_ADDR:
      nicSetRegister(port, vf, MSIX_ADDR, laneMerge(reg(port, vf, MSIX_ADDR), offset, size, value));
      if (isPassthrough(host)) xenMessageRestore(host, port, v, PCI_MSIX_ENTRY_LOWER_ADDR);
      return;
    case PCI_MSIX_ENTRY_UPPER_ADDR:
      if (isPassthrough(host)) xenMessageRestore(host, port, v, PCI_MSIX_ENTRY_UPPER_ADDR);
      return;
  }
}

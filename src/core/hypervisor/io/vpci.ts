/**
 * A guest's virtual PCI bus (Xen's vPCI for a passed-through function): configuration
 * mechanism #1 through ports 0xCF8/0xCFC, where the guest finds its VF at 00:04.0 and
 * nothing else. Accesses reach the VF's real configuration space (a VF's BARs read as zero:
 * they live in the PF's SR-IOV capability, which the guest never sees).
 */
import type { DomainId } from '../../../events/schema.ts';
import type { Machine } from '../../machine/machine.ts';
import { PCI_SRIOV_VF_DID, PCI_VENDOR_ID, pciConfigRead, pciFunctionAt, pciGetLe } from '../../hardware/pci/index.ts';
import { NIC_GUEST_BDF } from '../../hardware/nic/registers.ts';

export const PCI_CONFIG_ADDRESS = 0xcf8;
export const PCI_CONFIG_DATA = 0xcfc;
const CONFIG_ENABLE = 0x8000_0000;

/** True for the ports of configuration mechanism #1 (0xCF8 as a dword, 0xCFC..0xCFF). */
export function isPciConfigPort(port: number, size: number): boolean {
  return (port === PCI_CONFIG_ADDRESS && size === 4) || (port >= PCI_CONFIG_DATA && port + size <= PCI_CONFIG_DATA + 4);
}

/** The host routing id of the function behind the guest's CONFIG_ADDRESS latch, if any. */
function target(m: Machine, dom: DomainId): { bdf: number; offset: number } | undefined {
  const latch = m.state.io.cf8.get(dom) ?? 0;
  if ((latch & CONFIG_ENABLE) === 0) return undefined;
  const guestBdf = (latch >>> 8) & 0xffff;
  const vf = m.state.io.vfs.find((v) => v.dom === dom);
  if (guestBdf !== NIC_GUEST_BDF || vf === undefined) return undefined;
  return { bdf: vf.bdf, offset: latch & 0xfc };
}

/**
 * A data-port access (the caller records the port access itself as an `io` event).
 * Returns what an IN reads: all ones when no function answers.
 */
export function pciConfigDataAccess(m: Machine, dom: DomainId, port: number, size: number, out: boolean, value: number): number {
  if (port === PCI_CONFIG_ADDRESS) return out ? value : m.state.io.cf8.get(dom) ?? 0;
  const at = target(m, dom);
  const allOnes = 2 ** (8 * size) - 1;
  if (at === undefined) {
    m.emit('pci.cfg', { dom, bdf: -1, offset: port - PCI_CONFIG_DATA, size, write: out, value: out ? value : allOnes, present: false });
    return allOnes;
  }
  const offset = at.offset + (port - PCI_CONFIG_DATA);
  if (out) {
    m.emit('pci.cfg', { dom, bdf: at.bdf, offset, size, write: true, value: (value >>> 0) % 2 ** (8 * size), present: true });
    return value;
  }
  const read = offset < 4 ? identityRead(m, at.bdf, offset, size) : pciConfigRead(m.state.io.pci, at.bdf, offset, size).result;
  m.emit('pci.cfg', { dom, bdf: at.bdf, offset, size, write: false, value: read, present: true });
  return read;
}

/**
 * A VF's Vendor and Device ID registers read all ones (SR-IOV 3.4.1.1, 3.4.1.2): the
 * hypervisor shows the guest the PF's vendor and the VF Device ID from the PF's SR-IOV
 * capability, as Xen and QEMU do.
 */
function identityRead(m: Machine, bdf: number, offset: number, size: number): number {
  const fn = pciFunctionAt(m.state.io.pci, bdf);
  const pfBdf = fn?.vf?.pf;
  const pf = pfBdf === undefined ? undefined : pciFunctionAt(m.state.io.pci, pfBdf);
  if (pf?.sriov === undefined) return pciConfigRead(m.state.io.pci, bdf, offset, size).result;
  const vendor = pciGetLe(pf.config, PCI_VENDOR_ID, 2);
  const device = pciGetLe(pf.config, pf.sriov.capOffset + PCI_SRIOV_VF_DID, 2);
  const dword = (vendor | (device << 16)) >>> 0;
  return Math.floor(dword / 2 ** (8 * offset)) % 2 ** (8 * size);
}

/**
 * A guest's virtual PCI bus (Xen's vPCI for a passed-through function): configuration
 * mechanism #1 through ports 0xCF8/0xCFC, where the guest finds its VF at 00:04.0 and
 * nothing else. Accesses reach the VF's real configuration space (a VF's BARs read as zero:
 * they live in the PF's SR-IOV capability, which the guest never sees).
 */
import type { DomainId, EventOf } from '../../../events/schema.ts';
import { NIC_GUEST_BDF } from '../../hardware/nic/registers.ts';
import {
  PCI_CONFIG_ADDRESS_PORT, PCI_SRIOV_VF_DID, PCI_VENDOR_ID, pciApply, pciConfigRead, pciFunctionAt, pciGetLe,
} from '../../hardware/pci/index.ts';
import type { Host, HostState } from '../state.ts';

export const PCI_CONFIG_ADDRESS = PCI_CONFIG_ADDRESS_PORT;
export const PCI_CONFIG_DATA = 0xcfc;
const CONFIG_ENABLE = 0x8000_0000;

/** True for the ports of configuration mechanism #1 (0xCF8 as a dword, 0xCFC..0xCFF). */
export function isPciConfigPort(port: number, size: number): boolean {
  return (port === PCI_CONFIG_ADDRESS && size === 4) || (port >= PCI_CONFIG_DATA && port + size <= PCI_CONFIG_DATA + 4);
}

/** The host routing id of the function behind the guest's CONFIG_ADDRESS latch, if any. */
function target(host: Host, dom: DomainId): { bdf: number; offset: number } | undefined {
  const latch = host.state.io.cf8.get(dom) ?? 0;
  if ((latch & CONFIG_ENABLE) === 0) return undefined;
  const guestBdf = (latch >>> 8) & 0xffff;
  const vf = host.state.io.vfs.find((v) => v.dom === dom);
  if (guestBdf !== NIC_GUEST_BDF || vf === undefined) return undefined;
  return { bdf: vf.bdf, offset: latch & 0xfc };
}

/**
 * A data-port access (the caller records the port access itself as an `io` event).
 * Returns what an IN reads: all ones when no function answers.
 */
export function pciConfigDataAccess(host: Host, dom: DomainId, port: number, size: number, out: boolean, value: number): number {
  if (port === PCI_CONFIG_ADDRESS) return out ? value : host.state.io.cf8.get(dom) ?? 0;
  const at = target(host, dom);
  const allOnes = 2 ** (8 * size) - 1;
  if (at === undefined) {
    host.emit('pci.cfg', { dom, bdf: -1, offset: port - PCI_CONFIG_DATA, size, write: out, value: out ? value : allOnes, present: false });
    return allOnes;
  }
  const offset = at.offset + (port - PCI_CONFIG_DATA);
  if (out) {
    host.emit('pci.cfg', { dom, bdf: at.bdf, offset, size, write: true, value: (value >>> 0) % 2 ** (8 * size), present: true });
    return value;
  }
  const read = offset < 4 ? identityRead(host, at.bdf, offset, size) : pciConfigRead(host.state.io.pci, at.bdf, offset, size).result;
  host.emit('pci.cfg', { dom, bdf: at.bdf, offset, size, write: false, value: read, present: true });
  return read;
}

/**
 * A VF's Vendor and Device ID registers read all ones (SR-IOV 3.4.1.1, 3.4.1.2): the
 * hypervisor shows the guest the PF's vendor and the VF Device ID from the PF's SR-IOV
 * capability, as Xen and QEMU do.
 */
function identityRead(host: Host, bdf: number, offset: number, size: number): number {
  const fn = pciFunctionAt(host.state.io.pci, bdf);
  const pfBdf = fn?.vf?.pf;
  const pf = pfBdf === undefined ? undefined : pciFunctionAt(host.state.io.pci, pfBdf);
  if (pf?.sriov === undefined) return pciConfigRead(host.state.io.pci, bdf, offset, size).result;
  const vendor = pciGetLe(pf.config, PCI_VENDOR_ID, 2);
  const device = pciGetLe(pf.config, pf.sriov.capOffset + PCI_SRIOV_VF_DID, 2);
  const dword = (vendor | (device << 16)) >>> 0;
  return Math.floor(dword / 2 ** (8 * offset)) % 2 ** (8 * size);
}

/** io: a guest's write of CONFIG_ADDRESS latches the configuration cycle its next data access makes. */
export function applyIo(state: HostState, e: EventOf<'io'>): void {
  if (e.out && e.port === PCI_CONFIG_ADDRESS && e.size === 4) state.io.cf8.set(e.dom, e.value);
}

/** pci.cfg: a configuration write that reached a function lands in its configuration space. */
export function applyPciCfg(state: HostState, e: EventOf<'pci.cfg'>): void {
  if (e.write && e.present) pciApply(state.io.pci, { kind: 'pci.cfg', bdf: e.bdf, offset: e.offset, size: e.size, write: true, value: e.value, present: true });
}

/**
 * pci.mmio: device registers change through nic.reg; the bus folds what it owns (MSI-X
 * tables). A guest's write to its MSI-X table is trapped by Xen's vPCI: only Xen's (dom0's) lands.
 */
export function applyPciMmio(state: HostState, e: EventOf<'pci.mmio'>): void {
  if (e.write && e.dom === 0) pciApply(state.io.pci, { kind: 'pci.mmio', bdf: e.bdf, bar: e.bar, offset: e.offset, size: e.size, write: true, value: e.value });
}

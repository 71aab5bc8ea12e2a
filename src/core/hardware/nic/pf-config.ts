/**
 * The configuration-space identity of the SR-IOV NIC's physical function, shaped after the
 * Intel 82599 10 GbE controller (82599ES SFP+, device 0x10FB; its VF is 0x10ED), as lspci
 * shows one: BAR0 64-bit 512 KiB registers, BAR2 32 I/O ports (IOADDR/IODATA), BAR4 64-bit
 * 16 KiB holding the MSI-X table (offset 0) and PBA (offset 0x2000); MSI at 0x50, MSI-X at
 * 0x70 (64 vectors), PCI Express at 0xA0 with FLR; SR-IOV at 0x100 with First VF Offset
 * 0x80 and VF Stride 2, so the VFs of a PF at 02:00.0 are 02:10.0, 02:10.2, ...
 * Each VF: VF BAR0 64-bit 16 KiB registers, VF BAR3 64-bit 16 KiB MSI-X (3 vectors).
 * Only configuration space lives here; the NIC's registers, rings and switch are the
 * device model's (issue 4, section 4).
 */
import { assert } from '../../../events/errors.ts';
import { pciFunctionCreate } from '../pci/config-image.ts';
import { pciBdf, type Bdf, type PciFunction, type PciFunctionSpec } from '../pci/config-space.ts';
import { PCI_CLASS_NETWORK_ETHERNET, PCI_INTERRUPT_PIN_INTA, PCI_VENDOR_ID_INTEL } from '../pci/pci-regs.ts';

export const NIC_82599_DEVICE_ID = 0x10fb; /* 82599ES 10-Gigabit SFI/SFP+ */
export const NIC_82599_VF_DEVICE_ID = 0x10ed; /* 82599 Virtual Function */
export const NIC_82599_SUBSYSTEM_ID = 0x000c; /* Ethernet Server Adapter X520-2 */
export const NIC_82599_TOTAL_VFS_MAX = 64;

/** BAR indices the device model uses. */
export const NIC_PF_BAR_REGISTERS = 0;
export const NIC_PF_BAR_IO = 2;
export const NIC_PF_BAR_MSIX = 4;
export const NIC_VF_BAR_REGISTERS = 0;
export const NIC_VF_BAR_MSIX = 3;
export const NIC_PF_MSIX_VECTORS = 64;
export const NIC_VF_MSIX_VECTORS = 3;

export interface SriovNicOptions {
  /** Where the PF sits; 02:00.0 when not given. */
  bdf?: Bdf;
  /** TotalVFs (and InitialVFs): 8 when not given, at most 64 as on the 82599. */
  totalVfs?: number;
  firstVfOffset?: number;
  vfStride?: number;
}

export function sriovNicPfSpec(options: SriovNicOptions = {}): PciFunctionSpec {
  const totalVfs = options.totalVfs ?? 8;
  assert(Number.isInteger(totalVfs) && totalVfs >= 1 && totalVfs <= NIC_82599_TOTAL_VFS_MAX, () => `TotalVFs ${totalVfs} outside 1..64`);
  return {
    identity: {
      vendorId: PCI_VENDOR_ID_INTEL, deviceId: NIC_82599_DEVICE_ID, revisionId: 0x01,
      classCode: PCI_CLASS_NETWORK_ETHERNET, subsystemVendorId: PCI_VENDOR_ID_INTEL, subsystemId: NIC_82599_SUBSYSTEM_ID,
    },
    interruptPin: PCI_INTERRUPT_PIN_INTA,
    bars: [
      { kind: 'mem64', sizeBytes: 512 * 1024 }, undefined,
      { kind: 'io', sizeBytes: 32 }, undefined,
      { kind: 'mem64', sizeBytes: 16 * 1024 }, undefined,
    ],
    capabilities: [
      { kind: 'msi', offset: 0x50, vectors: 1, address64: true, perVectorMask: true },
      {
        kind: 'msix', offset: 0x70, tableSize: NIC_PF_MSIX_VECTORS,
        tableBar: NIC_PF_BAR_MSIX, tableOffset: 0, pbaBar: NIC_PF_BAR_MSIX, pbaOffset: 0x2000,
      },
      { kind: 'pcie', offset: 0xa0, flr: true, linkWidth: 8 },
    ],
    sriov: {
      offset: 0x100, totalVfs, initialVfs: totalVfs,
      firstVfOffset: options.firstVfOffset ?? 0x80, vfStride: options.vfStride ?? 2, vfDeviceId: NIC_82599_VF_DEVICE_ID,
      vfBars: [
        { kind: 'mem64', sizeBytes: 16 * 1024 }, undefined, undefined,
        { kind: 'mem64', sizeBytes: 16 * 1024 }, undefined, undefined,
      ],
      vf: {
        capabilities: [
          {
            kind: 'msix', offset: 0x70, tableSize: NIC_VF_MSIX_VECTORS,
            tableBar: NIC_VF_BAR_MSIX, tableOffset: 0, pbaBar: NIC_VF_BAR_MSIX, pbaOffset: 0x2000,
          },
          { kind: 'pcie', offset: 0xa0, flr: true, linkWidth: 8 },
        ],
      },
    },
  };
}

/** The PF at reset, ready for pciBusAdd. */
export function sriovNicPf(options: SriovNicOptions = {}): PciFunction {
  return pciFunctionCreate(options.bdf ?? pciBdf(2, 0, 0), sriovNicPfSpec(options));
}

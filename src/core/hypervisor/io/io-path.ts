/**
 * The profile's I/O path, and the port the NIC device works through:
 * - secure: SIOM. The VF is the guest's own (assigned; Xen's vPCI programs its real MSI-X
 *   table), its memory accesses are DMA through the IOMMU, its frames pass SIOM's tagged
 *   buffers, and the embedded switch checks source MACs. dom0 is not on the path.
 * - vanilla: netback. dom0's backend emulates the VF's registers, copies the guest's bytes
 *   with grant copies, bridges the frames without checking source MACs, and notifies the
 *   guest through the MSI-X entry the guest wrote. A dom0 fault stops everyone's I/O.
 */
import type { EventFields } from '../../../events/schema.ts';
import type { NicEventKind, NicPath, NicPort } from '../../hardware/nic/device.ts';
import type { SwitchConfig } from '../../hardware/nic/switch.ts';
import type { NicVf } from '../../hardware/nic/vf.ts';
import {
  PCI_MSIX_ENTRY_CTRL_MASKBIT, PCI_MSIX_ENTRY_DATA, PCI_MSIX_ENTRY_LOWER_ADDR, PCI_MSIX_ENTRY_VECTOR_CTRL, pciFunctionAt,
  pciGetLe,
} from '../../hardware/pci/index.ts';
import { hasFlaw } from '../flaws.ts';
import type { Host } from '../state.ts';
import { dmaRead, dmaWrite } from '../vtd-driver/dma.ts';
import { interruptRequest } from '../vtd-driver/interrupt-remapping.ts';
import { netbackNotify, netbackRead, netbackReceive, netbackTransmit, netbackWrite } from './netback.ts';
import { siomReceive, siomTransmit } from './siom.ts';

/**
 * Model registers for MSI-X entry 0 as Xen's vPCI keeps them (vpci-msix.ts): the guest's own
 * view of the entry (what it wrote, what it reads back).
 */
export const MSIX_ADDR = 'MSIX0.addr';
export const MSIX_DATA = 'MSIX0.data';
export const MSIX_CTRL = 'MSIX0.ctrl';

/** The device's view of an assigned VF's path: DMA through the IOMMU, SIOM's buffers. */
class SiomPath implements NicPath {
  readonly fault = 'dma-fault' as const;
  constructor(private readonly host: Host) {}
  up(): boolean {
    return true;
  }
  read(vf: NicVf, iova: number, len: number): Uint8Array | undefined {
    return dmaRead(this.host, vf.bdf, iova, len);
  }
  write(vf: NicVf, iova: number, data: Uint8Array): boolean {
    return dmaWrite(this.host, vf.bdf, iova, data);
  }
  transmit(vf: NicVf, frame: Uint8Array): ReturnType<NicPath['transmit']> {
    return siomTransmit(this.host, vf, frame);
  }
  receive(vf: NicVf, frame: Uint8Array): ReturnType<NicPath['receive']> {
    return siomReceive(this.host, vf, frame);
  }
}

/** dom0's backend: grant copies through the guest's p2m, and the backend's own state. */
class NetbackPath implements NicPath {
  readonly fault = 'grant-fault' as const;
  constructor(private readonly host: Host) {}
  up(): boolean {
    return this.host.state.io.netbackUp;
  }
  read(vf: NicVf, gpa: number, len: number, dir: 'tx' | 'rx'): Uint8Array | undefined {
    return netbackRead(this.host, vf, gpa, len, dir);
  }
  write(vf: NicVf, gpa: number, data: Uint8Array, dir: 'tx' | 'rx', frame: boolean): boolean {
    return netbackWrite(this.host, vf, gpa, data, dir, frame);
  }
  transmit(vf: NicVf, frame: Uint8Array): ReturnType<NicPath['transmit']> {
    return netbackTransmit(this.host, vf, frame);
  }
  receive(vf: NicVf, frame: Uint8Array): ReturnType<NicPath['receive']> {
    return netbackReceive(this.host, vf, frame);
  }
}

/** True when the VF is the guest's own device (secure), not dom0's emulation of one. */
export function isPassthrough(host: Host): boolean {
  return host.state.profile === 'secure';
}

/** The NIC as the hypervisor wires it: the device sees its VFs, its path and where its messages go. */
class XenNicPort implements NicPort {
  readonly path: NicPath;
  readonly doubleFetch: boolean;
  private readonly passthrough: boolean;

  constructor(private readonly host: Host) {
    this.passthrough = isPassthrough(host);
    this.path = this.passthrough ? new SiomPath(host) : new NetbackPath(host);
    this.doubleFetch = hasFlaw(host.state, 'double-fetch-descriptor');
  }

  vfs(): readonly NicVf[] {
    return this.host.state.io.vfs;
  }

  emit<K extends NicEventKind>(kind: K, fields: EventFields<K>): void {
    this.host.emit(kind, fields);
  }

  switchConfig(): SwitchConfig {
    const state = this.host.state;
    return { securityGroups: state.config.network.securityGroups, domainName: (dom) => state.domains.get(dom)?.name, antiSpoof: this.passthrough };
  }

  /**
   * MSI-X entry 0: for an assigned VF the real table, where Xen put the remappable message;
   * for dom0's emulated one the entry as the guest wrote it.
   */
  msixEntry(vf: NicVf): { address: number; data: number; masked: boolean } | undefined {
    if (!this.passthrough) {
      const regs = vf.regs;
      return { address: regs[MSIX_ADDR] ?? 0, data: regs[MSIX_DATA] ?? 0, masked: ((regs[MSIX_CTRL] ?? 1) & PCI_MSIX_ENTRY_CTRL_MASKBIT) !== 0 };
    }
    const table = pciFunctionAt(this.host.state.io.pci, vf.bdf)?.msixTable;
    if (table === undefined) return undefined;
    return {
      address: pciGetLe(table, PCI_MSIX_ENTRY_LOWER_ADDR, 4),
      data: pciGetLe(table, PCI_MSIX_ENTRY_DATA, 4),
      masked: (table[PCI_MSIX_ENTRY_VECTOR_CTRL] & PCI_MSIX_ENTRY_CTRL_MASKBIT) !== 0,
    };
  }

  /** An assigned VF writes its message, which interrupt remapping checks and routes; dom0's emulation has Xen inject it. */
  signal(vf: NicVf, address: number, data: number): void {
    if (this.passthrough) interruptRequest(this.host, vf.bdf, address, data);
    else netbackNotify(this.host, vf, address, data);
  }
}

/** The port the NIC device works through on this host, now. */
export function nicPort(host: Host): NicPort {
  return new XenNicPort(host);
}

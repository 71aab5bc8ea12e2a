/**
 * A guest's access inside its VF's BAR window, as the MMIO emulation hands it over: recorded
 * as `pci.mmio` with the VF's host routing id, then given to the device (BAR0, the register
 * file) or to Xen's vPCI (BAR3, the MSI-X table). A domain without a VF reads all ones and
 * writes into nothing: nothing claims the access.
 */
import type { DomainId } from '../../../events/schema.ts';
import { nicRegisterRead, nicRegisterReadEffect, nicRegisterWrite } from '../../hardware/nic/device.ts';
import { NIC_VF_BAR_MSIX } from '../../hardware/nic/pf-config.ts';
import type { Host } from '../state.ts';
import { nicPort } from './io-path.ts';
import { nicVfOf } from './nic-pf-driver.ts';
import { msixRead, msixWrite } from './vpci-msix.ts';

const ALL_ONES = 0xffff_ffff;

export function nicMmioRead(host: Host, dom: DomainId, bar: number, offset: number, size: number): number {
  const v = nicVfOf(host.state, dom);
  if (v === undefined) {
    const value = ALL_ONES % 2 ** (8 * size);
    host.emit('pci.mmio', { dom, bdf: -1, bar, offset, size, write: false, value });
    return value;
  }
  const port = nicPort(host);
  const registers = bar === 0 ? nicRegisterRead(port, v.vf, offset, size) : 0;
  const read = bar === NIC_VF_BAR_MSIX ? msixRead(port, v.vf, offset, size) : registers;
  host.emit('pci.mmio', { dom, bdf: v.bdf, bar, offset, size, write: false, value: read });
  if (bar === 0) nicRegisterReadEffect(port, v.vf, offset);
  return read;
}

export function nicMmioWrite(host: Host, dom: DomainId, bar: number, offset: number, size: number, value: number): void {
  const v = nicVfOf(host.state, dom);
  const written = (value >>> 0) % 2 ** (8 * size);
  host.emit('pci.mmio', { dom, bdf: v?.bdf ?? -1, bar, offset, size, write: true, value: written });
  if (v === undefined) return;
  const port = nicPort(host);
  if (bar === NIC_VF_BAR_MSIX) msixWrite(host, port, v.vf, offset, size, written);
  else if (bar === 0) nicRegisterWrite(port, v.vf, offset, size, written);
}

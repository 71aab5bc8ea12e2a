/**
 * dom0's PF driver for the SR-IOV NIC (ixgbe with max_vfs) and Xen's device assignment: the
 * PF brought up with its VFs, a VF configured for a domain (forced MAC, port VLAN, spoof
 * check) and, in the secure profile, put in the domain's IOMMU domain; taken away again with
 * a function-level reset.
 */
import { assert } from '../../../events/errors.ts';
import { NO_DOMAIN, type DomainId, type EventOf } from '../../../events/schema.ts';
import { nicQuiesce, nicResetRegisters } from '../../hardware/nic/device.ts';
import type { NicVf } from '../../hardware/nic/vf.ts';
import {
  PCI_BASE_ADDRESS_0, PCI_BASE_ADDRESS_4, PCI_CAP_ID_EXP, PCI_COMMAND, PCI_COMMAND_MASTER, PCI_COMMAND_MEMORY, PCI_EXP_DEVCTL,
  PCI_EXP_DEVCTL_BCR_FLR, PCI_SRIOV_BAR, PCI_SRIOV_CTRL, PCI_SRIOV_CTRL_MSE, PCI_SRIOV_CTRL_VFE, PCI_SRIOV_NUM_VF,
  pciCapabilityFind, pciConfigWrite, pciFunctionAt, type PciFunction,
} from '../../hardware/pci/index.ts';
import { hasFlaw } from '../flaws.ts';
import type { Host, HostState } from '../state.ts';
import { vtdAssignDevice, vtdDeassignDevice } from '../vtd-driver/iommu-domains.ts';
import { nicPort } from './io-path.ts';
import { NIC_PF_BDF } from './io-state.ts';
import { MSIX_RESET_REGISTERS } from './vpci-msix.ts';

/** Host MMIO the PF driver gives the NIC: the PF's BARs, then VF BAR0 and VF BAR3 (64 VFs of 16 KiB each). */
export const NIC_PF_BAR0_BASE = 0xd000_0000;
export const NIC_PF_BAR4_BASE = 0xd008_0000;
export const NIC_VF_BAR0_BASE = 0xe000_0000;
export const NIC_VF_BAR3_BASE = 0xe010_0000;

/** dom0 writes a configuration register of a function; the pci model says what lands. */
function dom0ConfigWrite(host: Host, bdf: number, offset: number, size: number, value: number): void {
  const effect = pciConfigWrite(host.state.io.pci, bdf, offset, size, value).effects[0];
  assert(effect.kind === 'pci.cfg', 'a configuration write begins with its cycle');
  host.emit('pci.cfg', { dom: 0, bdf, offset, size, write: true, value: effect.value, present: effect.present });
}

function pf(state: HostState): PciFunction {
  const fn = state.io.pci.functions.get(NIC_PF_BDF);
  assert(fn?.sriov !== undefined, 'the NIC PF with its SR-IOV capability is not on the bus');
  return fn;
}

/**
 * The PF driver brings the NIC up: the PF's BARs and command register, then SR-IOV: NumVFs,
 * the VF BAR0/BAR3 bases, VF Enable with VF MSE (which creates the VFs). Does nothing when
 * the VFs exist already.
 */
export function nicBoot(host: Host): void {
  const fn = pf(host.state);
  if (fn.sriov!.vfs.length > 0) return;
  const cap = fn.sriov!.capOffset;
  dom0ConfigWrite(host, NIC_PF_BDF, PCI_BASE_ADDRESS_0, 4, NIC_PF_BAR0_BASE);
  dom0ConfigWrite(host, NIC_PF_BDF, PCI_BASE_ADDRESS_0 + 4, 4, 0);
  dom0ConfigWrite(host, NIC_PF_BDF, PCI_BASE_ADDRESS_4, 4, NIC_PF_BAR4_BASE);
  dom0ConfigWrite(host, NIC_PF_BDF, PCI_BASE_ADDRESS_4 + 4, 4, 0);
  dom0ConfigWrite(host, NIC_PF_BDF, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
  dom0ConfigWrite(host, NIC_PF_BDF, cap + PCI_SRIOV_NUM_VF, 2, host.state.config.network.vfs);
  // VF BAR0 is the SR-IOV capability's BAR 0, VF BAR3 its BAR 3: each 64-bit, low dword first.
  dom0ConfigWrite(host, NIC_PF_BDF, cap + PCI_SRIOV_BAR, 4, NIC_VF_BAR0_BASE);
  dom0ConfigWrite(host, NIC_PF_BDF, cap + PCI_SRIOV_BAR + 4, 4, 0);
  dom0ConfigWrite(host, NIC_PF_BDF, cap + PCI_SRIOV_BAR + 12, 4, NIC_VF_BAR3_BASE);
  dom0ConfigWrite(host, NIC_PF_BDF, cap + PCI_SRIOV_BAR + 16, 4, 0);
  dom0ConfigWrite(host, NIC_PF_BDF, cap + PCI_SRIOV_CTRL, 2, PCI_SRIOV_CTRL_VFE | PCI_SRIOV_CTRL_MSE);
}

/** The VF assigned to `dom`, if any. */
export function nicVfOf(state: HostState, dom: DomainId): NicVf | undefined {
  return dom === NO_DOMAIN ? undefined : state.io.vfs.find((v) => v.dom === dom);
}

/**
 * Gives `dom` a VF (a domain with a `nic` in the scenario): the lowest free one, configured
 * by the PF driver with the domain's MAC, VLAN and spoof check, its registers reset; in the
 * secure profile Xen puts it in the domain's IOMMU domain. Returns the VF number, or -1 when
 * the domain has no nic, the VFs are not enabled, or none is free. A second call is a no-op.
 */
export function nicAttach(host: Host, dom: DomainId): number {
  const domain = host.state.domains.get(dom);
  const spec = domain === undefined ? undefined : host.state.config.domains.find((d) => d.name === domain.name)?.nic;
  if (domain === undefined || domain.status !== 'running' || spec == null) return -1;
  const mine = nicVfOf(host.state, dom);
  if (mine !== undefined) return mine.vf;
  const taken = new Set(host.state.io.vfs.filter((v) => v.dom !== NO_DOMAIN).map((v) => v.vf));
  const free = pf(host.state).sriov!.vfs.find((fn) => !taken.has(fn.vf!.number));
  if (free === undefined) return -1;
  const vf = free.vf!.number;
  // The planted flaw vf-spoofcheck-off: the PF driver never turns MAC anti-spoofing on.
  const spoofcheck = spec.spoofcheck && !hasFlaw(host.state, 'vf-spoofcheck-off');
  host.emit('nic.vf', { vf, bdf: free.bdf, dom, mac: spec.mac, vlan: spec.vlan, spoofcheck });
  nicResetRegisters(host, vf, spec.mac, MSIX_RESET_REGISTERS);
  if (host.state.profile === 'secure' && host.state.io.xenVtd.enabled) vtdAssignDevice(host, free.bdf, dom);
  return vf;
}

/**
 * Takes `dom`'s VF away (deassign_vf, domain destruction): its queues stop, Xen resets the
 * function (FLR, which also clears its MSI-X table) and, in the secure profile, takes it out
 * of the IOMMU domain; the PF driver marks it free.
 */
export function nicDetach(host: Host, dom: DomainId): void {
  const vf = nicVfOf(host.state, dom);
  if (vf === undefined) return;
  nicQuiesce(nicPort(host), vf.vf);
  const fn = pciFunctionAt(host.state.io.pci, vf.bdf);
  const pcie = fn === undefined ? 0 : pciCapabilityFind(fn.config, PCI_CAP_ID_EXP);
  if (pcie !== 0) dom0ConfigWrite(host, vf.bdf, pcie + PCI_EXP_DEVCTL, 2, PCI_EXP_DEVCTL_BCR_FLR);
  if (host.state.io.xenVtd.devices.has(vf.bdf)) vtdDeassignDevice(host, vf.bdf);
  host.emit('nic.vf', { vf: vf.vf, bdf: vf.bdf, dom: NO_DOMAIN, mac: vf.mac, vlan: vf.vlan, spoofcheck: vf.spoofcheck });
}

/** nic.vf: the PF driver configured a VF (its registers stay as the device holds them). */
export function applyNicVf(state: HostState, e: EventOf<'nic.vf'>): void {
  const io = state.io;
  const regs = io.vfs.find((v) => v.vf === e.vf)?.regs ?? {};
  const vf = { vf: e.vf, bdf: e.bdf, dom: e.dom, mac: e.mac, vlan: e.vlan, spoofcheck: e.spoofcheck, regs: { ...regs } };
  io.vfs = [...io.vfs.filter((v) => v.vf !== e.vf), vf].sort((a, b) => a.vf - b.vf);
}

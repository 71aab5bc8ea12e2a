/**
 * The SR-IOV NIC's virtual functions (Intel 82599, one tx and one rx queue per VF): the PF
 * driver's set-up, the VF register file behind BAR0, the MSI-X table behind BAR3 as Xen's
 * vPCI traps it, and the transmit and receive controllers that walk the descriptor rings.
 *
 * Every register change is a `nic.reg` event, every BAR access a `pci.mmio`, every frame at
 * every point a `net.frame`. The bytes move along the profile's path: SIOM (siom.ts, DMA
 * through the IOMMU, dom0 not involved) in the secure profile, netback (netback.ts, dom0's
 * grant copies) in vanilla. The switch between VFs and the wire decides in network.ts.
 */
import { assert } from '../../../events/errors.ts';
import { NO_DOMAIN, type DomainId } from '../../../events/schema.ts';
import { hasFlaw } from '../flaws.ts';
import type { Machine } from '../../machine/machine.ts';
import {
  NIC_VF_BAR_MSIX, PCI_BASE_ADDRESS_0, PCI_BASE_ADDRESS_4, PCI_CAP_ID_EXP, PCI_COMMAND, PCI_COMMAND_MASTER,
  PCI_COMMAND_MEMORY, PCI_EXP_DEVCTL, PCI_EXP_DEVCTL_BCR_FLR, PCI_MSIX_ENTRY_CTRL_MASKBIT, PCI_MSIX_ENTRY_DATA,
  PCI_MSIX_ENTRY_LOWER_ADDR, PCI_MSIX_ENTRY_UPPER_ADDR, PCI_MSIX_ENTRY_VECTOR_CTRL, PCI_SRIOV_BAR, PCI_SRIOV_CTRL,
  PCI_SRIOV_CTRL_MSE, PCI_SRIOV_CTRL_VFE, PCI_SRIOV_NUM_VF, pciCapabilityFind, pciConfigWrite, pciFunctionAt,
  pciGetLe, type PciFunction,
} from '../../hardware/pci/index.ts';
import type { MachineState } from '../../machine/state.ts';
import { parseFrame } from '../../hardware/nic/ethernet.ts';
import { NIC_PF_BDF, type NicVf } from './io-state.ts';
import { netbackNotify, netbackRead, netbackReceive, netbackTransmit, netbackUp, netbackWrite } from './netback.ts';
import { switchDecide, type SwitchConfig, type Verdict } from '../../hardware/nic/switch.ts';
import {
  DCTL_ENABLE, DESC_BYTES, EICR_RX, EICR_TX, FRAME_MAX_BYTES, RX_BUFFER_BYTES, RXD_STA_DD, RXD_STA_EOP, TXD_CMD_EOP,
  TXD_CMD_RS, TXD_STA_DD, VF_REGISTERS, VFCTRL, VFCTRL_RST, VFEICR, VFEICS, VFEIMC, VFEIMS, VFMACH, VFMACL,
  VFSTATUS, VFSTATUS_LU, VFTDT,
} from '../../hardware/nic/registers.ts';
import { siomRead, siomReceive, siomTransmit, siomWrite } from './siom.ts';
import { msiProgram, interruptRequest, vtdAssignDevice, vtdDeassignDevice } from '../vtd-driver/vtd-driver.ts';

// ---- the PF driver: SR-IOV set-up ----------------------------------------------------------

/** Host MMIO the PF driver gives the NIC: the PF's BARs, then VF BAR0 and VF BAR3 (64 VFs of 16 KiB each). */
export const NIC_PF_BAR0_BASE = 0xd000_0000;
export const NIC_PF_BAR4_BASE = 0xd008_0000;
export const NIC_VF_BAR0_BASE = 0xe000_0000;
export const NIC_VF_BAR3_BASE = 0xe010_0000;

/** dom0 writes a configuration register of a function; the pci model says what lands. */
function dom0ConfigWrite(m: Machine, bdf: number, offset: number, size: number, value: number): void {
  const effect = pciConfigWrite(m.state.io.pci, bdf, offset, size, value).effects[0];
  assert(effect.kind === 'pci.cfg', 'a configuration write begins with its cycle');
  m.emit('pci.cfg', { dom: 0, bdf, offset, size, write: true, value: effect.value, present: effect.present });
}

function pf(state: MachineState): PciFunction {
  const fn = state.io.pci.functions.get(NIC_PF_BDF);
  assert(fn?.sriov !== undefined, 'the NIC PF with its SR-IOV capability is not on the bus');
  return fn;
}

/**
 * dom0's PF driver (ixgbe with max_vfs) brings the NIC up: the PF's BARs and command
 * register, then SR-IOV: NumVFs, the VF BAR0/BAR3 bases, VF Enable with VF MSE (which
 * creates the VFs). Does nothing when the VFs exist already.
 */
export function nicBoot(m: Machine): void {
  const fn = pf(m.state);
  if (fn.sriov!.vfs.length > 0) return;
  const cap = fn.sriov!.capOffset;
  dom0ConfigWrite(m, NIC_PF_BDF, PCI_BASE_ADDRESS_0, 4, NIC_PF_BAR0_BASE);
  dom0ConfigWrite(m, NIC_PF_BDF, PCI_BASE_ADDRESS_0 + 4, 4, 0);
  dom0ConfigWrite(m, NIC_PF_BDF, PCI_BASE_ADDRESS_4, 4, NIC_PF_BAR4_BASE);
  dom0ConfigWrite(m, NIC_PF_BDF, PCI_BASE_ADDRESS_4 + 4, 4, 0);
  dom0ConfigWrite(m, NIC_PF_BDF, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
  dom0ConfigWrite(m, NIC_PF_BDF, cap + PCI_SRIOV_NUM_VF, 2, m.state.config.network.vfs);
  // VF BAR0 is the SR-IOV capability's BAR 0, VF BAR3 its BAR 3: each 64-bit, low dword first.
  dom0ConfigWrite(m, NIC_PF_BDF, cap + PCI_SRIOV_BAR, 4, NIC_VF_BAR0_BASE);
  dom0ConfigWrite(m, NIC_PF_BDF, cap + PCI_SRIOV_BAR + 4, 4, 0);
  dom0ConfigWrite(m, NIC_PF_BDF, cap + PCI_SRIOV_BAR + 12, 4, NIC_VF_BAR3_BASE);
  dom0ConfigWrite(m, NIC_PF_BDF, cap + PCI_SRIOV_BAR + 16, 4, 0);
  dom0ConfigWrite(m, NIC_PF_BDF, cap + PCI_SRIOV_CTRL, 2, PCI_SRIOV_CTRL_VFE | PCI_SRIOV_CTRL_MSE);
}

// ---- the register file ---------------------------------------------------------------------

/** Register names by BAR0 offset. */
const REGISTER_AT = new Map(Object.entries(VF_REGISTERS).map(([name, offset]) => [offset, name]));

/**
 * Model registers for MSI-X entry 0 as Xen's vPCI keeps them: the guest's own view of the
 * entry (what it wrote, what it reads back), the remappable message Xen put in the real
 * table, and the pending bit of a message raised while the entry was masked.
 */
const MSIX_ADDR = 'MSIX0.addr';
const MSIX_DATA = 'MSIX0.data';
const MSIX_CTRL = 'MSIX0.ctrl';
const MSIX_PENDING = 'MSIX0.pending';
const MSIX_HOST_ADDR = 'MSIX0.hostAddr';
const MSIX_HOST_DATA = 'MSIX0.hostData';

/** The PBA's place in BAR3 (sriov-nic.ts: table at 0, PBA at 0x2000). */
const MSIX_PBA_OFFSET = 0x2000;

/** The VF with number `vf` as the state holds it now. */
function vfNumbered(state: MachineState, vf: number): NicVf {
  const found = state.io.vfs.find((v) => v.vf === vf);
  assert(found !== undefined, () => `VF ${vf} was never configured`);
  return found;
}

/** The VF assigned to `dom`, if any. */
export function nicVfOf(state: MachineState, dom: DomainId): NicVf | undefined {
  return dom === NO_DOMAIN ? undefined : state.io.vfs.find((v) => v.dom === dom);
}

function reg(m: Machine, vf: number, name: string): number {
  return vfNumbered(m.state, vf).regs[name] ?? 0;
}

/** The device changes a register: one nic.reg, only when the value changes. */
function setReg(m: Machine, vf: number, name: string, value: number): void {
  const v = value >>> 0;
  if (reg(m, vf, name) !== v || !(name in vfNumbered(m.state, vf).regs)) m.emit('nic.reg', { vf, reg: name, value: v });
}

/** Every register at its reset value: link up, the forced MAC in VFMACL/VFMACH, the MSI-X entry masked. */
function resetRegisters(m: Machine, vf: number, mac: string): void {
  const bytes = mac.split(':').map((h) => Number.parseInt(h, 16));
  const values: Record<string, number> = {};
  for (const name of Object.keys(VF_REGISTERS)) values[name] = 0;
  values.VFSTATUS = VFSTATUS_LU;
  values.VFMACL = (bytes[0] | (bytes[1] << 8) | (bytes[2] << 16) | (bytes[3] << 24)) >>> 0;
  values.VFMACH = bytes[4] | (bytes[5] << 8);
  Object.assign(values, { [MSIX_ADDR]: 0, [MSIX_DATA]: 0, [MSIX_CTRL]: PCI_MSIX_ENTRY_CTRL_MASKBIT, [MSIX_PENDING]: 0, [MSIX_HOST_ADDR]: 0, [MSIX_HOST_DATA]: 0 });
  for (const [name, value] of Object.entries(values)) m.emit('nic.reg', { vf, reg: name, value });
}

/** VFCTRL.RST: the queues stop and forget their rings; the interrupt state clears. */
function resetQueues(m: Machine, vf: number): void {
  for (const name of ['VFRXDCTL', 'VFTXDCTL', 'VFRDBAL', 'VFRDBAH', 'VFRDLEN', 'VFRDH', 'VFRDT', 'VFTDBAL', 'VFTDBAH', 'VFTDLEN', 'VFTDH', 'VFTDT', 'VFEICR', 'VFEIMS']) {
    setReg(m, vf, name, 0);
  }
}

// ---- assignment ----------------------------------------------------------------------------

/**
 * Gives `dom` a VF (a domain with a `nic` in the scenario): the lowest free one, configured
 * by the PF driver with the domain's MAC, VLAN and spoof check, its registers reset; in the
 * secure profile Xen puts it in the domain's IOMMU domain. Returns the VF number, or -1 when
 * the domain has no nic, the VFs are not enabled, or none is free. A second call is a no-op.
 */
export function nicAttach(m: Machine, dom: DomainId): number {
  const domain = m.state.domains.get(dom);
  const spec = domain === undefined ? undefined : m.state.config.domains.find((d) => d.name === domain.name)?.nic;
  if (domain === undefined || domain.status !== 'running' || spec == null) return -1;
  const mine = nicVfOf(m.state, dom);
  if (mine !== undefined) return mine.vf;
  const taken = new Set(m.state.io.vfs.filter((v) => v.dom !== NO_DOMAIN).map((v) => v.vf));
  const free = pf(m.state).sriov!.vfs.find((fn) => !taken.has(fn.vf!.number));
  if (free === undefined) return -1;
  const vf = free.vf!.number;
  // The planted flaw vf-spoofcheck-off: the PF driver never turns MAC anti-spoofing on.
  const spoofcheck = spec.spoofcheck && !hasFlaw(m.state, 'vf-spoofcheck-off');
  m.emit('nic.vf', { vf, bdf: free.bdf, dom, mac: spec.mac, vlan: spec.vlan, spoofcheck });
  resetRegisters(m, vf, spec.mac);
  if (m.state.profile === 'secure' && m.state.io.xenVtd.enabled) vtdAssignDevice(m, free.bdf, dom);
  return vf;
}

/**
 * Takes `dom`'s VF away (deassign_vf, domain destruction): its queues stop, Xen resets the
 * function (FLR, which also clears its MSI-X table) and, in the secure profile, takes it out
 * of the IOMMU domain; the PF driver marks it free.
 */
export function nicDetach(m: Machine, dom: DomainId): void {
  const vf = nicVfOf(m.state, dom);
  if (vf === undefined) return;
  setReg(m, vf.vf, 'VFRXDCTL', 0);
  setReg(m, vf.vf, 'VFTXDCTL', 0);
  setReg(m, vf.vf, 'VFEIMS', 0);
  const fn = pciFunctionAt(m.state.io.pci, vf.bdf);
  const pcie = fn === undefined ? 0 : pciCapabilityFind(fn.config, PCI_CAP_ID_EXP);
  if (pcie !== 0) dom0ConfigWrite(m, vf.bdf, pcie + PCI_EXP_DEVCTL, 2, PCI_EXP_DEVCTL_BCR_FLR);
  if (m.state.io.xenVtd.devices.has(vf.bdf)) vtdDeassignDevice(m, vf.bdf);
  m.emit('nic.vf', { vf: vf.vf, bdf: vf.bdf, dom: NO_DOMAIN, mac: vf.mac, vlan: vf.vlan, spoofcheck: vf.spoofcheck });
}

// ---- the I/O path of the profile -----------------------------------------------------------

/** How the device's bytes reach guest memory and which buffers a frame passes. */
interface IoPath {
  /** The switch checks source MACs (the 82599's embedded switch) or not (dom0's bridge). */
  antiSpoof: boolean;
  /**
   * The VF is the guest's own (assigned; Xen's vPCI programs its real MSI-X table) or dom0's
   * emulation of one (the guest's MSI-X entry is all there is).
   */
  passthrough: boolean;
  /** Whether anything moves now. */
  up(m: Machine): boolean;
  read(m: Machine, vf: NicVf, gpa: number, len: number, dir: 'tx' | 'rx'): Uint8Array | undefined;
  /** `frame`: the bytes are a frame (netback copies those through a grant). */
  write(m: Machine, vf: NicVf, gpa: number, data: Uint8Array, dir: 'tx' | 'rx', frame: boolean): boolean;
  transmit(m: Machine, vf: NicVf, frame: Uint8Array): Verdict;
  receive(m: Machine, vf: NicVf, frame: Uint8Array): Verdict;
  /** What a failed memory access is called on this path. */
  fault: Verdict;
}

const SIOM_PATH: IoPath = {
  antiSpoof: true,
  passthrough: true,
  up: () => true,
  read: (m, vf, gpa, len) => siomRead(m, vf, gpa, len),
  write: (m, vf, gpa, data) => siomWrite(m, vf, gpa, data),
  transmit: siomTransmit,
  receive: siomReceive,
  fault: 'dma-fault',
};

const NETBACK_PATH: IoPath = {
  antiSpoof: false,
  passthrough: false,
  up: netbackUp,
  read: netbackRead,
  write: netbackWrite,
  transmit: netbackTransmit,
  receive: netbackReceive,
  fault: 'grant-fault',
};

function pathOf(m: Machine): IoPath {
  return m.state.profile === 'secure' ? SIOM_PATH : NETBACK_PATH;
}

// ---- interrupts ----------------------------------------------------------------------------

/**
 * MSI-X entry 0's message and mask bit: for an assigned VF the real table, where Xen put the
 * remappable message; for dom0's emulated one the entry as the guest wrote it.
 */
function msixEntry(m: Machine, vf: NicVf): { address: number; data: number; masked: boolean } | undefined {
  if (!pathOf(m).passthrough) {
    const regs = vf.regs;
    return { address: regs[MSIX_ADDR] ?? 0, data: regs[MSIX_DATA] ?? 0, masked: ((regs[MSIX_CTRL] ?? 1) & PCI_MSIX_ENTRY_CTRL_MASKBIT) !== 0 };
  }
  const table = pciFunctionAt(m.state.io.pci, vf.bdf)?.msixTable;
  if (table === undefined) return undefined;
  return {
    address: pciGetLe(table, PCI_MSIX_ENTRY_LOWER_ADDR, 4),
    data: pciGetLe(table, PCI_MSIX_ENTRY_DATA, 4),
    masked: (table[PCI_MSIX_ENTRY_VECTOR_CTRL] & PCI_MSIX_ENTRY_CTRL_MASKBIT) !== 0,
  };
}

/**
 * The VF signals MSI-X entry 0 (all of its causes share it). An assigned VF writes the
 * message, which the interrupt remapping unit checks and routes; dom0's emulated one has Xen
 * inject it. A masked entry keeps the message pending until unmasked; an entry never
 * programmed has no message to send.
 */
function msixSignal(m: Machine, vf: number): void {
  const v = vfNumbered(m.state, vf);
  const entry = msixEntry(m, v);
  if (entry === undefined || entry.address === 0) return;
  if (entry.masked) {
    setReg(m, vf, MSIX_PENDING, 1);
    return;
  }
  setReg(m, vf, MSIX_PENDING, 0);
  if (pathOf(m).passthrough) interruptRequest(m, v.bdf, entry.address, entry.data);
  else netbackNotify(m, v, entry.address, entry.data);
}

/** Interrupts when a cause is set and enabled in the mask (EICR & EIMS). */
function signalIfEnabled(m: Machine, vf: number): void {
  if ((reg(m, vf, 'VFEICR') & reg(m, vf, 'VFEIMS')) !== 0) msixSignal(m, vf);
}

/** A cause happens: EICR records it; the interrupt follows if it is enabled. */
function raise(m: Machine, vf: number, cause: number): void {
  setReg(m, vf, 'VFEICR', reg(m, vf, 'VFEICR') | cause);
  signalIfEnabled(m, vf);
}

// ---- rings ---------------------------------------------------------------------------------

interface Ring {
  base: number;
  count: number;
  head: number;
  tail: number;
}

/** A queue's ring from its registers, or undefined when the queue is off or malformed. */
function ringOf(m: Machine, vf: number, q: 'R' | 'T'): Ring | undefined {
  const r = (name: string): number => reg(m, vf, `VF${q}D${name}`);
  if ((reg(m, vf, q === 'R' ? 'VFRXDCTL' : 'VFTXDCTL') & DCTL_ENABLE) === 0) return undefined;
  const count = Math.floor(r('LEN') / DESC_BYTES);
  const ring = { base: address64(r('BAH'), r('BAL')), count, head: r('H'), tail: r('T') };
  // A tail or head past the ring is a driver bug; the device does nothing with such a queue.
  return count > 0 && ring.head < count && ring.tail < count ? ring : undefined;
}

/** Where no memory answers: past the 52 physical address bits any x86 has. */
const ADDRESS_BEYOND = 2 ** 52;

/**
 * A 64-bit bus address from its halves. A guest may write any 64 bits; beyond 52 bits the
 * model saturates (no aliasing onto real memory), so the DMA faults there as it would.
 */
function address64(high: number, low: number): number {
  return high >= ADDRESS_BEYOND / 2 ** 32 ? ADDRESS_BEYOND : high * 2 ** 32 + low;
}

function u64(bytes: Uint8Array, at: number): number {
  return address64(pciGetLe(bytes, at + 4, 4), pciGetLe(bytes, at, 4));
}

/** A frame the transmit controller put together from one or more descriptors. */
interface Gather {
  parts: Uint8Array[];
  bytes: number;
}

/** Reads one transmit descriptor's buffer into the frame; false when the read faulted. */
function fetchBuffer(m: Machine, vf: NicVf, desc: Uint8Array, gather: Gather): boolean {
  const length = Math.min(pciGetLe(desc, 8, 2), FRAME_MAX_BYTES - gather.bytes);
  if (length === 0) return true;
  const data = pathOf(m).read(m, vf, u64(desc, 0), length, 'tx');
  if (data === undefined) return false;
  gather.parts.push(data);
  gather.bytes += length;
  return true;
}

function joined(gather: Gather): Uint8Array {
  const frame = new Uint8Array(gather.bytes);
  let at = 0;
  for (const part of gather.parts) {
    frame.set(part, at);
    at += part.length;
  }
  return frame;
}

/**
 * The transmit controller after a TDT write: descriptors from TDH up to TDT, each read from
 * the ring, its buffer read, DD written back when RS asks for it, TDH advanced; a frame goes
 * out at EOP. A fault stalls the queue at the descriptor (the 82599 stops a queue whose DMA
 * fails). EICR.TX is set when a descriptor was written back.
 */
function transmitRing(m: Machine, vf: number): void {
  const path = pathOf(m);
  const ring = ringOf(m, vf, 'T');
  if (ring === undefined || !path.up(m)) return;
  sendDeferred(m, vf);
  let gather: Gather = { parts: [], bytes: 0 };
  let written = false;
  for (let head = ring.head, n = 0; head !== ring.tail && n < ring.count; n++) {
    const v = vfNumbered(m.state, vf);
    const at = ring.base + head * DESC_BYTES;
    const desc = path.read(m, v, at, DESC_BYTES, 'tx');
    if (desc === undefined || !fetchBuffer(m, v, desc, gather)) {
      m.emit('net.frame', { at: `vf${vf}.tx`, dom: v.dom, vlan: v.vlan, verdict: path.fault, frame: joined(gather) });
      break;
    }
    if ((desc[11] & TXD_CMD_RS) !== 0) {
      written = path.write(m, v, at + 12, Uint8Array.of(desc[12] | TXD_STA_DD), 'tx', false) || written;
    }
    head = (head + 1) % ring.count;
    setReg(m, vf, 'VFTDH', head);
    if ((desc[11] & TXD_CMD_EOP) !== 0) {
      if (!deferAfterCheck(m, vf, desc, gather)) sendFrame(m, vf, joined(gather));
      gather = { parts: [], bytes: 0 };
    }
  }
  // A frame the driver left without EOP at the tail goes as it is: the model keeps no half frames.
  if (gather.parts.length > 0) sendFrame(m, vf, joined(gather));
  if (written) raise(m, vf, EICR_TX);
}

/**
 * Runs every assigned VF's transmit controller over what its driver queued: for when dom0's
 * backend comes back up (netback.state up), so doorbells rung while it was down complete.
 */
export function nicServiceQueues(m: Machine): void {
  for (const vf of m.state.io.vfs.filter((v) => v.dom !== NO_DOMAIN).map((v) => v.vf)) transmitRing(m, vf);
}

/**
 * The receive controller puts a frame in the VF's ring: the descriptor at RDH gives the
 * buffer, the frame is written there, the descriptor written back (length, DD | EOP), RDH
 * advanced. No descriptor the driver gave (RDH == RDT, or the queue off): dropped.
 */
function receiveIntoRing(m: Machine, vf: number, frame: Uint8Array): Verdict {
  const path = pathOf(m);
  const ring = ringOf(m, vf, 'R');
  if (ring === undefined || ring.head === ring.tail) return 'no-rx-descriptor';
  const v = vfNumbered(m.state, vf);
  const at = ring.base + ring.head * DESC_BYTES;
  const desc = path.read(m, v, at, DESC_BYTES, 'rx');
  if (desc === undefined) return path.fault;
  const data = frame.subarray(0, RX_BUFFER_BYTES);
  if (!path.write(m, v, u64(desc, 0), data, 'rx', true)) return path.fault;
  // Legacy write-back format: the buffer address stays; length, checksum, status, errors, VLAN follow.
  const writeBack = Uint8Array.of(data.length & 0xff, data.length >> 8, 0, 0, RXD_STA_DD | RXD_STA_EOP, 0, 0, 0);
  if (!path.write(m, v, at + 8, writeBack, 'rx', false)) return path.fault;
  setReg(m, vf, 'VFRDH', (ring.head + 1) % ring.count);
  return 'ok';
}

// ---- frames through the switch -------------------------------------------------------------

function switchConfig(m: Machine): SwitchConfig {
  return {
    securityGroups: m.state.config.network.securityGroups,
    domainName: (dom) => m.state.domains.get(dom)?.name,
    antiSpoof: pathOf(m).antiSpoof,
  };
}

/**
 * A frame the VF fetched from its guest enters the path, leaves the VF, meets the switch.
 * `checked`: the switch's source check was already made (on another fetch of the frame).
 */
function sendFrame(m: Machine, vf: number, frame: Uint8Array, checked = false): void {
  const v = vfNumbered(m.state, vf);
  const verdict = pathOf(m).transmit(m, v, frame);
  m.emit('net.frame', { at: `vf${vf}.tx`, dom: v.dom, vlan: v.vlan, verdict, frame: frame.slice() });
  if (verdict === 'ok') forward(m, { vf }, frame, v.dom, checked);
}

const DEFERRED_ADDRESS = 'DEFERRED.addr';
const DEFERRED_LENGTH = 'DEFERRED.len';

/**
 * The planted flaw double-fetch-descriptor (XSA-155's class): the device checks a one-buffer
 * frame when it fetches it, and fetches the buffer again to send it at the next doorbell,
 * so what the guest writes in between goes out unchecked. True when the frame was deferred.
 */
function deferAfterCheck(m: Machine, vf: number, desc: Uint8Array, gather: Gather): boolean {
  if (!hasFlaw(m.state, 'double-fetch-descriptor') || gather.parts.length !== 1) return false;
  const frame = joined(gather);
  if (switchDecide(m.state.io.vfs, switchConfig(m), frame, { vf }).verdict !== 'ok') return false;
  setReg(m, vf, DEFERRED_ADDRESS, u64(desc, 0));
  setReg(m, vf, DEFERRED_LENGTH, frame.length);
  return true;
}

/** The second fetch of a deferred frame (see deferAfterCheck), sent as already checked. */
function sendDeferred(m: Machine, vf: number): void {
  const length = reg(m, vf, DEFERRED_LENGTH);
  if (length === 0) return;
  setReg(m, vf, DEFERRED_LENGTH, 0);
  const frame = pathOf(m).read(m, vfNumbered(m.state, vf), reg(m, vf, DEFERRED_ADDRESS), length, 'tx');
  if (frame !== undefined) sendFrame(m, vf, frame, true);
}

/** The switch decides; the frame goes to each VF and to the wire it named. */
function forward(m: Machine, from: { vf: number } | 'wire', frame: Uint8Array, dom: DomainId, checked = false): void {
  const config = switchConfig(m);
  const d = switchDecide(m.state.io.vfs, checked ? { ...config, antiSpoof: false } : config, frame, from);
  m.emit('net.frame', { at: 'switch', dom, vlan: d.vlan, verdict: d.verdict, frame: d.frame.slice() });
  for (const out of d.out) {
    if (out.to === 'wire') m.emit('net.frame', { at: 'wire.out', dom, vlan: d.vlan, verdict: 'ok', frame: d.frame.slice() });
    else deliver(m, out.to, d.inner, out.verdict);
  }
}

/** A frame for a VF: through the path's receive side into the guest's ring, then the interrupt. */
function deliver(m: Machine, vf: number, frame: Uint8Array, switchVerdict: Verdict): void {
  const v = vfNumbered(m.state, vf);
  let verdict = switchVerdict;
  if (verdict === 'ok') verdict = pathOf(m).receive(m, v, frame);
  if (verdict === 'ok') verdict = receiveIntoRing(m, vf, frame);
  m.emit('net.frame', { at: `vf${vf}.rx`, dom: v.dom, vlan: v.vlan, verdict, frame: frame.slice() });
  if (verdict === 'ok') raise(m, vf, EICR_RX);
}

/**
 * A frame arrives from the external wire (scenario network.wire[index]; a step of its own):
 * it enters the switch on the uplink, then the profile's receive path. With dom0's backend
 * down (vanilla), the bridge is gone and the frame is dropped there.
 */
export function wireReceive(m: Machine, index: number): void {
  const wire = m.state.config.network.wire[index];
  assert(wire !== undefined, () => `no wire frame ${index}`);
  m.emit('wire.rx', { index, frame: wire.frame.slice() });
  wireDeliver(m, wire.frame);
}

/** A frame from the wire on its way in (a scenario's wire frame, or an input's `wire.frame`). */
export function wireDeliver(m: Machine, frame: Uint8Array): void {
  const vlan = parseFrame(frame)?.vlan ?? 0;
  m.emit('net.frame', { at: 'wire.in', dom: NO_DOMAIN, vlan, verdict: 'ok', frame: frame.slice() });
  if (!pathOf(m).up(m)) {
    m.emit('net.frame', { at: 'switch', dom: NO_DOMAIN, vlan, verdict: 'backend-down', frame: frame.slice() });
    return;
  }
  forward(m, 'wire', frame, NO_DOMAIN);
}

// ---- MMIO: BAR0 registers ------------------------------------------------------------------

/** The bits of an access of `size` bytes at `offset` within its dword. */
function lane(offset: number, size: number): { shift: number; mask: number } {
  const shift = (offset & 3) * 8;
  return { shift, mask: (2 ** (8 * size) - 1) * 2 ** shift };
}

function laneRead(dword: number, offset: number, size: number): number {
  return Math.floor((dword >>> 0) / 2 ** lane(offset, size).shift) % 2 ** (8 * size);
}

/** The dword after a write of `size` bytes (other bytes keep `old`). */
function laneMerge(old: number, offset: number, size: number, value: number): number {
  const { shift, mask } = lane(offset, size);
  const written = ((value >>> 0) % 2 ** (8 * size)) * 2 ** shift;
  return ((old >>> 0) - ((old >>> 0) & mask) + written) >>> 0;
}

/**
 * Implemented bits of registers narrower than 32 (82599 datasheet 8.3: ring lengths have 20
 * bits, heads and tails 16), which also bounds the work one doorbell can ask for.
 */
const REGISTER_BITS: Record<string, number> = {
  VFRDLEN: 0xf_ffff, VFTDLEN: 0xf_ffff, VFRDH: 0xffff, VFRDT: 0xffff, VFTDH: 0xffff, VFTDT: 0xffff,
};

/** What a register reads: write-only ones read 0. */
function registerValue(m: Machine, vf: number, dword: number): number {
  const name = REGISTER_AT.get(dword);
  if (name === undefined || dword === VFEICS || dword === VFEIMC) return 0;
  return reg(m, vf, name);
}

/** A read's effect on the device: EICR is read-to-clear, the driver's read takes the causes. */
function registerReadEffect(m: Machine, vf: number, offset: number): void {
  if ((offset & ~3) === VFEICR && reg(m, vf, 'VFEICR') !== 0) setReg(m, vf, 'VFEICR', 0);
}

function registerWrite(m: Machine, vf: number, offset: number, size: number, value: number): void {
  const dword = offset & ~3;
  const name = REGISTER_AT.get(dword);
  if (name === undefined || dword === VFSTATUS || dword === VFMACL || dword === VFMACH) return;
  // Bits written by this access alone (the others 0): for the write-1-to-act registers.
  const bits = laneMerge(0, offset, size, value);
  switch (dword) {
    case VFCTRL:
      if ((bits & VFCTRL_RST) !== 0) resetQueues(m, vf);
      return;
    case VFEICR: setReg(m, vf, name, reg(m, vf, name) & ~bits); return;
    case VFEICS: raise(m, vf, bits); return;
    case VFEIMS:
      setReg(m, vf, name, reg(m, vf, name) | bits);
      signalIfEnabled(m, vf);
      return;
    case VFEIMC: setReg(m, vf, 'VFEIMS', reg(m, vf, 'VFEIMS') & ~bits); return;
    default:
      setReg(m, vf, name, laneMerge(reg(m, vf, name), offset, size, value) & (REGISTER_BITS[name] ?? 0xffff_ffff));
      // The tail is the doorbell: the transmit controller runs now; RDT just gives descriptors.
      if (dword === VFTDT) transmitRing(m, vf);
  }
}

// ---- MMIO: BAR3, the MSI-X table as Xen's vPCI traps it ------------------------------------

/** The guest's view of MSI-X entry 0 and the PBA; other entries read as at reset. */
function msixRead(m: Machine, vf: number, offset: number, size: number): number {
  const dword = offset & ~3;
  const view: Record<number, number> = {
    [PCI_MSIX_ENTRY_LOWER_ADDR]: reg(m, vf, MSIX_ADDR),
    [PCI_MSIX_ENTRY_DATA]: reg(m, vf, MSIX_DATA),
    [PCI_MSIX_ENTRY_VECTOR_CTRL]: reg(m, vf, MSIX_CTRL),
    [MSIX_PBA_OFFSET]: reg(m, vf, MSIX_PENDING),
  };
  const entryControl = dword < MSIX_PBA_OFFSET && dword % 16 === PCI_MSIX_ENTRY_VECTOR_CTRL ? PCI_MSIX_ENTRY_CTRL_MASKBIT : 0;
  return laneRead(view[dword] ?? entryControl, offset, size);
}

/** Xen writes a dword of the real table entry 0 (the fold applies it to the function). */
function xenTableWrite(m: Machine, vf: NicVf, offset: number, value: number): void {
  m.emit('pci.mmio', { dom: 0, bdf: vf.bdf, bar: NIC_VF_BAR_MSIX, offset, size: 4, write: true, value: value >>> 0 });
}

/**
 * Xen's vPCI puts its own message in the real entry: the guest's write to the table (which
 * the bus saw) must not leave the guest's compatibility-format message there.
 */
function xenMessageRestore(m: Machine, vf: NicVf, dword: number): void {
  const own: Record<number, number> = {
    [PCI_MSIX_ENTRY_LOWER_ADDR]: reg(m, vf.vf, MSIX_HOST_ADDR), [PCI_MSIX_ENTRY_UPPER_ADDR]: 0, [PCI_MSIX_ENTRY_DATA]: reg(m, vf.vf, MSIX_HOST_DATA),
  };
  if (reg(m, vf.vf, MSIX_HOST_ADDR) !== 0) xenTableWrite(m, vf, dword, own[dword]);
}

/**
 * The guest writes the data (its vector): Xen sets up the remapped interrupt (msiProgram: an
 * IRTE for this VF, to the guest's vCPU 0) and writes the remappable message into the real
 * table. A write that leaves the vector as it was only restores Xen's message.
 */
function msixDataWrite(m: Machine, vf: NicVf, offset: number, size: number, value: number): void {
  const before = reg(m, vf.vf, MSIX_DATA) & 0xff;
  setReg(m, vf.vf, MSIX_DATA, laneMerge(reg(m, vf.vf, MSIX_DATA), offset, size, value));
  if (!pathOf(m).passthrough) return;
  const vector = reg(m, vf.vf, MSIX_DATA) & 0xff;
  if (reg(m, vf.vf, MSIX_HOST_ADDR) !== 0 && vector === before) return xenMessageRestore(m, vf, PCI_MSIX_ENTRY_DATA);
  const message = msiProgram(m, vf.bdf, vector, vf.dom, 0);
  setReg(m, vf.vf, MSIX_HOST_ADDR, message.address);
  setReg(m, vf.vf, MSIX_HOST_DATA, message.data);
  xenTableWrite(m, vf, PCI_MSIX_ENTRY_LOWER_ADDR, message.address);
  xenTableWrite(m, vf, PCI_MSIX_ENTRY_UPPER_ADDR, 0);
  xenTableWrite(m, vf, PCI_MSIX_ENTRY_DATA, message.data);
}

/** The guest unmasks or masks entry 0: the bit goes through; unmasking sends a pending message. */
function msixControlWrite(m: Machine, vf: NicVf, offset: number, size: number, value: number): void {
  const control = laneMerge(reg(m, vf.vf, MSIX_CTRL), offset, size, value) & PCI_MSIX_ENTRY_CTRL_MASKBIT;
  setReg(m, vf.vf, MSIX_CTRL, control);
  if (pathOf(m).passthrough) xenTableWrite(m, vf, PCI_MSIX_ENTRY_VECTOR_CTRL, control);
  if (control === 0 && reg(m, vf.vf, MSIX_PENDING) !== 0) msixSignal(m, vf.vf);
}

/**
 * The guest writes entry 0 (other entries are not used: every cause signals entry 0). Xen
 * keeps the guest's address and data for the guest to read back.
 */
function msixWrite(m: Machine, vf: number, offset: number, size: number, value: number): void {
  const v = vfNumbered(m.state, vf);
  switch (offset & ~3) {
    case PCI_MSIX_ENTRY_DATA: return msixDataWrite(m, v, offset, size, value);
    case PCI_MSIX_ENTRY_VECTOR_CTRL: return msixControlWrite(m, v, offset, size, value);
    case PCI_MSIX_ENTRY_LOWER_ADDR:
      setReg(m, vf, MSIX_ADDR, laneMerge(reg(m, vf, MSIX_ADDR), offset, size, value));
      if (pathOf(m).passthrough) xenMessageRestore(m, v, PCI_MSIX_ENTRY_LOWER_ADDR);
      return;
    case PCI_MSIX_ENTRY_UPPER_ADDR:
      if (pathOf(m).passthrough) xenMessageRestore(m, v, PCI_MSIX_ENTRY_UPPER_ADDR);
      return;
  }
}

// ---- MMIO entry points ---------------------------------------------------------------------

const ALL_ONES = 0xffff_ffff;

/**
 * A guest's read inside its VF window (bar 0: registers, bar 3: MSI-X table), as the MMIO
 * emulation hands it over: recorded as pci.mmio with the VF's host routing id, then its
 * effect (EICR clears). A domain without a VF reads all ones (nothing claims the access).
 */
export function nicMmioRead(m: Machine, dom: DomainId, bar: number, offset: number, size: number): number {
  const v = nicVfOf(m.state, dom);
  if (v === undefined) {
    const value = ALL_ONES % 2 ** (8 * size);
    m.emit('pci.mmio', { dom, bdf: -1, bar, offset, size, write: false, value });
    return value;
  }
  const registers = bar === 0 ? laneRead(registerValue(m, v.vf, offset & ~3), offset, size) : 0;
  const read = bar === NIC_VF_BAR_MSIX ? msixRead(m, v.vf, offset, size) : registers;
  m.emit('pci.mmio', { dom, bdf: v.bdf, bar, offset, size, write: false, value: read });
  if (bar === 0) registerReadEffect(m, v.vf, offset);
  return read;
}

/**
 * A guest's write inside its VF window: recorded as pci.mmio, then its effect (mask and
 * cause registers, ring registers, the TDT doorbell, VFCTRL.RST, the MSI-X entry via Xen).
 * A domain without a VF writes into nothing.
 */
export function nicMmioWrite(m: Machine, dom: DomainId, bar: number, offset: number, size: number, value: number): void {
  const v = nicVfOf(m.state, dom);
  const written = (value >>> 0) % 2 ** (8 * size);
  m.emit('pci.mmio', { dom, bdf: v?.bdf ?? -1, bar, offset, size, write: true, value: written });
  if (v === undefined) return;
  if (bar === NIC_VF_BAR_MSIX) msixWrite(m, v.vf, offset, size, written);
  else if (bar === 0) registerWrite(m, v.vf, offset, size, written);
}

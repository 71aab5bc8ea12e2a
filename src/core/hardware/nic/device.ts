/**
 * The SR-IOV NIC's virtual function as a device (Intel 82599, one tx and one rx queue per
 * VF): its BAR0 register file, the interrupt causes it signals through MSI-X entry 0, the
 * transmit and receive controllers that walk the descriptor rings, and the embedded switch
 * its frames meet (switch.ts decides).
 *
 * The device knows nothing of Xen. It works through a NicPort: the VFs as they are, an
 * emitter for what it does (every register change is a `nic.reg`, every frame at every
 * point a `net.frame`), the I/O path its memory accesses and frames take (DMA through the
 * IOMMU with SIOM's buffers, or dom0's grant copies), and where its MSI-X messages go.
 */
import { assert } from '../../../events/errors.ts';
import { NO_DOMAIN, type DomainId, type EventFields, type EventOf } from '../../../events/schema.ts';
import { pciGetLe } from '../pci/index.ts';
import { parseFrame } from './ethernet.ts';
import {
  DCTL_ENABLE, DESC_BYTES, EICR_RX, EICR_TX, FRAME_MAX_BYTES, RX_BUFFER_BYTES, RXD_STA_DD, RXD_STA_EOP, TXD_CMD_EOP, TXD_CMD_RS,
  TXD_STA_DD, VF_REGISTERS, VFCTRL, VFCTRL_RST, VFEICR, VFEICS, VFEIMC, VFEIMS, VFMACH, VFMACL, VFSTATUS, VFSTATUS_LU, VFTDT,
} from './registers.ts';
import { switchDecide, type SwitchConfig, type Verdict } from './switch.ts';
import { vfNumbered, vfRegister, type NicVf } from './vf.ts';

/** How the device's bytes reach guest memory and which buffers its frames pass. */
export interface NicPath {
  /** Whether anything moves now. */
  up(): boolean;
  read(vf: NicVf, address: number, len: number, dir: 'tx' | 'rx'): Uint8Array | undefined;
  /** `frame`: the bytes are a frame (a path may copy those through a buffer of its own). */
  write(vf: NicVf, address: number, data: Uint8Array, dir: 'tx' | 'rx', frame: boolean): boolean;
  transmit(vf: NicVf, frame: Uint8Array): Verdict;
  receive(vf: NicVf, frame: Uint8Array): Verdict;
  /** What a failed memory access is called on this path. */
  fault: Verdict;
}

/** What the device's events are: register changes and frames. */
export type NicEventKind = 'nic.reg' | 'net.frame';

/** What the device is given to work with. */
export interface NicPort {
  /** The VFs as they are now (the fold replaces the list on every change). */
  vfs(): readonly NicVf[];
  emit<K extends NicEventKind>(kind: K, fields: EventFields<K>): void;
  readonly path: NicPath;
  /** The switch's rules: security groups, the domains' names, whether it checks source MACs. */
  switchConfig(): SwitchConfig;
  /** MSI-X entry 0 as the VF reads it when it signals: its message and mask bit. */
  msixEntry(vf: NicVf): { address: number; data: number; masked: boolean } | undefined;
  /** The VF writes its MSI-X message: an interrupt request upstream. */
  signal(vf: NicVf, address: number, data: number): void;
  /** The planted flaw double-fetch-descriptor (XSA-155's class) is in this device. */
  readonly doubleFetch: boolean;
}

/** The pending bit of MSI-X entry 0, as the device keeps it (a model register of the PBA). */
export const MSIX_PENDING = 'MSIX0.pending';

// ---- registers -------------------------------------------------------------------------------

/** Register names by BAR0 offset. */
const REGISTER_AT = new Map(Object.entries(VF_REGISTERS).map(([name, offset]) => [offset, name]));

function reg(port: NicPort, vf: number, name: string): number {
  return vfRegister(vfNumbered(port.vfs(), vf), name);
}

/** nic.reg: the device changed a register. */
export function applyNicReg(nic: { vfs: NicVf[] }, e: EventOf<'nic.reg'>): void {
  const vf = nic.vfs.find((v) => v.vf === e.vf);
  assert(vf !== undefined, () => `nic.reg names VF ${e.vf}, which the PF driver never configured`);
  vf.regs[e.reg] = e.value;
}

/** The device changes a register: one nic.reg, only when the value changes. */
export function nicSetRegister(port: Pick<NicPort, 'vfs' | 'emit'>, vf: number, name: string, value: number): void {
  const v = value >>> 0;
  const current = vfNumbered(port.vfs(), vf);
  if (vfRegister(current, name) !== v || !(name in current.regs)) port.emit('nic.reg', { vf, reg: name, value: v });
}

/**
 * Every BAR0 register at its reset value, link up and the forced MAC in VFMACL/VFMACH; then
 * `others`, registers the function's other keepers hold with it (Xen's view of MSI-X).
 */
export function nicResetRegisters(port: Pick<NicPort, 'emit'>, vf: number, mac: string, others: Record<string, number>): void {
  const bytes = mac.split(':').map((h) => Number.parseInt(h, 16));
  const values: Record<string, number> = {};
  for (const name of Object.keys(VF_REGISTERS)) values[name] = 0;
  values.VFSTATUS = VFSTATUS_LU;
  values.VFMACL = (bytes[0] | (bytes[1] << 8) | (bytes[2] << 16) | (bytes[3] << 24)) >>> 0;
  values.VFMACH = bytes[4] | (bytes[5] << 8);
  Object.assign(values, others);
  for (const [name, value] of Object.entries(values)) port.emit('nic.reg', { vf, reg: name, value });
}

/** VFCTRL.RST: the queues stop and forget their rings; the interrupt state clears. */
function resetQueues(port: NicPort, vf: number): void {
  for (const name of ['VFRXDCTL', 'VFTXDCTL', 'VFRDBAL', 'VFRDBAH', 'VFRDLEN', 'VFRDH', 'VFRDT', 'VFTDBAL', 'VFTDBAH', 'VFTDLEN', 'VFTDH', 'VFTDT', 'VFEICR', 'VFEIMS']) {
    nicSetRegister(port, vf, name, 0);
  }
}

/** The queues stop and interrupts are masked (the function is being taken away). */
export function nicQuiesce(port: Pick<NicPort, 'vfs' | 'emit'>, vf: number): void {
  nicSetRegister(port, vf, 'VFRXDCTL', 0);
  nicSetRegister(port, vf, 'VFTXDCTL', 0);
  nicSetRegister(port, vf, 'VFEIMS', 0);
}

// ---- interrupts ------------------------------------------------------------------------------

/**
 * The VF signals MSI-X entry 0 (all of its causes share it). A masked entry keeps the message
 * pending until unmasked; an entry never programmed has no message to send.
 */
export function nicSignal(port: NicPort, vf: number): void {
  const v = vfNumbered(port.vfs(), vf);
  const entry = port.msixEntry(v);
  if (entry === undefined || entry.address === 0) return;
  if (entry.masked) {
    nicSetRegister(port, vf, MSIX_PENDING, 1);
    return;
  }
  nicSetRegister(port, vf, MSIX_PENDING, 0);
  port.signal(v, entry.address, entry.data);
}

/** Interrupts when a cause is set and enabled in the mask (EICR & EIMS). */
function signalIfEnabled(port: NicPort, vf: number): void {
  if ((reg(port, vf, 'VFEICR') & reg(port, vf, 'VFEIMS')) !== 0) nicSignal(port, vf);
}

/** A cause happens: EICR records it; the interrupt follows if it is enabled. */
function raise(port: NicPort, vf: number, cause: number): void {
  nicSetRegister(port, vf, 'VFEICR', reg(port, vf, 'VFEICR') | cause);
  signalIfEnabled(port, vf);
}

// ---- rings -----------------------------------------------------------------------------------

interface Ring {
  base: number;
  count: number;
  head: number;
  tail: number;
}

/** A queue's ring from its registers, or undefined when the queue is off or malformed. */
function ringOf(port: NicPort, vf: number, q: 'R' | 'T'): Ring | undefined {
  const r = (name: string): number => reg(port, vf, `VF${q}D${name}`);
  if ((reg(port, vf, q === 'R' ? 'VFRXDCTL' : 'VFTXDCTL') & DCTL_ENABLE) === 0) return undefined;
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
function fetchBuffer(port: NicPort, vf: NicVf, desc: Uint8Array, gather: Gather): boolean {
  const length = Math.min(pciGetLe(desc, 8, 2), FRAME_MAX_BYTES - gather.bytes);
  if (length === 0) return true;
  const data = port.path.read(vf, u64(desc, 0), length, 'tx');
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
export function nicTransmitRing(port: NicPort, vf: number): void {
  const path = port.path;
  const ring = ringOf(port, vf, 'T');
  if (ring === undefined || !path.up()) return;
  sendDeferred(port, vf);
  let gather: Gather = { parts: [], bytes: 0 };
  let written = false;
  for (let head = ring.head, n = 0; head !== ring.tail && n < ring.count; n++) {
    const v = vfNumbered(port.vfs(), vf);
    const at = ring.base + head * DESC_BYTES;
    const desc = path.read(v, at, DESC_BYTES, 'tx');
    if (desc === undefined || !fetchBuffer(port, v, desc, gather)) {
      port.emit('net.frame', { at: `vf${vf}.tx`, dom: v.dom, vlan: v.vlan, verdict: path.fault, frame: joined(gather) });
      break;
    }
    if ((desc[11] & TXD_CMD_RS) !== 0) {
      written = path.write(v, at + 12, Uint8Array.of(desc[12] | TXD_STA_DD), 'tx', false) || written;
    }
    head = (head + 1) % ring.count;
    nicSetRegister(port, vf, 'VFTDH', head);
    if ((desc[11] & TXD_CMD_EOP) !== 0) {
      if (!deferAfterCheck(port, vf, desc, gather)) sendFrame(port, vf, joined(gather));
      gather = { parts: [], bytes: 0 };
    }
  }
  // A frame the driver left without EOP at the tail goes as it is: the model keeps no half frames.
  if (gather.parts.length > 0) sendFrame(port, vf, joined(gather));
  if (written) raise(port, vf, EICR_TX);
}

/**
 * Runs every assigned VF's transmit controller over what its driver queued: for when the
 * path comes back up, so doorbells rung while it was down complete.
 */
export function nicServiceQueues(port: NicPort): void {
  for (const vf of port.vfs().filter((v) => v.dom !== NO_DOMAIN).map((v) => v.vf)) nicTransmitRing(port, vf);
}

/**
 * The receive controller puts a frame in the VF's ring: the descriptor at RDH gives the
 * buffer, the frame is written there, the descriptor written back (length, DD | EOP), RDH
 * advanced. No descriptor the driver gave (RDH == RDT, or the queue off): dropped.
 */
function receiveIntoRing(port: NicPort, vf: number, frame: Uint8Array): Verdict {
  const path = port.path;
  const ring = ringOf(port, vf, 'R');
  if (ring === undefined || ring.head === ring.tail) return 'no-rx-descriptor';
  const v = vfNumbered(port.vfs(), vf);
  const at = ring.base + ring.head * DESC_BYTES;
  const desc = path.read(v, at, DESC_BYTES, 'rx');
  if (desc === undefined) return path.fault;
  const data = frame.subarray(0, RX_BUFFER_BYTES);
  if (!path.write(v, u64(desc, 0), data, 'rx', true)) return path.fault;
  // Legacy write-back format: the buffer address stays; length, checksum, status, errors, VLAN follow.
  const writeBack = Uint8Array.of(data.length & 0xff, data.length >> 8, 0, 0, RXD_STA_DD | RXD_STA_EOP, 0, 0, 0);
  if (!path.write(v, at + 8, writeBack, 'rx', false)) return path.fault;
  nicSetRegister(port, vf, 'VFRDH', (ring.head + 1) % ring.count);
  return 'ok';
}

// ---- frames through the switch ---------------------------------------------------------------

/**
 * A frame the VF fetched from its guest enters the path, leaves the VF, meets the switch.
 * `checked`: the switch's source check was already made (on another fetch of the frame).
 */
function sendFrame(port: NicPort, vf: number, frame: Uint8Array, checked = false): void {
  const v = vfNumbered(port.vfs(), vf);
  const verdict = port.path.transmit(v, frame);
  port.emit('net.frame', { at: `vf${vf}.tx`, dom: v.dom, vlan: v.vlan, verdict, frame: frame.slice() });
  if (verdict === 'ok') forward(port, { vf }, frame, v.dom, checked);
}

const DEFERRED_ADDRESS = 'DEFERRED.addr';
const DEFERRED_LENGTH = 'DEFERRED.len';

/**
 * The planted flaw double-fetch-descriptor (XSA-155's class): the device checks a one-buffer
 * frame when it fetches it, and fetches the buffer again to send it at the next doorbell,
 * so what the guest writes in between goes out unchecked. True when the frame was deferred.
 */
function deferAfterCheck(port: NicPort, vf: number, desc: Uint8Array, gather: Gather): boolean {
  if (!port.doubleFetch || gather.parts.length !== 1) return false;
  const frame = joined(gather);
  if (switchDecide(port.vfs(), port.switchConfig(), frame, { vf }).verdict !== 'ok') return false;
  nicSetRegister(port, vf, DEFERRED_ADDRESS, u64(desc, 0));
  nicSetRegister(port, vf, DEFERRED_LENGTH, frame.length);
  return true;
}

/** The second fetch of a deferred frame (see deferAfterCheck), sent as already checked. */
function sendDeferred(port: NicPort, vf: number): void {
  const length = reg(port, vf, DEFERRED_LENGTH);
  if (length === 0) return;
  nicSetRegister(port, vf, DEFERRED_LENGTH, 0);
  const frame = port.path.read(vfNumbered(port.vfs(), vf), reg(port, vf, DEFERRED_ADDRESS), length, 'tx');
  if (frame !== undefined) sendFrame(port, vf, frame, true);
}

/** The switch decides; the frame goes to each VF and to the wire it named. */
function forward(port: NicPort, from: { vf: number } | 'wire', frame: Uint8Array, dom: DomainId, checked = false): void {
  const config = port.switchConfig();
  const d = switchDecide(port.vfs(), checked ? { ...config, antiSpoof: false } : config, frame, from);
  port.emit('net.frame', { at: 'switch', dom, vlan: d.vlan, verdict: d.verdict, frame: d.frame.slice() });
  for (const out of d.out) {
    if (out.to === 'wire') port.emit('net.frame', { at: 'wire.out', dom, vlan: d.vlan, verdict: 'ok', frame: d.frame.slice() });
    else deliver(port, out.to, d.inner, out.verdict);
  }
}

/** A frame for a VF: through the path's receive side into the guest's ring, then the interrupt. */
function deliver(port: NicPort, vf: number, frame: Uint8Array, switchVerdict: Verdict): void {
  const v = vfNumbered(port.vfs(), vf);
  let verdict = switchVerdict;
  if (verdict === 'ok') verdict = port.path.receive(v, frame);
  if (verdict === 'ok') verdict = receiveIntoRing(port, vf, frame);
  port.emit('net.frame', { at: `vf${vf}.rx`, dom: v.dom, vlan: v.vlan, verdict, frame: frame.slice() });
  if (verdict === 'ok') raise(port, vf, EICR_RX);
}

/**
 * A frame from the external wire on its way in: it enters the switch on the uplink, then the
 * path's receive side. With the path down (dom0's bridge gone), it is dropped at the switch.
 */
export function nicWireDeliver(port: NicPort, frame: Uint8Array): void {
  const vlan = parseFrame(frame)?.vlan ?? 0;
  port.emit('net.frame', { at: 'wire.in', dom: NO_DOMAIN, vlan, verdict: 'ok', frame: frame.slice() });
  if (!port.path.up()) {
    port.emit('net.frame', { at: 'switch', dom: NO_DOMAIN, vlan, verdict: 'backend-down', frame: frame.slice() });
    return;
  }
  forward(port, 'wire', frame, NO_DOMAIN);
}

// ---- BAR0: the register file as MMIO -----------------------------------------------------------

/** The bits of an access of `size` bytes at `offset` within its dword. */
function lane(offset: number, size: number): { shift: number; mask: number } {
  const shift = (offset & 3) * 8;
  return { shift, mask: (2 ** (8 * size) - 1) * 2 ** shift };
}

/** The `size` bytes at `offset` of a dword. */
export function laneRead(dword: number, offset: number, size: number): number {
  return Math.floor((dword >>> 0) / 2 ** lane(offset, size).shift) % 2 ** (8 * size);
}

/** The dword after a write of `size` bytes (other bytes keep `old`). */
export function laneMerge(old: number, offset: number, size: number, value: number): number {
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

/** What a read of BAR0 returns: the register's bytes (write-only ones read 0). */
export function nicRegisterRead(port: NicPort, vf: number, offset: number, size: number): number {
  const dword = offset & ~3;
  const name = REGISTER_AT.get(dword);
  return laneRead(name === undefined || dword === VFEICS || dword === VFEIMC ? 0 : reg(port, vf, name), offset, size);
}

/** A read's effect on the device, after the read: EICR is read-to-clear (the driver takes the causes). */
export function nicRegisterReadEffect(port: NicPort, vf: number, offset: number): void {
  if ((offset & ~3) === VFEICR && reg(port, vf, 'VFEICR') !== 0) nicSetRegister(port, vf, 'VFEICR', 0);
}

/** A write of BAR0 and its effect: causes and masks, ring registers, the TDT doorbell, VFCTRL.RST. */
export function nicRegisterWrite(port: NicPort, vf: number, offset: number, size: number, value: number): void {
  const dword = offset & ~3;
  const name = REGISTER_AT.get(dword);
  if (name === undefined || dword === VFSTATUS || dword === VFMACL || dword === VFMACH) return;
  // Bits written by this access alone (the others 0): for the write-1-to-act registers.
  const bits = laneMerge(0, offset, size, value);
  switch (dword) {
    case VFCTRL:
      if ((bits & VFCTRL_RST) !== 0) resetQueues(port, vf);
      return;
    case VFEICR: nicSetRegister(port, vf, name, reg(port, vf, name) & ~bits); return;
    case VFEICS: raise(port, vf, bits); return;
    case VFEIMS:
      nicSetRegister(port, vf, name, reg(port, vf, name) | bits);
      signalIfEnabled(port, vf);
      return;
    case VFEIMC: nicSetRegister(port, vf, 'VFEIMS', reg(port, vf, 'VFEIMS') & ~bits); return;
    default:
      nicSetRegister(port, vf, name, laneMerge(reg(port, vf, name), offset, size, value) & (REGISTER_BITS[name] ?? 0xffff_ffff));
      // The tail is the doorbell: the transmit controller runs now; RDT just gives descriptors.
      if (dword === VFTDT) nicTransmitRing(port, vf);
  }
}

/**
 * The scripted guests' NIC driver: what `nic_setup`, `nic_tx`, `nic_rx` and `mmio` do. It
 * drives the VF exactly as the x86 driver does (configuration cycles through the guest's
 * virtual PCI bus, register writes through the BAR window, rings in guest memory), so the
 * device cannot tell a scripted tenant from a real one, and the fuzzer gets a cheap way to
 * put hostile descriptors in front of it.
 *
 * Layout in guest-physical memory: tx ring 0x4000, rx ring 0x4800 (RING_ENTRIES each), tx
 * buffers 0x5000 and 0x5800 (by descriptor, alternately), rx buffers 0x6000 + 0x800 * (i % 4).
 */
import type { DomainId } from '../../../events/schema.ts';
import { macBytes } from '../../hardware/nic/ethernet.ts';
import {
  DCTL_ENABLE, DESC_BYTES, EICR_RX, EICR_TX, NIC_GUEST_BDF, TXD_CMD_EOP, TXD_CMD_RS, VFEIMS, VFRDBAH, VFRDBAL, VFRDLEN, VFRDT,
  VFRXDCTL, VFTDBAH, VFTDBAL, VFTDLEN, VFTDT, VFTXDCTL,
} from '../../hardware/nic/registers.ts';
import { nicMmioRead, nicMmioWrite } from '../../hypervisor/io/vf-mmio.ts';
import { PCI_CONFIG_ADDRESS, PCI_CONFIG_DATA, pciConfigDataAccess } from '../../hypervisor/io/vpci.ts';
import { guestWrite } from '../../hypervisor/memory/guest-memory.ts';
import type { MachineHost } from '../state.ts';

export const TX_RING = 0x4000;
export const RX_RING = 0x4800;
export const TX_BUFFERS = [0x5000, 0x5800];
const RX_BUFFERS = [0x6000, 0x6800, 0x7000, 0x7800];
export const RING_ENTRIES = 8;
/** The vector the scripted driver asks for (MSI-X entry 0). */
export const SCRIPTED_MSI_VECTOR = 0x41;
const TXD_CMD_IFCS = 0x02;
const PCI_COMMAND_MEMORY_AND_MASTER = 0x6;
const MSIX_MESSAGE_CONTROL = 0x72;
const MSIX_ENABLE = 0x8000;

type Ctx = { host: MachineHost; dom: DomainId; vcpu: number; pcpu: number };

const bar0 = (c: Ctx, offset: number, value: number): void => nicMmioWrite(c.host, c.dom, 0, offset, 4, value);

/** One configuration write through ports 0xCF8/0xCFC, recorded as the port accesses and the cycle. */
function configWrite(c: Ctx, offset: number, size: number, value: number): void {
  const address = (0x8000_0000 | (NIC_GUEST_BDF << 8) | (offset & 0xfc)) >>> 0;
  c.host.emit('io', { dom: c.dom, vcpu: c.vcpu, port: PCI_CONFIG_ADDRESS, size: 4, out: true, value: address });
  const port = PCI_CONFIG_DATA + (offset & 3);
  pciConfigDataAccess(c.host, c.dom, port, size, true, value);
  c.host.emit('io', { dom: c.dom, vcpu: c.vcpu, port, size, out: true, value });
}

function descriptor(address: number, length: number, command: number): Uint8Array {
  const d = new Uint8Array(DESC_BYTES);
  const view = new DataView(d.buffer);
  view.setUint32(0, address >>> 0, true);
  view.setUint16(8, length, true);
  d[11] = command;
  return d;
}

/** Memory and bus master on, rings and interrupts set up, every rx descriptor given to the device. */
export function nicSetup(c: Ctx): void {
  configWrite(c, 0x04, 2, PCI_COMMAND_MEMORY_AND_MASTER);
  configWrite(c, MSIX_MESSAGE_CONTROL, 2, MSIX_ENABLE);
  bar0(c, VFTDBAL, TX_RING);
  bar0(c, VFTDBAH, 0);
  bar0(c, VFTDLEN, RING_ENTRIES * DESC_BYTES);
  bar0(c, VFTXDCTL, DCTL_ENABLE);
  bar0(c, VFRDBAL, RX_RING);
  bar0(c, VFRDBAH, 0);
  bar0(c, VFRDLEN, RING_ENTRIES * DESC_BYTES);
  for (let i = 0; i < RING_ENTRIES; i++) guestWrite(c.host, c.dom, c.pcpu, RX_RING + i * DESC_BYTES, descriptor(RX_BUFFERS[i % RX_BUFFERS.length], 0, 0));
  bar0(c, VFRXDCTL, DCTL_ENABLE);
  bar0(c, VFRDT, RING_ENTRIES - 1);
  // MSI-X entry 0 in BAR3: address, upper address, data (the vector), vector control (unmasked).
  nicMmioWrite(c.host, c.dom, 3, 0x0, 4, 0xfee00000);
  nicMmioWrite(c.host, c.dom, 3, 0x4, 4, 0);
  nicMmioWrite(c.host, c.dom, 3, 0x8, 4, SCRIPTED_MSI_VECTOR);
  nicMmioWrite(c.host, c.dom, 3, 0xc, 4, 0);
  bar0(c, VFEIMS, EICR_RX | EICR_TX);
}

/**
 * Sends a frame: writes it to the descriptor's tx buffer (an all-zero source MAC becomes the
 * VF's own) and queues the descriptor; with `buffer` the descriptor points there instead, at
 * whatever that address holds.
 */
export function nicTransmit(c: Ctx, frame: Uint8Array, buffer: number | null): void {
  const tail = nicMmioRead(c.host, c.dom, 0, VFTDT, 4) % RING_ENTRIES;
  const address = buffer ?? TX_BUFFERS[tail % TX_BUFFERS.length];
  if (buffer === null) {
    const own = c.host.state.io.vfs.find((v) => v.dom === c.dom);
    const bytes = frame.slice();
    if (own && bytes.subarray(6, 12).every((b) => b === 0)) bytes.set(macBytes(own.mac), 6);
    guestWrite(c.host, c.dom, c.pcpu, address, bytes);
  }
  guestWrite(c.host, c.dom, c.pcpu, TX_RING + tail * DESC_BYTES, descriptor(address, frame.length, TXD_CMD_EOP | TXD_CMD_IFCS | TXD_CMD_RS));
  bar0(c, VFTDT, (tail + 1) % RING_ENTRIES);
}

/** Gives the device one more rx descriptor, pointing at `buffer`. */
export function nicPostReceive(c: Ctx, buffer: number): void {
  const tail = nicMmioRead(c.host, c.dom, 0, VFRDT, 4) % RING_ENTRIES;
  guestWrite(c.host, c.dom, c.pcpu, RX_RING + tail * DESC_BYTES, descriptor(buffer, 0, 0));
  bar0(c, VFRDT, (tail + 1) % RING_ENTRIES);
}

/** A raw register write, as a driver (or an attacker) may make. */
export function nicRegisterWrite(c: Ctx, bar: number, offset: number, value: number): void {
  nicMmioWrite(c.host, c.dom, bar, offset, 4, value);
}

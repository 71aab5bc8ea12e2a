/**
 * Message signalled interrupts as the function raises them: MSI-X from the table in BAR
 * memory (vector and function masks, the PBA, release on unmask), MSI from the capability
 * (multiple vectors in the data, per-vector masks and pending bits), Bus Master Enable, INTx.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  PCI_COMMAND, PCI_COMMAND_INTX_DISABLE, PCI_COMMAND_MASTER, PCI_COMMAND_MEMORY, PCI_MSI_ADDRESS_HI, PCI_MSI_ADDRESS_LO,
  PCI_MSI_DATA_64, PCI_MSI_FLAGS, PCI_MSI_FLAGS_ENABLE, PCI_MSI_MASK_64, PCI_MSI_PENDING_64, PCI_MSIX_FLAGS,
  PCI_MSIX_FLAGS_ENABLE, PCI_MSIX_FLAGS_MASKALL, PCI_SRIOV_CTRL_MSE, PCI_SRIOV_CTRL_VFE, pciBdf, pciBusCreate, pciConfigRead,
  pciConfigWrite, pciFunctionCreate, pciMmioRead, pciMmioWrite, pciMsiSignal, pciRun, type Bdf, type PciBus, type PciMsiMessage,
} from '../src/core/hardware/pci/index.ts';
import { sriovNicPf, sriovNicPfSpec } from '../src/core/hardware/nic/pf-config.ts';

const PF: Bdf = pciBdf(2, 0, 0);
const MSIX_BAR = 0xfe100000; // PF BAR4: table at 0, PBA at 0x2000
const MSI = 0x50;
const MSIX = 0x70;

const read = (bus: PciBus, bdf: Bdf, offset: number, size: number): number => pciRun(bus, pciConfigRead(bus, bdf, offset, size));
const write = (bus: PciBus, bdf: Bdf, offset: number, size: number, value: number): PciMsiMessage[] =>
  pciRun(bus, pciConfigWrite(bus, bdf, offset, size, value)).messages;
const mmioWrite = (bus: PciBus, hpa: number, value: number): PciMsiMessage[] => pciRun(bus, pciMmioWrite(bus, hpa, 4, value)).messages;
const mmioRead = (bus: PciBus, hpa: number): number | undefined => pciRun(bus, pciMmioRead(bus, hpa, 4)).value;

function machine(): PciBus {
  const bus = pciBusCreate([sriovNicPf()]);
  write(bus, PF, 0x20, 4, MSIX_BAR);
  write(bus, PF, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
  return bus;
}

/** Programs MSI-X entry `vector` with a compatibility-format address for APIC 0. */
function msixEntry(bus: PciBus, vector: number, data: number): void {
  const entry = MSIX_BAR + 16 * vector;
  mmioWrite(bus, entry, 0xfee00000);
  mmioWrite(bus, entry + 4, 0);
  mmioWrite(bus, entry + 8, data);
}

test('MSI-X: entries come out of reset masked; an unmasked vector sends its address and data', () => {
  const bus = machine();
  for (let v = 0; v < 64; v++) assert.equal(mmioRead(bus, MSIX_BAR + 16 * v + 12), 1);
  write(bus, PF, MSIX + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE);
  msixEntry(bus, 2, 0x41);
  mmioWrite(bus, MSIX_BAR + 16 * 2 + 12, 0);
  const signal = pciRun(bus, pciMsiSignal(bus, PF, 2));
  assert.deepEqual(signal, {
    kind: 'message', message: { source: PF, mechanism: 'msix', vector: 2, addressLow: 0xfee00000, addressHigh: 0, data: 0x41 },
  });
  assert.deepEqual(pciRun(bus, pciMsiSignal(bus, PF, 64)), { kind: 'dropped', reason: 'vector-out-of-range' });
});

test('MSI-X: a masked vector sets its PBA bit; unmasking sends it and clears the bit', () => {
  const bus = machine();
  write(bus, PF, MSIX + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE);
  msixEntry(bus, 33, 0x52);
  const outcome = pciMsiSignal(bus, PF, 33);
  assert.deepEqual(outcome.result, { kind: 'pending', mechanism: 'msix', vector: 33 });
  assert.deepEqual(outcome.effects, [{ kind: 'pci.msi.pending', bdf: PF, mechanism: 'msix', vector: 33, pending: true }]);
  pciRun(bus, outcome);
  assert.equal(mmioRead(bus, MSIX_BAR + 0x2004), 2, 'PBA bit 33');
  mmioWrite(bus, MSIX_BAR + 0x2004, 0);
  assert.equal(mmioRead(bus, MSIX_BAR + 0x2004), 2, 'the PBA is read-only');
  const unmask = pciMmioWrite(bus, MSIX_BAR + 16 * 33 + 12, 4, 0);
  assert.deepEqual(unmask.result.messages.map((m) => [m.vector, m.data]), [[33, 0x52]]);
  pciRun(bus, unmask);
  assert.equal(mmioRead(bus, MSIX_BAR + 0x2004), 0);
});

test('MSI-X: the function mask holds every vector; clearing it releases them in order', () => {
  const bus = machine();
  write(bus, PF, MSIX + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
  for (const v of [5, 1]) {
    msixEntry(bus, v, 0x60 + v);
    mmioWrite(bus, MSIX_BAR + 16 * v + 12, 0);
    assert.equal(pciRun(bus, pciMsiSignal(bus, PF, v)).kind, 'pending');
  }
  const released = write(bus, PF, MSIX + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE);
  assert.deepEqual(released.map((m) => m.vector), [1, 5]);
  assert.equal(mmioRead(bus, MSIX_BAR + 0x2000), 0);
});

test('MSI-X table: reserved bits of the address and vector control read 0', () => {
  const bus = machine();
  mmioWrite(bus, MSIX_BAR, 0xfee00fff);
  assert.equal(mmioRead(bus, MSIX_BAR), 0xfee00ffc);
  mmioWrite(bus, MSIX_BAR + 12, 0xffffffff);
  assert.equal(mmioRead(bus, MSIX_BAR + 12), 1);
  // Outside the table and PBA the BAR belongs to the device model.
  assert.deepEqual(pciRun(bus, pciMmioRead(bus, MSIX_BAR + 0x1000, 4)), { hit: { bdf: PF, bar: 4, offset: 0x1000 }, value: undefined });
  assert.equal(pciRun(bus, pciMmioWrite(bus, MSIX_BAR + 0x1000, 4, 1)).handled, false);
});

test('without Bus Master Enable no message goes out', () => {
  const bus = machine();
  write(bus, PF, MSIX + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE);
  msixEntry(bus, 0, 0x41);
  mmioWrite(bus, MSIX_BAR + 12, 0);
  write(bus, PF, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
  assert.deepEqual(pciRun(bus, pciMsiSignal(bus, PF, 0)), { kind: 'dropped', reason: 'bus-master-disabled' });
});

test('MSI: 64-bit address, data with the vector in its low bits, per-vector mask and pending', () => {
  const spec = sriovNicPfSpec();
  spec.capabilities[0] = { kind: 'msi', offset: MSI, vectors: 4, address64: true, perVectorMask: true };
  const bus = pciBusCreate([pciFunctionCreate(PF, spec)]);
  write(bus, PF, PCI_COMMAND, 2, PCI_COMMAND_MASTER);
  write(bus, PF, MSI + PCI_MSI_ADDRESS_LO, 4, 0xfee01000);
  write(bus, PF, MSI + PCI_MSI_ADDRESS_HI, 4, 0);
  write(bus, PF, MSI + PCI_MSI_DATA_64, 2, 0x4031); // low two bits are the function's to fill
  write(bus, PF, MSI + PCI_MSI_FLAGS, 2, PCI_MSI_FLAGS_ENABLE | (2 << 4)); // 4 vectors enabled
  const signal = pciRun(bus, pciMsiSignal(bus, PF, 2));
  assert.deepEqual(signal, {
    kind: 'message', message: { source: PF, mechanism: 'msi', vector: 2, addressLow: 0xfee01000, addressHigh: 0, data: 0x4032 },
  });
  assert.deepEqual(pciRun(bus, pciMsiSignal(bus, PF, 4)), { kind: 'dropped', reason: 'vector-out-of-range' });
  write(bus, PF, MSI + PCI_MSI_MASK_64, 4, 0b1000);
  assert.equal(pciRun(bus, pciMsiSignal(bus, PF, 3)).kind, 'pending');
  assert.equal(read(bus, PF, MSI + PCI_MSI_PENDING_64, 4), 0b1000);
  write(bus, PF, MSI + PCI_MSI_PENDING_64, 4, 0);
  assert.equal(read(bus, PF, MSI + PCI_MSI_PENDING_64, 4), 0b1000, 'pending bits are read-only');
  const released = write(bus, PF, MSI + PCI_MSI_MASK_64, 4, 0);
  assert.deepEqual(released.map((m) => [m.vector, m.data]), [[3, 0x4033]]);
  assert.equal(read(bus, PF, MSI + PCI_MSI_PENDING_64, 4), 0);
});

test('INTx when neither MSI nor MSI-X is enabled; Interrupt Disable stops it; VFs have none', () => {
  const bus = machine();
  assert.deepEqual(pciRun(bus, pciMsiSignal(bus, PF, 0)), { kind: 'intx', pin: 1 });
  write(bus, PF, PCI_COMMAND, 2, PCI_COMMAND_INTX_DISABLE);
  assert.deepEqual(pciRun(bus, pciMsiSignal(bus, PF, 0)), { kind: 'dropped', reason: 'intx-disabled' });
  write(bus, PF, 0x110, 2, 1);
  write(bus, PF, 0x108, 2, PCI_SRIOV_CTRL_VFE | PCI_SRIOV_CTRL_MSE);
  const vf = pciBdf(2, 0x10, 0);
  assert.deepEqual(pciRun(bus, pciMsiSignal(bus, vf, 0)), { kind: 'dropped', reason: 'no-interrupt' });
  assert.deepEqual(pciRun(bus, pciMsiSignal(bus, pciBdf(2, 0x10, 2), 0)), { kind: 'dropped', reason: 'absent' });
});

test('a VF signals through its own MSI-X table in VF BAR3, with its own routing ID', () => {
  const bus = machine();
  write(bus, PF, 0x100 + 0x30, 4, 0xfd100000); // VF BAR3
  write(bus, PF, 0x110, 2, 2);
  write(bus, PF, 0x108, 2, PCI_SRIOV_CTRL_VFE | PCI_SRIOV_CTRL_MSE);
  const vf2 = pciBdf(2, 0x10, 2);
  write(bus, vf2, PCI_COMMAND, 2, PCI_COMMAND_MASTER);
  write(bus, vf2, MSIX + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE);
  const entry = 0xfd100000 + 0x4000 + 16 * 1; // VF 2's BAR3, vector 1
  mmioWrite(bus, entry, 0xfee00010);
  mmioWrite(bus, entry + 8, 0x0005);
  mmioWrite(bus, entry + 12, 0);
  const signal = pciRun(bus, pciMsiSignal(bus, vf2, 1));
  assert.equal(signal.kind, 'message');
  if (signal.kind === 'message') assert.deepEqual([signal.message.source, signal.message.addressLow, signal.message.data], [vf2, 0xfee00010, 5]);
  assert.equal(pciRun(bus, pciMsiSignal(bus, pciBdf(2, 0x10, 0), 1)).kind, 'dropped', 'VF 1 has not enabled bus mastering');
});

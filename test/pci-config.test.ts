/**
 * PCI configuration space, driven as a guest drives it: through ports 0xCF8/0xCFC for the
 * first 256 bytes and the 4 KiB path above them. Identity, read-only fields, the command
 * register, BAR sizing (32-bit, 64-bit, I/O) and walking the capability lists.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AssertionFailed } from '../src/events/errors.ts';
import {
  PCI_BASE_ADDRESS_0, PCI_CAP_ID_EXP, PCI_CAP_ID_MSI, PCI_CAP_ID_MSIX, PCI_CAPABILITY_LIST, PCI_CLASS_NETWORK_ETHERNET,
  PCI_COMMAND, PCI_COMMAND_INTX_DISABLE, PCI_COMMAND_IO, PCI_COMMAND_MASTER, PCI_COMMAND_MEMORY, PCI_COMMAND_PARITY,
  PCI_COMMAND_SERR, PCI_CONFIG_ADDRESS_ENABLE, PCI_CONFIG_DATA_PORT, PCI_EXT_CAP_ID_SRIOV, PCI_HEADER_TYPE, PCI_INTERRUPT_LINE,
  PCI_INTERRUPT_PIN, PCI_MSI_ADDRESS_LO, PCI_MSI_FLAGS, PCI_MSI_FLAGS_64BIT, PCI_MSI_FLAGS_MASKBIT, PCI_MSI_MASK_64,
  PCI_MSIX_FLAGS, PCI_MSIX_PBA, PCI_MSIX_TABLE, PCI_SRIOV_SUP_PGSIZE, PCI_SRIOV_TOTAL_VF, PCI_SRIOV_VF_DID, PCI_SRIOV_VF_OFFSET,
  PCI_SRIOV_VF_STRIDE, PCI_STATUS, PCI_STATUS_CAP_LIST, PCI_STATUS_REC_MASTER_ABORT, PCI_STATUS_SIG_TARGET_ABORT,
  PCI_SUBSYSTEM_ID, PCI_VENDOR_ID, PCI_VENDOR_ID_INTEL, pciBdf, pciBusCreate, pciConfigAddressWrite, pciConfigDataRead,
  pciConfigDataWrite, pciConfigRead, pciConfigWrite, pciFunctionCreate, pciFunctionWrite, pciRun, type Bdf, type PciBus,
  type PciFunctionSpec,
} from '../src/core/hardware/pci/index.ts';
import { NIC_82599_DEVICE_ID, NIC_82599_VF_DEVICE_ID, sriovNicPf } from '../src/core/hardware/nic/pf-config.ts';

const PF: Bdf = pciBdf(2, 0, 0);
const PLAIN: Bdf = pciBdf(0, 3, 0);

/** A plain function with one BAR of each kind: 32-bit prefetchable, 64-bit, I/O. */
const PLAIN_SPEC: PciFunctionSpec = {
  identity: { vendorId: 0x1234, deviceId: 0x5678, revisionId: 2, classCode: 0x018000, subsystemVendorId: 0x1234, subsystemId: 1 },
  interruptPin: 1,
  bars: [
    { kind: 'mem32', sizeBytes: 4096, prefetchable: true },
    { kind: 'mem64', sizeBytes: 2 ** 33 }, undefined,
    { kind: 'io', sizeBytes: 64 },
  ],
  capabilities: [{ kind: 'msi', vectors: 4, address64: false, perVectorMask: false }],
};

function machine(): PciBus {
  return pciBusCreate([sriovNicPf(), pciFunctionCreate(PLAIN, PLAIN_SPEC)]);
}

/** Mechanism #1 as a guest kernel does it: CONFIG_ADDRESS, then the data port at offset & 3. */
function cf8Read(bus: PciBus, bdf: Bdf, offset: number, size: number): number {
  pciRun(bus, pciConfigAddressWrite(bus, (PCI_CONFIG_ADDRESS_ENABLE | (bdf << 8) | (offset & 0xfc)) >>> 0));
  return pciRun(bus, pciConfigDataRead(bus, PCI_CONFIG_DATA_PORT + (offset & 3), size));
}

function cf8Write(bus: PciBus, bdf: Bdf, offset: number, size: number, value: number): void {
  pciRun(bus, pciConfigAddressWrite(bus, (PCI_CONFIG_ADDRESS_ENABLE | (bdf << 8) | (offset & 0xfc)) >>> 0));
  pciRun(bus, pciConfigDataWrite(bus, PCI_CONFIG_DATA_PORT + (offset & 3), size, value));
}

const read = (bus: PciBus, bdf: Bdf, offset: number, size: number): number => pciRun(bus, pciConfigRead(bus, bdf, offset, size));
const write = (bus: PciBus, bdf: Bdf, offset: number, size: number, value: number): void => {
  pciRun(bus, pciConfigWrite(bus, bdf, offset, size, value));
};

test('the NIC PF has the 82599 identity: 8086:10fb, Ethernet class, one function, INTA', () => {
  const bus = machine();
  assert.equal(cf8Read(bus, PF, PCI_VENDOR_ID, 2), PCI_VENDOR_ID_INTEL);
  assert.equal(cf8Read(bus, PF, 0x02, 2), NIC_82599_DEVICE_ID);
  assert.equal(cf8Read(bus, PF, 0x00, 4), (NIC_82599_DEVICE_ID << 16 | PCI_VENDOR_ID_INTEL) >>> 0);
  assert.equal(cf8Read(bus, PF, 0x08, 4) >>> 8, PCI_CLASS_NETWORK_ETHERNET);
  assert.equal(cf8Read(bus, PF, PCI_HEADER_TYPE, 1), 0);
  assert.equal(cf8Read(bus, PF, PCI_INTERRUPT_PIN, 1), 1);
  assert.equal(cf8Read(bus, PF, PCI_SUBSYSTEM_ID - 2, 2), PCI_VENDOR_ID_INTEL);
});

test('read-only fields ignore writes of every size', () => {
  const bus = machine();
  const readOnly: [number, number][] = [
    [PCI_VENDOR_ID, 4], [0x08, 4], [PCI_HEADER_TYPE, 1], [0x2c, 4], [PCI_CAPABILITY_LIST, 1], [PCI_INTERRUPT_PIN, 1], [0x30, 4],
  ];
  for (const [offset, size] of readOnly) {
    const before = cf8Read(bus, PF, offset, size);
    for (const value of [0, 0xffffffff, 0x5a5a5a5a]) {
      cf8Write(bus, PF, offset, size, value);
      assert.equal(cf8Read(bus, PF, offset, size), before, `offset 0x${offset.toString(16)}`);
    }
  }
  // Status: capabilities list stays set, nothing can be set by writing.
  cf8Write(bus, PF, PCI_STATUS, 2, 0xffff);
  assert.equal(cf8Read(bus, PF, PCI_STATUS, 2), PCI_STATUS_CAP_LIST);
  // Interrupt line is software's scratch register.
  cf8Write(bus, PF, PCI_INTERRUPT_LINE, 1, 11);
  assert.equal(cf8Read(bus, PF, PCI_INTERRUPT_LINE, 1), 11);
  // Upper SR-IOV fields (4 KiB path): TotalVFs, First VF Offset, Stride, VF Device ID.
  for (const field of [PCI_SRIOV_TOTAL_VF, PCI_SRIOV_VF_OFFSET, PCI_SRIOV_VF_STRIDE, PCI_SRIOV_VF_DID]) {
    const before = read(bus, PF, 0x100 + field, 2);
    write(bus, PF, 0x100 + field, 2, 0xffff);
    assert.equal(read(bus, PF, 0x100 + field, 2), before);
  }
  assert.equal(read(bus, PF, 0x100 + PCI_SRIOV_VF_DID, 2), NIC_82599_VF_DEVICE_ID);
  assert.equal(read(bus, PF, 0x100 + PCI_SRIOV_SUP_PGSIZE, 4), 0x553);
});

test('status error bits are write-1-to-clear', () => {
  const fn = sriovNicPf();
  // The function (not software) records a master abort and a signalled target abort.
  const config = fn.config.slice();
  config[PCI_STATUS + 1] |= (PCI_STATUS_REC_MASTER_ABORT | PCI_STATUS_SIG_TARGET_ABORT) >> 8;
  fn.config = config;
  pciFunctionWrite(fn, PCI_STATUS, 2, PCI_STATUS_REC_MASTER_ABORT);
  const status = fn.config[PCI_STATUS] | fn.config[PCI_STATUS + 1] << 8;
  assert.equal(status, PCI_STATUS_CAP_LIST | PCI_STATUS_SIG_TARGET_ABORT);
});

test('the command register takes exactly the bits the function implements', () => {
  const bus = machine();
  cf8Write(bus, PF, PCI_COMMAND, 2, 0xffff);
  assert.equal(cf8Read(bus, PF, PCI_COMMAND, 2),
    PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_PARITY | PCI_COMMAND_SERR | PCI_COMMAND_INTX_DISABLE);
  // A function without I/O BARs hardwires I/O Space Enable (PCI 3.0, 6.2.2).
  const memOnly = pciBusCreate([pciFunctionCreate(PLAIN, { ...PLAIN_SPEC, bars: [{ kind: 'mem32', sizeBytes: 4096 }] })]);
  cf8Write(memOnly, PLAIN, PCI_COMMAND, 2, 0xffff);
  assert.equal(cf8Read(memOnly, PLAIN, PCI_COMMAND, 2) & (PCI_COMMAND_IO | PCI_COMMAND_MEMORY), PCI_COMMAND_MEMORY);
  cf8Write(bus, PF, PCI_COMMAND, 2, 0);
  assert.equal(cf8Read(bus, PF, PCI_COMMAND, 2), 0);
});

/** Sizing as Linux's __pci_read_base does it: save, write all ones, read, restore. */
function size32(bus: PciBus, bdf: Bdf, offset: number): { saved: number; sized: number } {
  const saved = cf8Read(bus, bdf, offset, 4);
  cf8Write(bus, bdf, offset, 4, 0xffffffff);
  const sized = cf8Read(bus, bdf, offset, 4);
  cf8Write(bus, bdf, offset, 4, saved);
  return { saved, sized };
}

test('BAR sizing: a 32-bit prefetchable memory BAR', () => {
  const bus = machine();
  const { saved, sized } = size32(bus, PLAIN, PCI_BASE_ADDRESS_0);
  assert.equal(saved, 0x8); // memory, 32-bit, prefetchable, unassigned
  assert.equal(sized, 0xfffff008);
  assert.equal(((sized & ~0xf) >>> 0) ^ 0xffffffff, 4096 - 1);
  cf8Write(bus, PLAIN, PCI_BASE_ADDRESS_0, 4, 0xfebc1234);
  assert.equal(cf8Read(bus, PLAIN, PCI_BASE_ADDRESS_0, 4), 0xfebc1008, 'address bits below the size read as 0');
});

test('BAR sizing: 64-bit memory BARs, below and above 4 GiB in size', () => {
  const bus = machine();
  // NIC BAR0: 512 KiB, type 64.
  cf8Write(bus, PF, 0x10, 4, 0xffffffff);
  cf8Write(bus, PF, 0x14, 4, 0xffffffff);
  assert.equal(cf8Read(bus, PF, 0x10, 4), 0xfff80004);
  assert.equal(cf8Read(bus, PF, 0x14, 4), 0xffffffff);
  // Plain BAR1/2: 8 GiB, the size shows only in the upper dword.
  cf8Write(bus, PLAIN, 0x14, 4, 0xffffffff);
  cf8Write(bus, PLAIN, 0x18, 4, 0xffffffff);
  assert.equal(cf8Read(bus, PLAIN, 0x14, 4), 0x00000004);
  assert.equal(cf8Read(bus, PLAIN, 0x18, 4), 0xfffffffe);
  const mask = 0xfffffffe * 2 ** 32; // ~(size - 1) as a 64-bit value, low dword 0
  assert.equal(2 ** 64 - mask, 2 ** 33);
});

test('BAR sizing: an I/O BAR decodes 16 bits, and unimplemented BARs read 0', () => {
  const bus = machine();
  const io = size32(bus, PLAIN, 0x1c);
  assert.equal(io.saved, 0x1);
  assert.equal(io.sized, 0x0000ffc1); // 64 ports, bit 0 = I/O space
  const nicIo = size32(bus, PF, 0x18);
  assert.equal(nicIo.sized, 0x0000ffe1); // the 82599's 32 IOADDR/IODATA ports
  for (const offset of [0x20, 0x24]) assert.equal(size32(bus, PLAIN, offset).sized, 0);
});

/** Walks the capability list through config reads, as pci_find_capability does. */
function walkCapabilities(bus: PciBus, bdf: Bdf): [number, number][] {
  const found: [number, number][] = [];
  if ((cf8Read(bus, bdf, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST) === 0) return found;
  let at = cf8Read(bus, bdf, PCI_CAPABILITY_LIST, 1) & ~3;
  for (let ttl = 48; at !== 0 && ttl > 0; ttl--) {
    found.push([cf8Read(bus, bdf, at, 1), at]);
    at = cf8Read(bus, bdf, at + 1, 1) & ~3;
  }
  return found;
}

test('capability list: MSI, MSI-X, PCI Express, then SR-IOV at 0x100', () => {
  const bus = machine();
  assert.deepEqual(walkCapabilities(bus, PF), [[PCI_CAP_ID_MSI, 0x50], [PCI_CAP_ID_MSIX, 0x70], [PCI_CAP_ID_EXP, 0xa0]]);
  const msiFlags = cf8Read(bus, PF, 0x50 + PCI_MSI_FLAGS, 2);
  assert.ok(msiFlags & PCI_MSI_FLAGS_64BIT && msiFlags & PCI_MSI_FLAGS_MASKBIT);
  assert.equal(cf8Read(bus, PF, 0x70 + PCI_MSIX_FLAGS, 2), 63); // table size 64, disabled
  assert.equal(cf8Read(bus, PF, 0x70 + PCI_MSIX_TABLE, 4), 0x00000004); // BAR4, offset 0
  assert.equal(cf8Read(bus, PF, 0x70 + PCI_MSIX_PBA, 4), 0x00002004); // BAR4, offset 0x2000
  assert.equal(cf8Read(bus, PF, 0xa0 + 2, 2) & 0xf, 2); // PCIe capability version 2
  const header = read(bus, PF, 0x100, 4);
  assert.equal(header & 0xffff, PCI_EXT_CAP_ID_SRIOV);
  assert.equal((header >>> 16) & 0xf, 1);
  assert.equal(header >>> 20, 0, 'the last extended capability');
  // A function without extended capabilities has a zero header at 0x100.
  assert.equal(read(bus, PLAIN, 0x100, 4), 0);
  assert.deepEqual(walkCapabilities(bus, PLAIN), [[PCI_CAP_ID_MSI, 0x40]]);
});

test('MSI registers: reserved address bits and mask bits beyond the vectors stay 0', () => {
  const bus = machine();
  cf8Write(bus, PF, 0x50 + PCI_MSI_ADDRESS_LO, 4, 0xfee0000f);
  assert.equal(cf8Read(bus, PF, 0x50 + PCI_MSI_ADDRESS_LO, 4), 0xfee0000c);
  cf8Write(bus, PF, 0x50 + PCI_MSI_MASK_64, 4, 0xffffffff);
  assert.equal(cf8Read(bus, PF, 0x50 + PCI_MSI_MASK_64, 4), 1, 'one vector, one mask bit');
  // Multiple Message Enable is writable, Multiple Message Capable is not.
  cf8Write(bus, PLAIN, 0x40 + PCI_MSI_FLAGS, 2, 0xffff);
  assert.equal(cf8Read(bus, PLAIN, 0x40 + PCI_MSI_FLAGS, 2), 0x0075);
});

test('function specs the hardware could not have are assertions', () => {
  const bad: [string, Partial<PciFunctionSpec>][] = [
    ['size not a power of two', { bars: [{ kind: 'mem32', sizeBytes: 3000 }] }],
    ['64-bit BAR in the last slot', { bars: [undefined, undefined, undefined, undefined, undefined, { kind: 'mem64', sizeBytes: 4096 }] }],
    ['I/O BAR too large', { bars: [{ kind: 'io', sizeBytes: 512 }] }],
    ['overlapping capabilities', { capabilities: [{ kind: 'msi', offset: 0x40, vectors: 1, address64: true, perVectorMask: true }, { kind: 'pcie', offset: 0x48, flr: false }] }],
    ['MSI-X table outside its BAR', { capabilities: [{ kind: 'msix', tableSize: 512, tableBar: 0, tableOffset: 0, pbaBar: 0, pbaOffset: 0x800 }] }],
  ];
  for (const [what, change] of bad) {
    assert.throws(() => pciFunctionCreate(PLAIN, { ...PLAIN_SPEC, ...change }), AssertionFailed, what);
  }
});

/**
 * SR-IOV (PCIe Base 9.3): VF Enable and NumVFs make VFs appear at PF RID + First VF Offset +
 * (n - 1) * VF Stride; a VF's own configuration space follows the spec's VF rules; VF BARs
 * are sized and placed through the PF, decoded under VF MSE, aligned to System Page Size;
 * function level reset.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  PCI_CAP_ID_EXP, PCI_CAP_ID_MSIX, PCI_CLASS_NETWORK_ETHERNET, PCI_COMMAND, PCI_COMMAND_MASTER, PCI_EXP_DEVCTL,
  PCI_EXP_DEVCTL_BCR_FLR, PCI_INTERRUPT_PIN, PCI_SRIOV_CTRL, PCI_SRIOV_CTRL_MSE, PCI_SRIOV_CTRL_VFE, PCI_SRIOV_NUM_VF,
  PCI_SRIOV_SYS_PGSIZE, PCI_VENDOR_ID_INTEL, pciBarRanges, pciBdf, pciBdfFormat, pciBusCreate, pciCapabilityList, pciConfigRead,
  pciConfigWrite, pciFunctionAt, pciFunctionsPresent, pciIdentityOf, pciMmioLookup, pciRun, type Bdf, type PciBus,
} from '../src/core/hardware/pci/index.ts';
import { NIC_82599_VF_DEVICE_ID, sriovNicPf, type SriovNicOptions } from '../src/core/hardware/nic/pf-config.ts';

const PF: Bdf = pciBdf(2, 0, 0);
const SRIOV = 0x100;

function machine(options: SriovNicOptions = {}): PciBus {
  return pciBusCreate([sriovNicPf(options)]);
}

const read = (bus: PciBus, bdf: Bdf, offset: number, size: number): number => pciRun(bus, pciConfigRead(bus, bdf, offset, size));
const write = (bus: PciBus, bdf: Bdf, offset: number, size: number, value: number): void => {
  pciRun(bus, pciConfigWrite(bus, bdf, offset, size, value));
};

/** What a PF driver does: NumVFs first, then VF Enable (and VF MSE). */
function enableVfs(bus: PciBus, count: number, pf: Bdf = PF, ctrl = PCI_SRIOV_CTRL_VFE | PCI_SRIOV_CTRL_MSE): void {
  write(bus, pf, SRIOV + PCI_SRIOV_NUM_VF, 2, count);
  write(bus, pf, SRIOV + PCI_SRIOV_CTRL, 2, ctrl);
}

const present = (bus: PciBus): string[] => pciFunctionsPresent(bus).map((f) => pciBdfFormat(f.bdf));

test('VFs appear with VF Enable, NumVFs of them, at First VF Offset and VF Stride', () => {
  const bus = machine();
  assert.deepEqual(present(bus), ['02:00.0']);
  write(bus, PF, SRIOV + PCI_SRIOV_NUM_VF, 2, 3);
  assert.deepEqual(present(bus), ['02:00.0'], 'NumVFs alone enables nothing');
  assert.equal(read(bus, pciBdf(2, 0x10, 0), 0, 4), 0xffffffff);
  write(bus, PF, SRIOV + PCI_SRIOV_CTRL, 2, PCI_SRIOV_CTRL_VFE);
  // 0x0200 + 0x80 + (n - 1) * 2
  assert.deepEqual(present(bus), ['02:00.0', '02:10.0', '02:10.2', '02:10.4']);
  assert.deepEqual(pciFunctionAt(bus, pciBdf(2, 0x10, 2))?.vf, { pf: PF, number: 2 });
  assert.equal(pciFunctionAt(bus, pciBdf(2, 0x10, 1)), undefined, 'between VFs');
  assert.equal(pciFunctionAt(bus, pciBdf(2, 0x10, 6)), undefined, 'VF 4 is beyond NumVFs');
  assert.equal(read(bus, pciBdf(2, 0x10, 6), 0, 4), 0xffffffff);
});

test('VF routing IDs follow the PF placement, offset and stride, across a bus boundary', () => {
  const narrow = machine({ bdf: pciBdf(3, 0, 0), firstVfOffset: 1, vfStride: 1, totalVfs: 4 });
  enableVfs(narrow, 4, pciBdf(3, 0, 0));
  assert.deepEqual(present(narrow), ['03:00.0', '03:00.1', '03:00.2', '03:00.3', '03:00.4']);
  const wide = machine({ bdf: pciBdf(4, 0x1f, 0), firstVfOffset: 0x10, vfStride: 8, totalVfs: 4 });
  enableVfs(wide, 4, pciBdf(4, 0x1f, 0));
  // 0x04f8 + 0x10 = 0x0508: VFs land on bus 5 (Linux's virtfn_bus).
  assert.deepEqual(present(wide), ['04:1f.0', '05:01.0', '05:02.0', '05:03.0', '05:04.0']);
  const full = machine({ totalVfs: 64 });
  enableVfs(full, 64);
  assert.equal(present(full).at(-1), '02:1f.6');
});

test('a VF reads Vendor and Device ID 0xFFFF; software takes the PF vendor and VF Device ID', () => {
  const bus = machine();
  enableVfs(bus, 2);
  const vf = pciBdf(2, 0x10, 2);
  assert.equal(read(bus, vf, 0x00, 2), 0xffff);
  assert.equal(read(bus, vf, 0x02, 2), 0xffff);
  assert.equal(read(bus, vf, 0x08, 4) >>> 8, PCI_CLASS_NETWORK_ETHERNET);
  assert.equal(read(bus, vf, 0x2c, 2), PCI_VENDOR_ID_INTEL, 'subsystem vendor from the PF');
  assert.deepEqual(pciIdentityOf(bus, vf), { vendorId: PCI_VENDOR_ID_INTEL, deviceId: NIC_82599_VF_DEVICE_ID });
  assert.deepEqual(pciIdentityOf(bus, PF), { vendorId: PCI_VENDOR_ID_INTEL, deviceId: 0x10fb });
});

test('VF configuration space: only Bus Master Enable in the command register, no BARs, no INTx', () => {
  const bus = machine();
  enableVfs(bus, 1);
  const vf = pciBdf(2, 0x10, 0);
  write(bus, vf, PCI_COMMAND, 2, 0xffff);
  assert.equal(read(bus, vf, PCI_COMMAND, 2), PCI_COMMAND_MASTER);
  for (let bar = 0; bar < 6; bar++) {
    write(bus, vf, 0x10 + 4 * bar, 4, 0xffffffff);
    assert.equal(read(bus, vf, 0x10 + 4 * bar, 4), 0, `VF BAR${bar} of the VF's own header`);
  }
  assert.equal(read(bus, vf, PCI_INTERRUPT_PIN, 1), 0);
  write(bus, vf, 0x3c, 1, 0xff);
  assert.equal(read(bus, vf, 0x3c, 1), 0, 'interrupt line does not apply to VFs');
  const fn = pciFunctionAt(bus, vf)!;
  assert.deepEqual(pciCapabilityList(fn.config).map((c) => [c.id, c.offset]), [[PCI_CAP_ID_MSIX, 0x70], [PCI_CAP_ID_EXP, 0xa0]]);
  assert.equal(read(bus, vf, 0x70 + 2, 2), 2, 'MSI-X table size 3');
  assert.equal(read(bus, vf, 0x70 + 4, 4), 3, 'table in VF BAR3 at 0');
  assert.equal(read(bus, vf, 0x100, 4), 0, 'no extended capabilities');
});

test('NumVFs and System Page Size are read-only while VF Enable is set; VFs go with it', () => {
  const bus = machine();
  enableVfs(bus, 2);
  write(bus, PF, SRIOV + PCI_SRIOV_NUM_VF, 2, 5);
  assert.equal(read(bus, PF, SRIOV + PCI_SRIOV_NUM_VF, 2), 2);
  write(bus, PF, SRIOV + PCI_SRIOV_SYS_PGSIZE, 4, 0x10);
  assert.equal(read(bus, PF, SRIOV + PCI_SRIOV_SYS_PGSIZE, 4), 1);
  assert.equal(present(bus).length, 3);
  write(bus, PF, SRIOV + PCI_SRIOV_CTRL, 2, 0);
  assert.deepEqual(present(bus), ['02:00.0']);
  assert.equal(read(bus, PF, SRIOV + PCI_SRIOV_NUM_VF, 2), 2, 'NumVFs is kept');
  write(bus, PF, SRIOV + PCI_SRIOV_NUM_VF, 2, 5);
  assert.equal(read(bus, PF, SRIOV + PCI_SRIOV_NUM_VF, 2), 5);
});

test('NumVFs above TotalVFs enables no VF (the spec leaves it undefined)', () => {
  const bus = machine({ totalVfs: 8 });
  enableVfs(bus, 9);
  assert.deepEqual(present(bus), ['02:00.0']);
  assert.equal(read(bus, PF, SRIOV + PCI_SRIOV_CTRL, 2) & PCI_SRIOV_CTRL_VFE, PCI_SRIOV_CTRL_VFE);
});

test('re-enabling gives VFs fresh from reset', () => {
  const bus = machine();
  enableVfs(bus, 1);
  const vf = pciBdf(2, 0x10, 0);
  write(bus, vf, PCI_COMMAND, 2, PCI_COMMAND_MASTER);
  write(bus, PF, SRIOV + PCI_SRIOV_CTRL, 2, 0);
  write(bus, PF, SRIOV + PCI_SRIOV_CTRL, 2, PCI_SRIOV_CTRL_VFE);
  assert.equal(read(bus, vf, PCI_COMMAND, 2), 0);
});

/** VF BAR0 and BAR3 (64-bit, 16 KiB each) programmed at 0xfd00_0000 and 0xfd10_0000. */
function programVfBars(bus: PciBus): void {
  write(bus, PF, SRIOV + 0x24, 4, 0xfd000000);
  write(bus, PF, SRIOV + 0x28, 4, 0);
  write(bus, PF, SRIOV + 0x30, 4, 0xfd100000);
  write(bus, PF, SRIOV + 0x34, 4, 0);
}

test('VF BARs: sized through the PF, VF n at base + (n - 1) * size, decoded only under VF MSE', () => {
  const bus = machine();
  write(bus, PF, SRIOV + 0x24, 4, 0xffffffff);
  write(bus, PF, SRIOV + 0x28, 4, 0xffffffff);
  assert.equal(read(bus, PF, SRIOV + 0x24, 4), 0xffffc004, '16 KiB, 64-bit');
  assert.equal(read(bus, PF, SRIOV + 0x28, 4), 0xffffffff);
  assert.equal(read(bus, PF, SRIOV + 0x2c, 4), 0, 'VF BAR2 (upper half of BAR1) and unimplemented');
  programVfBars(bus);
  enableVfs(bus, 3, PF, PCI_SRIOV_CTRL_VFE);
  assert.deepEqual(pciBarRanges(bus), [], 'VF MSE clear');
  write(bus, PF, SRIOV + PCI_SRIOV_CTRL, 2, PCI_SRIOV_CTRL_VFE | PCI_SRIOV_CTRL_MSE);
  const ranges = pciBarRanges(bus).map((r) => [pciBdfFormat(r.bdf), r.bar, r.base.toString(16), r.sizeBytes]);
  assert.deepEqual(ranges, [
    ['02:10.0', 0, 'fd000000', 16384], ['02:10.0', 3, 'fd100000', 16384],
    ['02:10.2', 0, 'fd004000', 16384], ['02:10.2', 3, 'fd104000', 16384],
    ['02:10.4', 0, 'fd008000', 16384], ['02:10.4', 3, 'fd108000', 16384],
  ]);
  assert.deepEqual(pciMmioLookup(bus, 0xfd105010), { bdf: pciBdf(2, 0x10, 2), bar: 3, offset: 0x1010 });
  // The PF's own Memory Space Enable plays no part for VFs, and a VF's is hardwired to 0.
  assert.equal(read(bus, PF, PCI_COMMAND, 2), 0);
});

test('System Page Size aligns and spaces the VF BARs', () => {
  const bus = machine();
  write(bus, PF, SRIOV + PCI_SRIOV_SYS_PGSIZE, 4, 0x10); // 64 KiB pages
  write(bus, PF, SRIOV + 0x24, 4, 0xffffffff);
  assert.equal(read(bus, PF, SRIOV + 0x24, 4), 0xffff0004, 'sizing reports a 64 KiB VF BAR');
  programVfBars(bus);
  write(bus, PF, SRIOV + 0x24, 4, 0xfd00c000);
  assert.equal(read(bus, PF, SRIOV + 0x24, 4), 0xfd000004, 'bits below the page are not kept');
  enableVfs(bus, 2);
  assert.deepEqual(pciBarRanges(bus).filter((r) => r.bar === 0).map((r) => [r.base.toString(16), r.sizeBytes]), [
    ['fd000000', 65536], ['fd010000', 65536],
  ]);
});

test('function level reset: a VF returns to reset; a PF resets and loses its VFs', () => {
  const bus = machine();
  enableVfs(bus, 2);
  const vf = pciBdf(2, 0x10, 2);
  write(bus, vf, PCI_COMMAND, 2, PCI_COMMAND_MASTER);
  write(bus, vf, 0x70 + 2, 2, 0x8000); // MSI-X enable
  write(bus, vf, 0xa0 + PCI_EXP_DEVCTL, 2, PCI_EXP_DEVCTL_BCR_FLR);
  assert.equal(read(bus, vf, PCI_COMMAND, 2), 0);
  assert.equal(read(bus, vf, 0x70 + 2, 2), 2);
  assert.equal(read(bus, vf, 0xa0 + PCI_EXP_DEVCTL, 2) & PCI_EXP_DEVCTL_BCR_FLR, 0, 'Initiate FLR reads 0');
  assert.equal(present(bus).length, 3, 'the other VF and the PF are untouched');
  write(bus, PF, PCI_COMMAND, 2, PCI_COMMAND_MASTER);
  write(bus, PF, 0xa0 + PCI_EXP_DEVCTL + 1, 1, PCI_EXP_DEVCTL_BCR_FLR >> 8);
  assert.deepEqual(present(bus), ['02:00.0']);
  assert.equal(read(bus, PF, PCI_COMMAND, 2), 0);
  assert.equal(read(bus, PF, SRIOV + PCI_SRIOV_NUM_VF, 2), 0);
});

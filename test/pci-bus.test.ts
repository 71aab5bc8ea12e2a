/**
 * The bus: configuration mechanism #1 decoding (enable bit, bus/device/function/register,
 * unaligned data-port accesses), absent functions, the effect records, BAR decoding under
 * the command register, and MMIO / port lookup.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AssertionFailed } from '../src/events/errors.ts';
import {
  PCI_COMMAND, PCI_COMMAND_INTX_DISABLE, PCI_COMMAND_IO, PCI_COMMAND_MASTER, PCI_COMMAND_MEMORY, PCI_CONFIG_ADDRESS_ENABLE,
  PCI_CONFIG_DATA_PORT, PCI_NO_BDF, pciBarRanges, pciBdf, pciBusAdd, pciBusCreate, pciBusMasterEnabled, pciConfigAddressRead,
  pciConfigAddressWrite, pciConfigDataRead, pciConfigDataWrite, pciConfigRead, pciConfigWrite, pciFunctionCreate, pciIoLookup,
  pciMmioLookup, pciRun, type Bdf, type PciBus, type PciCfgEffect,
} from '../src/core/hardware/pci/index.ts';
import { sriovNicPf, sriovNicPfSpec } from '../src/core/hardware/nic/pf-config.ts';

const PF: Bdf = pciBdf(2, 0, 0);

function machine(): PciBus {
  return pciBusCreate([sriovNicPf()]);
}

function address(bdf: Bdf, register: number): number {
  return (PCI_CONFIG_ADDRESS_ENABLE | (bdf << 8) | (register & 0xfc)) >>> 0;
}

const write = (bus: PciBus, bdf: Bdf, offset: number, size: number, value: number): void => {
  pciRun(bus, pciConfigWrite(bus, bdf, offset, size, value));
};
const read = (bus: PciBus, bdf: Bdf, offset: number, size: number): number => pciRun(bus, pciConfigRead(bus, bdf, offset, size));

test('CONFIG_ADDRESS keeps enable, bus, device, function and register; reserved bits read 0', () => {
  const bus = machine();
  pciRun(bus, pciConfigAddressWrite(bus, 0xffffffff));
  assert.equal(pciConfigAddressRead(bus), 0x80fffffc);
  const outcome = pciConfigAddressWrite(bus, address(PF, 0x08) | 3);
  assert.deepEqual(outcome.effects, [{ kind: 'pci.cfg.address', value: 0x80020008 }]);
  assert.equal(pciConfigAddressRead(bus), 0x80fffffc, 'deciding changes nothing');
  pciRun(bus, outcome);
  assert.equal(pciConfigAddressRead(bus), 0x80020008);
});

test('data port decodes bus 23:16, device 15:11, function 10:8, register 7:2', () => {
  const bus = machine();
  pciRun(bus, pciConfigAddressWrite(bus, (0x80000000 | (2 << 16) | (0 << 11) | (0 << 8) | 0x08) >>> 0));
  const outcome = pciConfigDataRead(bus, PCI_CONFIG_DATA_PORT, 4);
  assert.equal(outcome.result, 0x02000001);
  const effect: PciCfgEffect = { kind: 'pci.cfg', bdf: PF, offset: 0x08, size: 4, write: false, value: 0x02000001, present: true };
  assert.deepEqual(outcome.effects, [effect]);
  // The same function, named by its fields one at a time: device 0 of bus 3 is not it.
  pciRun(bus, pciConfigAddressWrite(bus, (0x80000000 | (3 << 16)) >>> 0));
  assert.equal(pciRun(bus, pciConfigDataRead(bus, PCI_CONFIG_DATA_PORT, 4)), 0xffffffff);
  pciRun(bus, pciConfigAddressWrite(bus, (0x80000000 | (2 << 16) | (1 << 8)) >>> 0));
  assert.equal(pciRun(bus, pciConfigDataRead(bus, PCI_CONFIG_DATA_PORT, 4)), 0xffffffff, 'function 1 is absent');
});

test('with bit 31 clear there is no configuration cycle: reads float to ones, writes go nowhere', () => {
  const bus = machine();
  pciRun(bus, pciConfigAddressWrite(bus, address(PF, PCI_COMMAND) & 0x7fffffff));
  const r = pciConfigDataRead(bus, PCI_CONFIG_DATA_PORT, 2);
  assert.equal(r.result, 0xffff);
  assert.deepEqual(r.effects, [{ kind: 'pci.cfg', bdf: PCI_NO_BDF, offset: PCI_COMMAND, size: 2, write: false, value: 0xffff, present: false }]);
  pciRun(bus, pciConfigDataWrite(bus, PCI_CONFIG_DATA_PORT, 2, PCI_COMMAND_MEMORY));
  assert.equal(read(bus, PF, PCI_COMMAND, 2), 0, 'the command register was not written');
});

test('unaligned data-port accesses pick bytes of the dword; past 0xCFF they are not config data', () => {
  const bus = machine();
  pciRun(bus, pciConfigAddressWrite(bus, address(PF, 0x00)));
  const dword = pciRun(bus, pciConfigDataRead(bus, PCI_CONFIG_DATA_PORT, 4));
  for (let byte = 0; byte < 4; byte++) {
    assert.equal(pciRun(bus, pciConfigDataRead(bus, PCI_CONFIG_DATA_PORT + byte, 1)), (dword >>> (8 * byte)) & 0xff);
  }
  assert.equal(pciRun(bus, pciConfigDataRead(bus, PCI_CONFIG_DATA_PORT + 2, 2)), dword >>> 16);
  assert.equal(pciRun(bus, pciConfigDataRead(bus, PCI_CONFIG_DATA_PORT + 1, 2)), (dword >>> 8) & 0xffff);
  const straddle = pciConfigDataRead(bus, PCI_CONFIG_DATA_PORT + 2, 4);
  assert.equal(straddle.result, (0xffff0000 + (dword >>> 16)) >>> 0);
  assert.equal((straddle.effects[0] as PciCfgEffect).size, 2);
  // A byte write at 0xCFD reaches the command register's upper byte.
  pciRun(bus, pciConfigAddressWrite(bus, address(PF, PCI_COMMAND)));
  pciRun(bus, pciConfigDataWrite(bus, PCI_CONFIG_DATA_PORT + 1, 1, PCI_COMMAND_INTX_DISABLE >> 8));
  assert.equal(read(bus, PF, PCI_COMMAND, 2), PCI_COMMAND_INTX_DISABLE);
  // A 4-byte write at 0xCFE writes the status register only (bytes 2-3 of the dword).
  const w = pciConfigDataWrite(bus, PCI_CONFIG_DATA_PORT + 2, 4, 0xffffffff);
  assert.deepEqual(w.effects, [{ kind: 'pci.cfg', bdf: PF, offset: 6, size: 2, write: true, value: 0xffff, present: true }]);
  assert.throws(() => pciConfigDataRead(bus, PCI_CONFIG_DATA_PORT, 3), AssertionFailed);
  assert.throws(() => pciConfigDataRead(bus, 0xcf8, 4), AssertionFailed);
});

test('absent functions read all ones at every size and ignore writes', () => {
  const bus = machine();
  const absent = pciBdf(0, 31, 7);
  for (const size of [1, 2, 4]) {
    for (const offset of [0, 1, 2, 3, 0x3c, 0xfc, 0x100, 0xffc]) {
      if (offset % 4 + size > 4) continue;
      const r = pciConfigRead(bus, absent, offset, size);
      assert.equal(r.result, 2 ** (8 * size) - 1);
      assert.equal((r.effects[0] as PciCfgEffect).present, false);
    }
  }
  const w = pciConfigWrite(bus, absent, PCI_COMMAND, 2, 7);
  assert.deepEqual(w.effects, [{ kind: 'pci.cfg', bdf: absent, offset: PCI_COMMAND, size: 2, write: true, value: 7, present: false }]);
  pciRun(bus, w);
  assert.equal(read(bus, absent, 0, 4), 0xffffffff);
});

function programNic(bus: PciBus): void {
  write(bus, PF, 0x10, 4, 0x00000000); // BAR0 at 0x2_0000_0000 (above 4 GiB)
  write(bus, PF, 0x14, 4, 0x00000002);
  write(bus, PF, 0x18, 4, 0xe000); // BAR2: I/O ports 0xe000..0xe01f
  write(bus, PF, 0x20, 4, 0xfe100000); // BAR4: 0xfe10_0000, 16 KiB
  write(bus, PF, 0x24, 4, 0);
}

test('BARs decode only while Memory / I/O Space Enable is set; Bus Master Enable is separate', () => {
  const bus = machine();
  programNic(bus);
  assert.deepEqual(pciBarRanges(bus), []);
  write(bus, PF, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
  assert.deepEqual(pciBarRanges(bus).map((r) => [r.bar, r.space, r.base, r.sizeBytes, r.is64]), [
    [0, 'mem', 2 ** 33, 512 * 1024, true],
    [4, 'mem', 0xfe100000, 16 * 1024, true],
  ]);
  assert.equal(pciBusMasterEnabled(bus, PF), false);
  write(bus, PF, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_IO | PCI_COMMAND_MASTER);
  assert.deepEqual(pciBarRanges(bus).map((r) => [r.bar, r.space, r.base]), [[0, 'mem', 2 ** 33], [2, 'io', 0xe000], [4, 'mem', 0xfe100000]]);
  assert.equal(pciBusMasterEnabled(bus, PF), true);
  write(bus, PF, PCI_COMMAND, 2, PCI_COMMAND_IO);
  assert.deepEqual(pciBarRanges(bus).map((r) => r.space), ['io']);
  assert.equal(pciBusMasterEnabled(bus, PF), false);
});

test('a BAR left at 0 or beyond 52 physical bits is not decoded', () => {
  const bus = machine();
  write(bus, PF, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
  assert.deepEqual(pciBarRanges(bus), [], 'unassigned BARs at reset');
  write(bus, PF, 0x20, 4, 0xfe100000);
  write(bus, PF, 0x24, 4, 0xfff00000); // 0xfff00000_fe100000: above 2^52
  assert.deepEqual(pciBarRanges(bus), []);
  write(bus, PF, 0x24, 4, 0x000fffff);
  assert.deepEqual(pciBarRanges(bus).map((r) => r.base), [0x000fffff * 2 ** 32 + 0xfe100000]);
});

test('MMIO and port lookups find the function, BAR and offset', () => {
  const bus = machine();
  programNic(bus);
  write(bus, PF, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_IO);
  assert.deepEqual(pciMmioLookup(bus, 2 ** 33), { bdf: PF, bar: 0, offset: 0 });
  assert.deepEqual(pciMmioLookup(bus, 2 ** 33 + 0x8100), { bdf: PF, bar: 0, offset: 0x8100 });
  assert.deepEqual(pciMmioLookup(bus, 2 ** 33 + 512 * 1024 - 1), { bdf: PF, bar: 0, offset: 512 * 1024 - 1 });
  assert.equal(pciMmioLookup(bus, 2 ** 33 + 512 * 1024), undefined);
  assert.deepEqual(pciMmioLookup(bus, 0xfe102004), { bdf: PF, bar: 4, offset: 0x2004 });
  assert.equal(pciMmioLookup(bus, 0xfe0fffff), undefined);
  assert.deepEqual(pciIoLookup(bus, 0xe004), { bdf: PF, bar: 2, offset: 4 });
  assert.equal(pciIoLookup(bus, 0xe020), undefined);
  write(bus, PF, PCI_COMMAND, 2, 0);
  assert.equal(pciMmioLookup(bus, 0xfe102004), undefined, 'memory decode off');
});

test('routing IDs are unique, the VFs a PF could enable included', () => {
  const bus = machine();
  assert.throws(() => pciBusAdd(bus, sriovNicPf()), AssertionFailed);
  // 02:10.0 is where the PF's first VF would appear.
  const squatter = pciFunctionCreate(pciBdf(2, 0x10, 0), { ...sriovNicPfSpec(), sriov: undefined });
  assert.throws(() => pciBusAdd(bus, squatter), AssertionFailed);
  // 02:10.1 is between VF 1 and VF 2 (stride 2): free.
  pciBusAdd(bus, pciFunctionCreate(pciBdf(2, 0x10, 1), { ...sriovNicPfSpec(), sriov: undefined }));
  // A PF whose last VF would need a routing ID past 0xFFFF.
  assert.throws(() => pciBusAdd(pciBusCreate(), sriovNicPf({ bdf: pciBdf(0xff, 0x10, 0), totalVfs: 64 })), AssertionFailed);
});

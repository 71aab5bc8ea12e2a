/**
 * Properties of the PCI model under random guest behaviour (fast-check; a failure prints the
 * seed and the shrunk list of accesses):
 * 1. random configuration writes, through the ports or by offset, never throw, never change a
 *    read-only bit, and leave exactly the VFs that VF Enable and NumVFs call for;
 * 2. deciding never changes the state, and folding the effects of a random run (config, MMIO
 *    to the MSI-X tables, interrupts raised) onto the initial state reproduces the live state,
 *    in place and inside immer's produce on a frozen snapshot (as the timeline folds);
 * 3. BAR sizing reads back ~(size - 1) with the type bits, for any BAR the spec allows;
 * 4. configuration mechanism #1 names the function and register the spec says.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { enableMapSet, freeze, produce } from 'immer';
import {
  PCI_COMMAND, PCI_COMMAND_MASTER, PCI_COMMAND_MEMORY, PCI_CONFIG_DATA_PORT, PCI_NO_BDF, PCI_SRIOV_CTRL, PCI_SRIOV_CTRL_VFE,
  PCI_SRIOV_NUM_VF, PCI_SRIOV_TOTAL_VF, PCI_SRIOV_VF_OFFSET, PCI_SRIOV_VF_STRIDE, pciApplyAll, pciBarDecode, pciBdf,
  pciBusCreate, pciConfigAddressWrite, pciConfigDataRead, pciConfigDataWrite, pciConfigRead, pciConfigWrite, pciFunctionCreate,
  pciFunctionsPresent, pciGetLe, pciMmioRead, pciMmioWrite, pciMsiSignal, pciRun, type Bdf, type PciBarSpec, type PciBus,
  type PciCfgEffect, type PciEffect, type PciOutcome,
} from '../src/core/hardware/pci/index.ts';
import { sriovNicPf } from '../src/core/hardware/nic/pf-config.ts';

enableMapSet();

const PF: Bdf = pciBdf(2, 0, 0);
const PLAIN: Bdf = pciBdf(0, 3, 0);
const SRIOV = 0x100;
const PF_MSIX_BAR = 0xfe100000;
const VF_MSIX_BAR = 0xfd100000;

/** A NIC (8 VFs) with its MSI-X BARs placed and decoding, and a plain function beside it. */
function machine(): PciBus {
  const bus = pciBusCreate([
    sriovNicPf(),
    pciFunctionCreate(PLAIN, {
      identity: { vendorId: 0x1234, deviceId: 1, revisionId: 0, classCode: 0x018000, subsystemVendorId: 0, subsystemId: 0 },
      interruptPin: 2,
      bars: [{ kind: 'mem32', sizeBytes: 4096 }, { kind: 'io', sizeBytes: 16 }],
      capabilities: [{ kind: 'msi', vectors: 8, address64: false, perVectorMask: true }, { kind: 'pcie', flr: true }],
    }),
  ]);
  const w = (bdf: Bdf, offset: number, size: number, value: number): void => { pciRun(bus, pciConfigWrite(bus, bdf, offset, size, value)); };
  w(PF, 0x20, 4, PF_MSIX_BAR);
  w(PF, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
  w(PF, SRIOV + 0x30, 4, VF_MSIX_BAR);
  return bus;
}

const TARGETS: Bdf[] = [PF, PLAIN, pciBdf(2, 0x10, 0), pciBdf(2, 0x10, 2), pciBdf(2, 0x11, 6), pciBdf(2, 0x10, 1), pciBdf(0, 0, 0)];

/** Registers worth hitting often: command, BARs, MSI, MSI-X, PCIe device control, SR-IOV. */
const HOT_OFFSETS = [
  0x04, 0x05, 0x06, 0x10, 0x14, 0x18, 0x1c, 0x20, 0x24, 0x3c, 0x40, 0x42, 0x44, 0x48, 0x4c, 0x50, 0x52, 0x54,
  0x58, 0x5c, 0x60, 0x64, 0x72, 0x73, 0xa8, 0xa9, 0xaa, 0x108, 0x10a, 0x110, 0x120, 0x124, 0x128, 0x130, 0x134,
];

const sizeArb = fc.constantFrom(1, 2, 4);
const valueArb = fc.oneof(
  fc.integer({ min: 0, max: 0xffffffff }),
  fc.constantFrom(0, 0xffffffff, 1, 3, 9, 0x8000, 0xc000, 0x0101, 0x6, 0x10, 0x4),
);
const offsetArb = fc.oneof(fc.constantFrom(...HOT_OFFSETS), fc.integer({ min: 0, max: 0xfff }));

type Op =
  | { kind: 'address'; value: number }
  | { kind: 'dataRead'; port: number; size: number }
  | { kind: 'dataWrite'; port: number; size: number; value: number }
  | { kind: 'read'; bdf: Bdf; offset: number; size: number }
  | { kind: 'write'; bdf: Bdf; offset: number; size: number; value: number }
  | { kind: 'mmioRead'; hpa: number; size: number }
  | { kind: 'mmioWrite'; hpa: number; size: number; value: number }
  | { kind: 'signal'; bdf: Bdf; vector: number };

const addressArb = fc.oneof(
  fc.integer({ min: 0, max: 0xffffffff }),
  fc.record({ enable: fc.boolean(), bdf: fc.constantFrom(...TARGETS), register: fc.constantFrom(...HOT_OFFSETS.filter((o) => o < 0x100)) })
    .map(({ enable, bdf, register }) => ((enable ? 0x80000000 : 0) | (bdf << 8) | (register & 0xfc)) >>> 0),
);
const portArb = fc.integer({ min: PCI_CONFIG_DATA_PORT, max: PCI_CONFIG_DATA_PORT + 3 });
const hpaArb = fc.tuple(fc.constantFrom(PF_MSIX_BAR, VF_MSIX_BAR, VF_MSIX_BAR + 0x4000), fc.integer({ min: 0, max: 0x2100 / 4 }))
  .map(([base, dword]) => base + dword * 4);

const writeArb = fc.record({ bdf: fc.constantFrom(...TARGETS), offset: offsetArb, size: sizeArb, value: valueArb })
  .map((o): Op => ({ kind: 'write', ...o, offset: Math.min(o.offset, 0x1000 - o.size) }));
const vfArb = fc.constantFrom(pciBdf(2, 0x10, 0), pciBdf(2, 0x10, 2), pciBdf(2, 0x10, 4));
const msiCapableArb = fc.constantFrom(PF, pciBdf(2, 0x10, 0), pciBdf(2, 0x10, 2));

/**
 * What drivers do, as short runs of writes, so that the rare states (VFs enabled, vectors
 * pending and released, function level resets) come up often: raw random writes alone
 * would almost never enable a VF.
 */
const driverArb: fc.Arbitrary<Op[]> = fc.oneof(
  fc.record({ numVfs: fc.integer({ min: 0, max: 9 }), ctrl: fc.integer({ min: 0, max: 0x1f }) }).map(({ numVfs, ctrl }): Op[] => [
    { kind: 'write', bdf: PF, offset: SRIOV + PCI_SRIOV_NUM_VF, size: 2, value: numVfs },
    { kind: 'write', bdf: PF, offset: SRIOV + PCI_SRIOV_CTRL, size: 2, value: ctrl },
  ]),
  fc.record({ bdf: fc.oneof(vfArb, fc.constant(PLAIN)), command: fc.constantFrom(0, 4, 6) })
    .map(({ bdf, command }): Op[] => [{ kind: 'write', bdf, offset: PCI_COMMAND, size: 2, value: command }]),
  fc.record({ bdf: msiCapableArb, flags: fc.constantFrom(0, 0x4000, 0x8000, 0xc000) })
    .map(({ bdf, flags }): Op[] => [{ kind: 'write', bdf, offset: 0x72, size: 2, value: flags }]),
  fc.record({ base: fc.constantFrom(PF_MSIX_BAR, VF_MSIX_BAR, VF_MSIX_BAR + 0x4000), vector: fc.integer({ min: 0, max: 3 }), mask: fc.integer({ min: 0, max: 1 }) })
    .map(({ base, vector, mask }): Op[] => [{ kind: 'mmioWrite', hpa: base + 16 * vector + 12, size: 4, value: mask }]),
  fc.record({ bdf: msiCapableArb, vector: fc.integer({ min: 0, max: 3 }) })
    .map(({ bdf, vector }): Op[] => [{ kind: 'signal', bdf, vector }]),
  // Mask, raise, unmask: how drivers move a vector; the unmask sends what was held.
  fc.record({ which: fc.integer({ min: 0, max: 2 }), vector: fc.integer({ min: 0, max: 3 }) }).map(({ which, vector }): Op[] => {
    const bdf = [PF, pciBdf(2, 0x10, 0), pciBdf(2, 0x10, 2)][which];
    const control = [PF_MSIX_BAR, VF_MSIX_BAR, VF_MSIX_BAR + 0x4000][which] + 16 * vector + 12;
    return [
      { kind: 'mmioWrite', hpa: control, size: 4, value: 1 },
      { kind: 'signal', bdf, vector },
      { kind: 'mmioWrite', hpa: control, size: 4, value: 0 },
    ];
  }),
  fc.integer({ min: 0, max: 7 }).map((vector): Op[] => [
    { kind: 'write', bdf: PLAIN, offset: 0x4c, size: 1, value: 1 << vector },
    { kind: 'signal', bdf: PLAIN, vector },
    { kind: 'write', bdf: PLAIN, offset: 0x4c, size: 1, value: 0 },
  ]),
  fc.record({ flags: fc.constantFrom(0, 1, 0x11, 0x21, 0x31), mask: fc.integer({ min: 0, max: 0xff }) }).map(({ flags, mask }): Op[] => [
    { kind: 'write', bdf: PLAIN, offset: 0x42, size: 2, value: flags },
    { kind: 'write', bdf: PLAIN, offset: 0x4c, size: 4, value: mask },
  ]),
  fc.constantFrom(PF, PLAIN, pciBdf(2, 0x10, 0), pciBdf(2, 0x10, 2))
    .map((bdf): Op[] => [{ kind: 'write', bdf, offset: (bdf === PLAIN ? 0x54 : 0xa0) + 9, size: 1, value: 0x80 }]),
);

const configOpArb: fc.Arbitrary<Op[]> = fc.oneof(
  addressArb.map((value): Op[] => [{ kind: 'address', value }]),
  fc.record({ port: portArb, size: sizeArb, value: valueArb }).map((o): Op[] => [{ kind: 'dataWrite', ...o }]),
  { arbitrary: writeArb.map((op) => [op]), weight: 2 },
  { arbitrary: driverArb, weight: 3 },
);

const anyOpArb: fc.Arbitrary<Op[]> = fc.oneof(
  configOpArb,
  fc.record({ port: portArb, size: sizeArb }).map((o): Op[] => [{ kind: 'dataRead', ...o }]),
  fc.record({ bdf: fc.constantFrom(...TARGETS), offset: offsetArb, size: sizeArb })
    .map((o): Op[] => [{ kind: 'read', ...o, offset: Math.min(o.offset, 0x1000 - o.size) }]),
  fc.record({ hpa: hpaArb, size: sizeArb }).map((o): Op[] => [{ kind: 'mmioRead', ...o }]),
  fc.record({ hpa: hpaArb, size: sizeArb, value: valueArb }).map((o): Op[] => [{ kind: 'mmioWrite', ...o }]),
  {
    arbitrary: fc.record({ bdf: fc.oneof(msiCapableArb, fc.constantFrom(PLAIN), fc.constantFrom(...TARGETS)), vector: fc.oneof(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 70 })) })
      .map((o): Op[] => [{ kind: 'signal', ...o }]),
    weight: 3,
  },
  { arbitrary: driverArb, weight: 4 },
);

/** Runs of steps, flattened into one list of accesses. */
const runArb = (step: fc.Arbitrary<Op[]>): fc.Arbitrary<Op[]> =>
  fc.array(step, { minLength: 10, maxLength: 80, size: 'max' }).map((runs) => runs.flat());

function decide(bus: PciBus, op: Op): PciOutcome<unknown> {
  switch (op.kind) {
    case 'address': return pciConfigAddressWrite(bus, op.value);
    case 'dataRead': return pciConfigDataRead(bus, op.port, op.size);
    case 'dataWrite': return pciConfigDataWrite(bus, op.port, op.size, op.value);
    case 'read': return pciConfigRead(bus, op.bdf, op.offset, op.size);
    case 'write': return pciConfigWrite(bus, op.bdf, op.offset, op.size, op.value);
    case 'mmioRead': return pciMmioRead(bus, op.hpa, op.size);
    case 'mmioWrite': return pciMmioWrite(bus, op.hpa, op.size, op.value);
    case 'signal': return pciMsiSignal(bus, op.bdf, op.vector);
  }
}

/** Every bit neither writable nor write-1-to-clear still has its reset value. */
function checkReadOnly(bus: PciBus): void {
  for (const fn of pciFunctionsPresent(bus)) {
    for (let i = 0; i < fn.config.length; i++) {
      const fixed = ~(fn.writeMask[i] | fn.w1cMask[i]) & 0xff;
      if ((fn.config[i] & fixed) !== (fn.resetConfig[i] & fixed)) {
        assert.fail(`function ${fn.bdf.toString(16)} byte 0x${i.toString(16)}: ${fn.config[i]} vs reset ${fn.resetConfig[i]}`);
      }
    }
  }
}

/** The VFs present are exactly VF 1..NumVFs at their routing IDs while VF Enable is set. */
function checkVfs(bus: PciBus): void {
  const pf = bus.functions.get(PF)!;
  const get = (field: number): number => pciGetLe(pf.config, SRIOV + field, 2);
  const enabled = (get(PCI_SRIOV_CTRL) & PCI_SRIOV_CTRL_VFE) !== 0;
  const count = enabled && get(PCI_SRIOV_NUM_VF) <= get(PCI_SRIOV_TOTAL_VF) ? get(PCI_SRIOV_NUM_VF) : 0;
  const expected = Array.from({ length: count }, (_, i) => PF + get(PCI_SRIOV_VF_OFFSET) + i * get(PCI_SRIOV_VF_STRIDE));
  const actual = pciFunctionsPresent(bus).filter((f) => f.vf !== undefined).map((f) => f.bdf);
  assert.deepEqual(actual, expected);
}

test('random configuration writes never throw, never change read-only bits, and keep VFs right', () => {
  fc.assert(fc.property(runArb(configOpArb), (ops) => {
    const bus = machine();
    // Raising a vector sets a (read-only) pending bit: that is the function's doing, not a write.
    for (const op of ops.filter((o) => o.kind !== 'signal')) {
      pciRun(bus, decide(bus, op));
      checkReadOnly(bus);
      checkVfs(bus);
    }
  }), { numRuns: 200 });
});

/**
 * The machine after a PF driver and two VF drivers have set up: VFs 1-2 enabled and decoding,
 * MSI-X enabled everywhere with vectors 0-1 unmasked at 0xFEE00000, bus mastering on.
 */
function booted(): PciBus {
  const bus = machine();
  const steps: Op[] = [
    { kind: 'write', bdf: PF, offset: SRIOV + PCI_SRIOV_NUM_VF, size: 2, value: 2 },
    { kind: 'write', bdf: PF, offset: SRIOV + PCI_SRIOV_CTRL, size: 2, value: 9 },
  ];
  for (const [bdf, base] of [[PF, PF_MSIX_BAR], [pciBdf(2, 0x10, 0), VF_MSIX_BAR], [pciBdf(2, 0x10, 2), VF_MSIX_BAR + 0x4000]]) {
    steps.push({ kind: 'write', bdf, offset: PCI_COMMAND, size: 2, value: PCI_COMMAND_MASTER | PCI_COMMAND_MEMORY });
    steps.push({ kind: 'write', bdf, offset: 0x72, size: 2, value: 0x8000 });
    for (const vector of [0, 1]) {
      steps.push({ kind: 'mmioWrite', hpa: base + 16 * vector, size: 4, value: 0xfee00000 });
      steps.push({ kind: 'mmioWrite', hpa: base + 16 * vector + 8, size: 4, value: 0x40 + vector });
      steps.push({ kind: 'mmioWrite', hpa: base + 16 * vector + 12, size: 4, value: 0 });
    }
  }
  for (const step of steps) pciRun(bus, decide(bus, step));
  return bus;
}

test('deciding changes nothing, and the fold of the effects reproduces the live state', () => {
  fc.assert(fc.property(fc.boolean(), runArb(anyOpArb), (fromBoot, ops) => {
    const start = fromBoot ? booted : machine;
    const live = start();
    const log: PciEffect[] = [];
    for (const op of ops) {
      const before = structuredClone(live);
      const outcome = decide(live, op);
      assert.deepStrictEqual(live, before, `deciding ${op.kind} changed the state`);
      log.push(...outcome.effects);
      pciApplyAll(live, outcome.effects);
    }
    const replay = start();
    pciApplyAll(replay, log);
    assert.deepStrictEqual(replay, live);
    // The timeline folds inside immer's produce onto frozen snapshots: the same fold must work there.
    const frozen = freeze(start(), true);
    const drafted = produce(frozen, (draft) => { pciApplyAll(draft as PciBus, log); });
    assert.deepStrictEqual(drafted, live);
    assert.deepStrictEqual(frozen, start(), 'the snapshot was changed in place (typed arrays are copy-on-write)');
  }), { numRuns: 200 });
});

const barArb: fc.Arbitrary<PciBarSpec> = fc.oneof(
  fc.record({ kind: fc.constant('mem32' as const), sizeBytes: fc.integer({ min: 4, max: 31 }).map((n) => 2 ** n), prefetchable: fc.boolean() }),
  fc.record({ kind: fc.constant('mem64' as const), sizeBytes: fc.integer({ min: 4, max: 48 }).map((n) => 2 ** n), prefetchable: fc.boolean() }),
  fc.record({ kind: fc.constant('io' as const), sizeBytes: fc.integer({ min: 2, max: 8 }).map((n) => 2 ** n) }),
);

test('BAR sizing reads back ~(size - 1) and the type bits for any BAR', () => {
  fc.assert(fc.property(barArb, fc.integer({ min: 0, max: 4 }), (bar, slot) => {
    const bars: (PciBarSpec | undefined)[] = [];
    bars[slot] = bar;
    const bus = pciBusCreate([pciFunctionCreate(PLAIN, {
      identity: { vendorId: 1, deviceId: 2, revisionId: 0, classCode: 0, subsystemVendorId: 0, subsystemId: 0 },
      interruptPin: 0, bars, capabilities: [],
    })]);
    const at = 0x10 + 4 * slot;
    const write = (offset: number): void => { pciRun(bus, pciConfigWrite(bus, PLAIN, offset, 4, 0xffffffff)); };
    const read = (offset: number): number => pciRun(bus, pciConfigRead(bus, PLAIN, offset, 4));
    write(at);
    if (bar.kind === 'mem64') write(at + 4);
    const low = read(at);
    if (bar.kind === 'io') {
      assert.equal(low, ((0x10000 - bar.sizeBytes) | 1) >>> 0);
    } else {
      const flags = (bar.kind === 'mem64' ? 4 : 0) | (bar.prefetchable === true ? 8 : 0);
      // ~(size - 1) over the BAR's width, with BigInt since 64-bit masks exceed 2^53.
      const width = bar.kind === 'mem64' ? 64n : 32n;
      const high = bar.kind === 'mem64' ? BigInt(read(at + 4)) << 32n : 0n;
      const sized = high | BigInt((low & ~0xf) >>> 0);
      assert.equal((1n << width) - sized, BigInt(bar.sizeBytes));
      assert.equal(low & 0xf, flags);
    }
    const fn = bus.functions.get(PLAIN)!;
    assert.equal(pciBarDecode(fn.config, fn.writeMask, at)?.sizeBytes, bar.sizeBytes);
  }), { numRuns: 300 });
});

test('mechanism #1 names bus 23:16, device 15:11, function 10:8, register 7:2 plus the port', () => {
  fc.assert(fc.property(fc.integer({ min: 0, max: 0xffffffff }), portArb, sizeArb, (address, port, size) => {
    const bus = machine();
    pciRun(bus, pciConfigAddressWrite(bus, address));
    const effect = pciConfigDataRead(bus, port, size).effects[0] as PciCfgEffect;
    const enabled = address >= 0x80000000;
    const bdf = ((address >>> 16) & 0xff) << 8 | ((address >>> 11) & 0x1f) << 3 | ((address >>> 8) & 7);
    assert.equal(effect.bdf, enabled ? bdf : PCI_NO_BDF);
    assert.equal(effect.offset, (address & 0xfc) + (port - PCI_CONFIG_DATA_PORT));
    assert.equal(effect.size, Math.min(size, PCI_CONFIG_DATA_PORT + 4 - port));
  }), { numRuns: 500 });
});

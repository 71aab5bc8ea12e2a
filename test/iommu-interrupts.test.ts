/**
 * VT-d interrupt remapping: the remappable MSI format (handle, SHV, subhandle), every fault
 * 0x20-0x26, source-id validation (SVT 1 with each SQ mask, SVT 2 bus ranges), blocking of
 * compatibility-format MSIs unless CFIS, x2APIC destinations, FPD on IRTEs, and the
 * interrupt entry cache with its invalidation.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DMAR_FRCD_REG_OFFSET, IrFaultReason, VTD_GCMD_CFI, VTD_GCMD_IRE, VtdHarness, vtdCompatibilityMsi,
  vtdIecDescriptor, vtdIrte, vtdRemappableMsi, vtdSid, vtdStaleEntries, type InterruptDelivery, type IrFault,
} from '../src/core/hardware/iommu/index.ts';

const NIC = vtdSid(3, 1, 0);

function setup(s = 7, options: { eime?: boolean; cfi?: boolean } = {}): VtdHarness {
  const h = new VtdHarness();
  h.enableInterruptRemapping(s, options);
  return h;
}

function expectFault(result: InterruptDelivery | IrFault, reason: number, message?: string): IrFault {
  assert.equal(result.kind, 'fault', message ?? `expected fault 0x${reason.toString(16)}, got ${JSON.stringify(result)}`);
  assert.equal((result as IrFault).reason, reason, message);
  return result as IrFault;
}

function expectDelivery(result: InterruptDelivery | IrFault, vector: number, destination: number, message?: string): InterruptDelivery {
  assert.equal(result.kind, 'interrupt', message ?? `expected delivery, got ${JSON.stringify(result)}`);
  assert.deepEqual([(result as InterruptDelivery).vector, (result as InterruptDelivery).destination], [vector, destination], message);
  return result as InterruptDelivery;
}

test('a remappable MSI reaches the vector and APIC id of its IRTE', () => {
  const h = setup();
  h.setIrte(5, { vector: 0x61, destination: 3, dlm: 1, dm: 1, tm: 1, rh: 1, svt: 1, sid: NIC });
  const msi = vtdRemappableMsi({ handle: 5 });
  assert.equal(msi.address, 0xfee0_00b0, 'handle in bits 19:5, interrupt format bit 4');
  const r = expectDelivery(h.msi({ sid: NIC, ...msi }), 0x61, 3);
  assert.deepEqual([r.path, r.index, r.deliveryMode, r.destinationMode, r.triggerMode, r.redirectionHint, r.iec], ['remapped', 5, 1, 1, 1, 1, 'miss']);
  assert.equal((h.msi({ sid: NIC, ...msi }) as InterruptDelivery).iec, 'hit');
  assert.equal(h.state.frcd.some((f) => f.f), false);
});

test('SHV: index = handle + subhandle; without SHV the data does not choose the entry', () => {
  const h = setup();
  for (let i = 0; i < 4; i++) h.setIrte(40 + i, { vector: 0x70 + i, destination: i });
  for (let sub = 0; sub < 4; sub++) {
    expectDelivery(h.msi({ sid: NIC, ...vtdRemappableMsi({ handle: 40, subhandle: sub }) }), 0x70 + sub, sub);
  }
  const noShv = vtdRemappableMsi({ handle: 41 });
  expectDelivery(h.msi({ sid: NIC, address: noShv.address, data: 0x0002 }), 0x71, 1, 'data[15:0] ignored without SHV');
});

test('handle bit 15 sits in address bit 2; a 64 Ki-entry table reaches it', () => {
  const h = setup(15);
  h.setIrte(0x8003, { vector: 0x99, destination: 9 });
  const msi = vtdRemappableMsi({ handle: 0x8003 });
  assert.equal(msi.address & 4, 4);
  expectDelivery(h.msi({ sid: NIC, ...msi }), 0x99, 9);
});

test('0x20 reserved field in the request: data[31:16] set', () => {
  const h = setup();
  h.setIrte(1, { vector: 0x40, destination: 0 });
  const msi = vtdRemappableMsi({ handle: 1, subhandle: 0 });
  const f = expectFault(h.msi({ sid: NIC, address: msi.address, data: 0x1_0000 }), IrFaultReason.REQUEST_RESERVED_FIELD);
  assert.equal(f.recording, 'recorded');
});

test('0x21 index beyond the table size, subhandle included', () => {
  const h = setup(3); // 16 entries
  h.setIrte(15, { vector: 0x40, destination: 0 });
  expectDelivery(h.msi({ sid: NIC, ...vtdRemappableMsi({ handle: 15 }) }), 0x40, 0);
  const f = expectFault(h.msi({ sid: NIC, ...vtdRemappableMsi({ handle: 16 }) }), IrFaultReason.INDEX_BEYOND_TABLE_SIZE);
  assert.equal(f.index, 16);
  expectFault(h.msi({ sid: NIC, ...vtdRemappableMsi({ handle: 10, subhandle: 6 }) }), IrFaultReason.INDEX_BEYOND_TABLE_SIZE);
  // The record carries the index in FI[63:48] and the requester's SID.
  const low = h.readReg(DMAR_FRCD_REG_OFFSET);
  assert.equal(low >> 48n, 16n);
  assert.equal(h.readReg(DMAR_FRCD_REG_OFFSET + 8) & 0xffffn, BigInt(NIC));
  assert.equal((h.readReg(DMAR_FRCD_REG_OFFSET + 8) >> 32n) & 0xffn, 0x21n);
});

test('0x22 IRTE not present; FPD suppresses it', () => {
  const h = setup();
  expectFault(h.msi({ sid: NIC, ...vtdRemappableMsi({ handle: 2 }) }), IrFaultReason.IRTE_NOT_PRESENT);
  h.setIrte(3, { present: false, fpd: true, vector: 0, destination: 0 });
  assert.equal(expectFault(h.msi({ sid: NIC, ...vtdRemappableMsi({ handle: 3 }) }), IrFaultReason.IRTE_NOT_PRESENT).recording, 'suppressed');
});

test('0x23 the table cannot be read (IRTA outside memory)', () => {
  const h = new VtdHarness();
  h.writeReg(0xb8, (1n << 40n) | 7n); // IRTA
  h.command(0x0100_0000); // SIRTP
  h.command(VTD_GCMD_IRE);
  expectFault(h.msi({ sid: NIC, ...vtdRemappableMsi({ handle: 0 }) }), IrFaultReason.IRT_ACCESS_FAILED);
});

test('0x24 reserved fields in the IRTE: reserved bits, posted mode, SVT 3, reserved delivery modes, xAPIC destination bits', () => {
  const h = setup();
  const good = vtdIrte({ vector: 0x40, destination: 1 });
  const cases: [string, bigint, bigint][] = [
    ['low bit 12', good.lo | (1n << 12n), good.hi],
    ['low bit 30', good.lo | (1n << 30n), good.hi],
    ['IM = 1 (posted)', good.lo | (1n << 15n), good.hi],
    ['high bit 20', good.lo, good.hi | (1n << 20n)],
    ['SVT 3', good.lo, good.hi | (3n << 18n)],
    ['DLM 3', good.lo | (3n << 5n), good.hi],
    ['DLM 6', good.lo | (6n << 5n), good.hi],
    ['DST[7:0] in xAPIC mode', good.lo | (1n << 32n), good.hi],
    ['DST[31:16] in xAPIC mode', good.lo | (1n << 50n), good.hi],
  ];
  cases.forEach(([name, lo, hi], i) => {
    h.memory.write128(h.irteAddress(10 + i), { lo, hi });
    expectFault(h.msi({ sid: NIC, ...vtdRemappableMsi({ handle: 10 + i }) }), IrFaultReason.IRTE_RESERVED_FIELD, name);
  });
  h.memory.write128(h.irteAddress(30), { lo: good.lo | (1n << 12n) | 2n, hi: good.hi });
  assert.equal(expectFault(h.msi({ sid: NIC, ...vtdRemappableMsi({ handle: 30 }) }), IrFaultReason.IRTE_RESERVED_FIELD).recording, 'suppressed', 'FPD');
  h.memory.write128(h.irteAddress(31), { lo: good.lo | (0xfn << 8n), hi: good.hi });
  expectDelivery(h.msi({ sid: NIC, ...vtdRemappableMsi({ handle: 31 }) }), 0x40, 1, 'bits 11:8 are available to software');
});

test('0x25 compatibility-format MSIs are blocked unless CFIS, and always with EIME', () => {
  const h = setup();
  const compat = vtdCompatibilityMsi({ destination: 4, vector: 0x33 });
  const f = expectFault(h.msi({ sid: NIC, ...compat }), IrFaultReason.COMPATIBILITY_FORMAT_BLOCKED);
  assert.equal(f.index, -1);
  h.command(VTD_GCMD_CFI);
  const through = expectDelivery(h.msi({ sid: NIC, ...compat }), 0x33, 4);
  assert.equal(through.path, 'compatibility');
  const x2 = setup(7, { eime: true, cfi: true });
  expectFault(x2.msi({ sid: NIC, ...compat }), IrFaultReason.COMPATIBILITY_FORMAT_BLOCKED, 'EIME blocks them whatever CFIS says');
  const off = new VtdHarness();
  const raw = expectDelivery(off.msi({ sid: NIC, ...compat }), 0x33, 4);
  assert.equal(raw.path, 'remapping-disabled');
});

test('0x26 source-id validation: SVT 1 with each SQ mask', () => {
  const h = setup();
  const owner = vtdSid(3, 1, 0);
  const masks: [number, number[], number[]][] = [
    // SQ, functions that pass, functions that fail (same bus and device)
    [0, [0], [1, 2, 4, 7]],
    [1, [0, 4], [1, 2, 3, 5]], // ignore SID bit 2
    [2, [0, 2, 4, 6], [1, 3, 5, 7]], // ignore bits 2:1
    [3, [0, 1, 2, 3, 4, 5, 6, 7], []], // ignore bits 2:0
  ];
  for (const [sq, pass, fail] of masks) {
    h.setIrte(sq, { vector: 0x50 + sq, destination: 0, svt: 1, sq, sid: owner });
    for (const fn of pass) expectDelivery(h.msi({ sid: vtdSid(3, 1, fn), ...vtdRemappableMsi({ handle: sq }) }), 0x50 + sq, 0, `SQ ${sq} function ${fn}`);
    for (const fn of fail) expectFault(h.msi({ sid: vtdSid(3, 1, fn), ...vtdRemappableMsi({ handle: sq }) }), IrFaultReason.SOURCE_ID_VALIDATION_FAILED, `SQ ${sq} function ${fn}`);
    expectFault(h.msi({ sid: vtdSid(3, 2, 0), ...vtdRemappableMsi({ handle: sq }) }), IrFaultReason.SOURCE_ID_VALIDATION_FAILED, `SQ ${sq}: another device`);
    expectFault(h.msi({ sid: vtdSid(4, 1, 0), ...vtdRemappableMsi({ handle: sq }) }), IrFaultReason.SOURCE_ID_VALIDATION_FAILED, `SQ ${sq}: another bus`);
  }
});

test('0x26 source-id validation: SVT 2 bus range [SID[15:8], SID[7:0]] in the spec order', () => {
  const h = setup();
  h.setIrte(8, { vector: 0x58, destination: 1, svt: 2, sid: (2 << 8) | 5 });
  for (const bus of [2, 3, 5]) expectDelivery(h.msi({ sid: vtdSid(bus, 7, 3), ...vtdRemappableMsi({ handle: 8 }) }), 0x58, 1, `bus ${bus}`);
  for (const bus of [0, 1, 6, 255]) expectFault(h.msi({ sid: vtdSid(bus, 0, 0), ...vtdRemappableMsi({ handle: 8 }) }), IrFaultReason.SOURCE_ID_VALIDATION_FAILED, `bus ${bus}`);
  h.setIrte(9, { vector: 0x59, destination: 1, svt: 2, sid: (5 << 8) | 2 });
  expectFault(h.msi({ sid: vtdSid(3, 0, 0), ...vtdRemappableMsi({ handle: 9 }) }), IrFaultReason.SOURCE_ID_VALIDATION_FAILED, 'start above end: an empty range');
  h.setIrte(10, { vector: 0x5a, destination: 1, svt: 0, sid: 0xffff });
  expectDelivery(h.msi({ sid: vtdSid(200, 0, 0), ...vtdRemappableMsi({ handle: 10 }) }), 0x5a, 1, 'SVT 0 checks nothing');
  h.setIrte(11, { vector: 0x5b, destination: 1, svt: 1, sid: 0x1234, fpd: true });
  assert.equal(expectFault(h.msi({ sid: NIC, ...vtdRemappableMsi({ handle: 11 }) }), IrFaultReason.SOURCE_ID_VALIDATION_FAILED).recording, 'suppressed', 'FPD');
});

test('x2APIC mode (IRTA.EIME): the destination is all 32 bits of DST', () => {
  const h = setup(7, { eime: true });
  h.setIrte(1, { vector: 0x44, destination: 0x1_0005, x2apic: true });
  expectDelivery(h.msi({ sid: NIC, ...vtdRemappableMsi({ handle: 1 }) }), 0x44, 0x1_0005);
});

test('the interrupt entry cache serves a changed IRTE until it is invalidated (global or index-selective)', () => {
  const h = setup();
  h.enableQueue();
  for (let i = 0; i < 8; i++) {
    h.setIrte(i, { vector: 0x20 + i, destination: 0, svt: 1, sid: NIC });
    h.msi({ sid: NIC, ...vtdRemappableMsi({ handle: i }) });
  }
  h.setIrte(5, { vector: 0x85, destination: 2, svt: 1, sid: vtdSid(9, 0, 0) });
  h.setIrte(6, { vector: 0x86, destination: 2 });
  const stale = expectDelivery(h.msi({ sid: NIC, ...vtdRemappableMsi({ handle: 5 }) }), 0x25, 0, 'the cached IRTE, old source id included');
  assert.equal(stale.iec, 'hit');
  assert.deepEqual(vtdStaleEntries(h.state, h.memory).map((s) => `${s.cache}:${s.key}`), ['iec:5', 'iec:6']);
  h.submit([vtdIecDescriptor({ global: false, index: 5, im: 0 })]);
  expectFault(h.msi({ sid: NIC, ...vtdRemappableMsi({ handle: 5 }) }), IrFaultReason.SOURCE_ID_VALIDATION_FAILED, 'now validated against the new IRTE');
  assert.deepEqual([...h.state.iec.keys()].sort(), [0, 1, 2, 3, 4, 5, 6, 7], 'the entry was read and cached before its source-id check failed');
  h.submit([vtdIecDescriptor({ global: false, index: 4, im: 2 })]); // entries 4..7
  assert.deepEqual([...h.state.iec.keys()].sort(), [0, 1, 2, 3]);
  expectDelivery(h.msi({ sid: NIC, ...vtdRemappableMsi({ handle: 6 }) }), 0x86, 2);
  h.submit([vtdIecDescriptor({ global: true, index: 0, im: 0 })]);
  assert.equal(h.state.iec.size, 0);
  assert.deepEqual(vtdStaleEntries(h.state, h.memory), []);
});

test('IRE off: interrupts pass undecoded by the remapping hardware', () => {
  const h = setup();
  h.command(VTD_GCMD_IRE, false);
  const r = expectDelivery(h.msi({ sid: NIC, ...vtdCompatibilityMsi({ destination: 7, vector: 0x90 }) }), 0x90, 7);
  assert.equal(r.path, 'remapping-disabled');
});

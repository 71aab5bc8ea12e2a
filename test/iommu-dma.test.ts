/**
 * VT-d DMA remapping: every fault reason 0x1-0xD the model can produce, FPD suppression,
 * fault recording with overflow and clearing, the IOTLB and context cache, large pages,
 * pass-through, stale translations after an unmap without invalidation, and the teardown
 * order. Tables are built in a map of words with the builders; the unit is driven through
 * its registers, as a hypervisor would.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DMAR_FRCD_REG_OFFSET, DMAR_FSTS_REG, DMAR_FECTL_REG, DmarFaultReason, VTD_FSTS_PFO, VTD_FSTS_PPF,
  VTD_FECTL_IM, VTD_FECTL_IP, VTD_FRCD_COUNT, VTD_CONTEXT_CACHE_MAX_ENTRIES, VTD_IOTLB_MAX_ENTRIES,
  VtdHarness, vtdContextEntry, vtdFaultStatus, vtdRootEntry, vtdRootEntryAddress, vtdSecondLevelEntry,
  vtdSid, vtdStaleEntries, vtdTeardownSteps, vtdTranslate, vtdIotlbKey, VTD_GCMD_TE,
  type DmaTranslation, type DmarFault, type VtdAttachment,
} from '../src/core/hardware/iommu/index.ts';

const DEV = vtdSid(1, 2, 0);
const PAGE = 0x1000;

function setup(fields: { did?: number; aw?: number; tt?: number; fpd?: boolean } = {}): { h: VtdHarness; at: VtdAttachment } {
  const h = new VtdHarness();
  h.enableTranslation();
  const at = h.attach(DEV, { did: fields.did ?? 7, aw: fields.aw ?? 2, tt: fields.tt, fpd: fields.fpd });
  return { h, at };
}

function expectFault(result: DmaTranslation | DmarFault, reason: number, message?: string): DmarFault {
  assert.equal(result.kind, 'fault', message ?? `expected fault 0x${reason.toString(16)}, got ${JSON.stringify(result)}`);
  assert.equal((result as DmarFault).reason, reason, message);
  return result as DmarFault;
}

function expectHpa(result: DmaTranslation | DmarFault, hpa: number): DmaTranslation {
  assert.equal(result.kind, 'translation', `expected a translation, got ${JSON.stringify(result)}`);
  assert.equal((result as DmaTranslation).hpa, hpa);
  return result as DmaTranslation;
}

test('a mapped page translates: 4-level and 3-level tables, offset kept, rights enforced', () => {
  for (const aw of [1, 2]) {
    const { h, at } = setup({ aw });
    h.map(at, 0x7000, 0x30_0000, { read: true, write: true });
    const r = expectHpa(h.dma({ sid: DEV, iova: 0x7abc, write: true }), 0x30_0abc);
    assert.equal(r.did, 7);
    assert.equal(r.level, 1);
    assert.equal(r.path, 'translated');
  }
});

test('0x1 root entry not present, 0x2 context entry not present', () => {
  const { h } = setup();
  const fault = expectFault(h.dma({ sid: vtdSid(9, 0, 0), iova: 0, write: false }), DmarFaultReason.ROOT_ENTRY_NOT_PRESENT);
  assert.equal(fault.recording, 'recorded');
  expectFault(h.dma({ sid: vtdSid(1, 3, 0), iova: 0, write: false }), DmarFaultReason.CONTEXT_ENTRY_NOT_PRESENT);
});

test('0x3 context entry invalid: AW not supported, TT reserved', () => {
  const { h } = setup();
  const a = vtdSid(1, 4, 0);
  h.writeContext(a, vtdContextEntry({ did: 1, aw: 0, slptptr: h.allocFrame() }));
  expectFault(h.dma({ sid: a, iova: 0, write: false }), DmarFaultReason.CONTEXT_ENTRY_INVALID, 'AW 0 (30-bit) is not in SAGAW');
  const b = vtdSid(1, 5, 0);
  h.writeContext(b, vtdContextEntry({ did: 1, aw: 3, slptptr: h.allocFrame() }));
  expectFault(h.dma({ sid: b, iova: 0, write: false }), DmarFaultReason.CONTEXT_ENTRY_INVALID, 'AW 3 (57-bit) is not in SAGAW');
  const c = vtdSid(1, 6, 0);
  h.writeContext(c, vtdContextEntry({ did: 1, tt: 3, slptptr: h.allocFrame() }));
  expectFault(h.dma({ sid: c, iova: 0, write: false }), DmarFaultReason.CONTEXT_ENTRY_INVALID, 'TT 3 is reserved');
});

test('0x4 address beyond MGAW/AGAW: 2^39 with a 3-level context, 2^48 with a 4-level one', () => {
  const three = setup({ aw: 1 });
  expectFault(three.h.dma({ sid: DEV, iova: 2 ** 39, write: false }), DmarFaultReason.ADDRESS_BEYOND_MGAW);
  expectFault(three.h.dma({ sid: DEV, iova: 2 ** 39 - PAGE, write: false }), DmarFaultReason.READ_NOT_PERMITTED, 'just below is a normal walk');
  const four = setup({ aw: 2 });
  expectFault(four.h.dma({ sid: DEV, iova: 2 ** 48, write: true }), DmarFaultReason.ADDRESS_BEYOND_MGAW);
  expectFault(four.h.dma({ sid: DEV, iova: 2 ** 39, write: true }), DmarFaultReason.WRITE_NOT_PERMITTED, '2^39 is inside 48 bits');
});

test('0x5 write not permitted and 0x6 read not permitted, from the leaf or any level above', () => {
  const { h, at } = setup();
  h.map(at, 0x1000, 0x40_0000, { read: true, write: false });
  h.map(at, 0x2000, 0x40_1000, { read: false, write: true });
  expectFault(h.dma({ sid: DEV, iova: 0x1000, write: true }), DmarFaultReason.WRITE_NOT_PERMITTED);
  expectHpa(h.dma({ sid: DEV, iova: 0x1000, write: false }), 0x40_0000);
  expectFault(h.dma({ sid: DEV, iova: 0x2000, write: false }), DmarFaultReason.READ_NOT_PERMITTED);
  expectHpa(h.dma({ sid: DEV, iova: 0x2000, write: true }), 0x40_1000);
  // Unmapped (R = W = 0) is reported as the missing right too.
  expectFault(h.dma({ sid: DEV, iova: 0x9000, write: true }), DmarFaultReason.WRITE_NOT_PERMITTED);
  expectFault(h.dma({ sid: DEV, iova: 0x9000, write: false }), DmarFaultReason.READ_NOT_PERMITTED);
  // Rights stack: a read-only level-4 entry makes every page below it read-only.
  const top = at.slptptr;
  const pml4e = h.memory.read64(top)!;
  h.memory.write64(top, pml4e & ~2n);
  const stacked = vtdTranslate({ ...h.state, iotlb: new Map() }, h.memory, { sid: DEV, iova: 0x2000, write: true, size: 4 });
  expectFault(stacked.result, DmarFaultReason.WRITE_NOT_PERMITTED, 'W cleared at level 4 denies the write below');
});

test('0x7, 0x8, 0x9: failed to access a second-level, root or context entry (outside memory)', () => {
  const { h, at } = setup();
  const outside = 2 ** 40; // below the host address width, beyond the 64 MiB of memory
  h.memory.write64(at.slptptr, vtdSecondLevelEntry({ read: true, write: true, address: outside }));
  expectFault(h.dma({ sid: DEV, iova: 0, write: false }), DmarFaultReason.SECOND_LEVEL_ENTRY_ACCESS_FAILED);
  const other = vtdSid(3, 0, 0);
  h.memory.write128(vtdRootEntryAddress(h.rootTable, 3), vtdRootEntry({ contextTable: outside }));
  expectFault(h.dma({ sid: other, iova: 0, write: false }), DmarFaultReason.CONTEXT_ENTRY_ACCESS_FAILED);
  h.writeReg(0x20, outside);
  h.command(0x4000_0000); // SRTP
  expectFault(h.dma({ sid: vtdSid(4, 0, 0), iova: 0, write: false }), DmarFaultReason.ROOT_ENTRY_ACCESS_FAILED);
});

test('0xA, 0xB, 0xC: reserved bits in root, context and second-level entries', () => {
  const { h, at } = setup();
  const rootAddress = vtdRootEntryAddress(h.rootTable, 1);
  const root = h.memory.read64(rootAddress)!;
  h.memory.write64(rootAddress, root | (1n << 5n));
  expectFault(h.dma({ sid: DEV, iova: 0, write: false }), DmarFaultReason.ROOT_ENTRY_RESERVED, 'root low bit 5');
  h.memory.write64(rootAddress, root);
  h.memory.write64(rootAddress + 8, 1n);
  expectFault(h.dma({ sid: DEV, iova: 0, write: false }), DmarFaultReason.ROOT_ENTRY_RESERVED, 'root high word');
  h.memory.write64(rootAddress + 8, 0n);

  const slot = h.contextSlot(DEV);
  const good = vtdContextEntry({ did: 7, slptptr: at.slptptr });
  h.memory.write128(slot, { lo: good.lo | (1n << 4n), hi: good.hi });
  expectFault(h.dma({ sid: DEV, iova: 0, write: false }), DmarFaultReason.CONTEXT_ENTRY_RESERVED, 'context low bit 4');
  h.memory.write128(slot, { lo: good.lo, hi: good.hi | (1n << 7n) });
  expectFault(h.dma({ sid: DEV, iova: 0, write: false }), DmarFaultReason.CONTEXT_ENTRY_RESERVED, 'context high bit 7');
  h.memory.write128(slot, { lo: good.lo | (1n << 50n), hi: good.hi });
  expectFault(h.dma({ sid: DEV, iova: 0, write: false }), DmarFaultReason.CONTEXT_ENTRY_RESERVED, 'SLPTPTR above the HAW');
  h.memory.write128(slot, good);

  h.map(at, 0x5000, 0x50_0000, { read: true, write: true });
  const leafAt = (iova: number): number => {
    let table = at.slptptr;
    for (let level = 4; level > 1; level--) table = Number(h.memory.read64(table + (Math.floor(iova / 2 ** (12 + 9 * (level - 1))) % 512) * 8)! & ~0xfffn & ((1n << 46n) - 1n));
    return table + (Math.floor(iova / PAGE) % 512) * 8;
  };
  const leaf = leafAt(0x5000);
  const value = h.memory.read64(leaf)!;
  for (const [bit, why] of [[11n, 'SNP without snoop control'], [47n, 'address above the HAW']] as const) {
    h.memory.write64(leaf, value | (1n << bit));
    expectFault(h.dma({ sid: DEV, iova: 0x5000, write: false }), DmarFaultReason.SECOND_LEVEL_ENTRY_RESERVED, why);
  }
  h.memory.write64(leaf, value);
  const pml4e = h.memory.read64(at.slptptr)!;
  h.memory.write64(at.slptptr, pml4e | (1n << 7n));
  expectFault(h.dma({ sid: DEV, iova: 0x5000, write: false }), DmarFaultReason.SECOND_LEVEL_ENTRY_RESERVED, 'PS at level 4');
  h.memory.write64(at.slptptr, pml4e);
  const large = setup();
  large.h.map(large.at, 0x20_0000, 0x60_0000, { read: true, write: true }, 2);
  expectHpa(large.h.dma({ sid: DEV, iova: 0x20_1234, write: false }), 0x60_1234);
  // Misalign the 2 MiB page's address: bits 20:12 of a large-page entry are reserved.
  for (const [address, word] of large.h.memory.words) {
    if ((word & (1n << 7n)) !== 0n) large.h.memory.write64(address, word | 0x1000n);
  }
  const fresh = vtdTranslate({ ...large.h.state, iotlb: new Map() }, large.h.memory, { sid: DEV, iova: 0x20_1234, write: false, size: 4 });
  expectFault(fresh.result, DmarFaultReason.SECOND_LEVEL_ENTRY_RESERVED, 'a misaligned large page');
});

test('0xD blocked by translation type: translated requests need TT = 1 (device-TLB)', () => {
  const { h, at } = setup();
  h.map(at, 0, 0x70_0000, { read: true, write: true });
  expectFault(h.dma({ sid: DEV, iova: 0x70_0000, write: true, translated: true }), DmarFaultReason.BLOCKED_BY_TRANSLATION_TYPE);
  const pt = vtdSid(1, 8, 0);
  h.attach(pt, { did: 9, tt: 2 });
  expectFault(h.dma({ sid: pt, iova: 0x1000, write: true, translated: true }), DmarFaultReason.BLOCKED_BY_TRANSLATION_TYPE, 'pass-through blocks translated requests too');
  const dt = vtdSid(1, 9, 0);
  const dtAt = h.attach(dt, { did: 10, tt: 1 });
  h.map(dtAt, 0x3000, 0x71_0000, { read: true, write: false });
  const trusted = expectHpa(h.dma({ sid: dt, iova: 0x1234_5000, write: true, translated: true }), 0x1234_5000);
  assert.equal(trusted.path, 'device-tlb', 'the device TLB is trusted with host addresses');
  expectHpa(h.dma({ sid: dt, iova: 0x3008, write: false }), 0x71_0008);
  expectFault(h.dma({ sid: dt, iova: 0x3008, write: true }), DmarFaultReason.WRITE_NOT_PERMITTED, 'TT 1 untranslated requests walk the tables like TT 0');
});

test('pass-through (TT = 2) uses the address as is; translation disabled (TES = 0) too', () => {
  const { h } = setup();
  const pt = vtdSid(2, 1, 0);
  h.attach(pt, { did: 3, tt: 2 });
  const r = expectHpa(h.dma({ sid: pt, iova: 0x12_3456, write: true }), 0x12_3456);
  assert.equal(r.path, 'pass-through');
  assert.equal(r.iotlb, 'none');
  h.command(VTD_GCMD_TE, false);
  const off = expectHpa(h.dma({ sid: vtdSid(9, 9, 1), iova: 0xabc, write: true }), 0xabc);
  assert.equal(off.path, 'translation-disabled');
  assert.equal(h.state.frcd.filter((f) => f.f).length, 0, 'no faults with remapping off');
});

test('FPD suppresses qualified faults only', () => {
  const { h } = setup({ fpd: true });
  const r = expectFault(h.dma({ sid: DEV, iova: 0x1000, write: true }), DmarFaultReason.WRITE_NOT_PERMITTED);
  assert.equal(r.recording, 'suppressed');
  assert.equal(r.frcdIndex, -1);
  expectFault(h.dma({ sid: DEV, iova: 2 ** 48, write: true }), DmarFaultReason.ADDRESS_BEYOND_MGAW);
  assert.equal(vtdFaultStatus(h.state) & VTD_FSTS_PPF, 0, 'nothing recorded');
  // A context entry that is not present but has FPD set: 0x2 is qualified.
  const quiet = vtdSid(1, 3, 1);
  h.writeContext(quiet, { lo: 2n, hi: 0n });
  assert.equal(expectFault(h.dma({ sid: quiet, iova: 0, write: false }), DmarFaultReason.CONTEXT_ENTRY_NOT_PRESENT).recording, 'suppressed');
  // Reserved bits in the context entry are not qualified: its FPD cannot be trusted.
  const broken = vtdSid(1, 3, 2);
  const entry = vtdContextEntry({ did: 1, fpd: true, slptptr: h.allocFrame() });
  h.writeContext(broken, { lo: entry.lo, hi: entry.hi | (1n << 40n) });
  assert.equal(expectFault(h.dma({ sid: broken, iova: 0, write: false }), DmarFaultReason.CONTEXT_ENTRY_RESERVED).recording, 'recorded');
});

test('fault records: F, FR, SID, FI, T in FRCD; PPF and FRI; overflow sets PFO; software clears F and PFO', () => {
  const { h } = setup();
  const sids = [vtdSid(5, 0, 0), vtdSid(5, 0, 1), vtdSid(5, 0, 2), vtdSid(5, 0, 3), vtdSid(5, 0, 4), vtdSid(5, 0, 5)];
  const first = expectFault(h.dma({ sid: sids[0], iova: 0x1234_5000, write: false }), DmarFaultReason.ROOT_ENTRY_NOT_PRESENT);
  assert.equal(first.frcdIndex, 0);
  assert.equal(h.interrupts.length, 1, 'the first pending fault raises a fault event');
  const high = h.readReg(DMAR_FRCD_REG_OFFSET + 8);
  assert.equal(high >> 63n, 1n, 'F');
  assert.equal((high >> 62n) & 1n, 1n, 'T: a read');
  assert.equal((high >> 32n) & 0xffn, 0x1n, 'FR');
  assert.equal(high & 0xffffn, BigInt(sids[0]), 'SID');
  assert.equal(h.readReg(DMAR_FRCD_REG_OFFSET), 0x1234_5000n, 'FI: the faulting page');
  const fsts = Number(h.readReg(DMAR_FSTS_REG, 4));
  assert.equal(fsts & VTD_FSTS_PPF, VTD_FSTS_PPF);
  assert.equal((fsts >> 8) & 0xff, 0, 'FRI = 0');
  for (let i = 1; i < VTD_FRCD_COUNT; i++) {
    assert.equal(expectFault(h.dma({ sid: sids[i], iova: 0, write: true }), 1).frcdIndex, i);
  }
  assert.equal(h.interrupts.length, 1, 'no new event while PPF is pending');
  const lost = expectFault(h.dma({ sid: sids[4], iova: 0, write: true }), 1);
  assert.equal(lost.recording, 'overflow', 'FRCD 0 still holds an uncleared fault');
  assert.equal(vtdFaultStatus(h.state) & VTD_FSTS_PFO, VTD_FSTS_PFO);
  assert.equal(expectFault(h.dma({ sid: sids[5], iova: 0, write: true }), 1).recording, 'overflow', 'PFO set: dropped');
  assert.equal(h.state.frcd[0].sid, sids[0], 'the old record is kept');
  // Software services the faults: clear F in every record, then PFO.
  for (let i = 0; i < VTD_FRCD_COUNT; i++) h.clearFaultRecord(i);
  assert.equal(vtdFaultStatus(h.state) & VTD_FSTS_PPF, 0, 'PPF follows the F bits');
  assert.equal(expectFault(h.dma({ sid: sids[5], iova: 0, write: true }), 1).recording, 'overflow', 'PFO still set');
  h.clearFaultStatus(VTD_FSTS_PFO);
  const again = expectFault(h.dma({ sid: sids[5], iova: 0, write: true }), 1);
  assert.deepEqual([again.recording, again.frcdIndex], ['recorded', 0], 'recording resumes at the next register');
  assert.equal(h.interrupts.length, 2);
});

test('a masked fault event stays pending in FECTL.IP and is sent when software unmasks', () => {
  const { h } = setup();
  h.writeReg(DMAR_FECTL_REG, VTD_FECTL_IM, 4);
  h.writeReg(0x3c, 0x4021, 4); // FEDATA
  h.writeReg(0x40, 0xfee0_0000, 4); // FEADDR
  expectFault(h.dma({ sid: vtdSid(7, 0, 0), iova: 0, write: false }), 1);
  assert.equal(h.interrupts.length, 0);
  assert.equal(Number(h.readReg(DMAR_FECTL_REG, 4)) & VTD_FECTL_IP, VTD_FECTL_IP);
  h.writeReg(DMAR_FECTL_REG, 0, 4);
  assert.deepEqual(h.interrupts, [{ kind: 'interrupt', cause: 'fault-event', address: 0xfee0_0000, data: 0x4021 }]);
  assert.equal(Number(h.readReg(DMAR_FECTL_REG, 4)), 0);
});

test('IOTLB: a miss fills, a hit reads no memory; keys follow QEMU; 2 MiB and 1 GiB pages cache once', () => {
  const { h, at } = setup();
  h.map(at, 0x8000, 0x80_0000, { read: true, write: true });
  const miss = expectHpa(h.dma({ sid: DEV, iova: 0x8010, write: false }), 0x80_0010);
  assert.deepEqual([miss.contextCache, miss.iotlb], ['miss', 'miss']);
  assert.ok(h.state.iotlb.has(vtdIotlbKey(8, DEV, 1)));
  assert.equal(vtdIotlbKey(8, DEV, 1), (8n | (BigInt(DEV) << 36n) | (1n << 52n)).toString(16).padStart(16, '0'));
  const reads = { count: 0 };
  const counting = { read64: (hpa: number) => (reads.count++, h.memory.read64(hpa)) };
  const hit = vtdTranslate(h.state, counting, { sid: DEV, iova: 0x8ff0, write: true, size: 16 });
  expectHpa(hit.result, 0x80_0ff0);
  assert.equal((hit.result as DmaTranslation).iotlb, 'hit');
  assert.deepEqual([reads.count, hit.effects.length], [0, 0]);
  h.map(at, 0x40_0000, 0xa0_0000, { read: true, write: true }, 2);
  h.map(at, 0x8000_0000, 0x4000_0000, { read: true, write: false }, 3);
  expectHpa(h.dma({ sid: DEV, iova: 0x40_0004, write: true }), 0xa0_0004);
  const big = expectHpa(h.dma({ sid: DEV, iova: 0x5f_f000, write: true }), 0xbf_f000);
  assert.deepEqual([big.iotlb, big.level], ['hit', 2]);
  expectHpa(h.dma({ sid: DEV, iova: 0x8000_0000, write: false }), 0x4000_0000);
  const giga = expectHpa(h.dma({ sid: DEV, iova: 0xbfff_f000, write: false }), 0x7fff_f000);
  assert.deepEqual([giga.iotlb, giga.level], ['hit', 3]);
  expectFault(h.dma({ sid: DEV, iova: 0xbfff_f000, write: true }), DmarFaultReason.WRITE_NOT_PERMITTED, 'the cached rights are enforced on a hit');
});

test('the IOTLB and the context cache are bounded and evict their oldest entry', () => {
  const { h, at } = setup();
  for (let i = 0; i <= VTD_IOTLB_MAX_ENTRIES; i++) h.map(at, i * PAGE, 0x100_0000 + i * PAGE, { read: true, write: true });
  for (let i = 0; i <= VTD_IOTLB_MAX_ENTRIES; i++) expectHpa(h.dma({ sid: DEV, iova: i * PAGE, write: false }), 0x100_0000 + i * PAGE);
  assert.equal(h.state.iotlb.size, VTD_IOTLB_MAX_ENTRIES);
  assert.ok(!h.state.iotlb.has(vtdIotlbKey(0, DEV, 1)), 'the first page was evicted');
  assert.ok(h.state.iotlb.has(vtdIotlbKey(VTD_IOTLB_MAX_ENTRIES, DEV, 1)));
  assert.equal((h.dma({ sid: DEV, iova: 0, write: false }) as DmaTranslation).iotlb, 'miss');
  for (let i = 0; i <= VTD_CONTEXT_CACHE_MAX_ENTRIES; i++) {
    const sid = vtdSid(20 + (i >> 8), (i >> 3) & 31, i & 7);
    h.attach(sid, { did: 100, slptptr: at.slptptr });
    expectHpa(h.dma({ sid, iova: 0x10, write: false }), 0x100_0010);
  }
  assert.equal(h.state.contextCache.size, VTD_CONTEXT_CACHE_MAX_ENTRIES);
  assert.ok(!h.state.contextCache.has(DEV), 'the oldest context was evicted');
});

test('a stale IOTLB entry after an unmap without invalidation is served, and vtdStaleEntries reports it', () => {
  const { h, at } = setup();
  h.map(at, 0x6000, 0x90_0000, { read: true, write: true });
  expectHpa(h.dma({ sid: DEV, iova: 0x6000, write: true }), 0x90_0000);
  assert.deepEqual(vtdStaleEntries(h.state, h.memory), []);
  h.unmap(at, 0x6000);
  const served = expectHpa(h.dma({ sid: DEV, iova: 0x6000, write: true }), 0x90_0000);
  assert.equal(served.iotlb, 'hit', 'the unit still writes the freed frame (XSA-346 shape)');
  const stale = vtdStaleEntries(h.state, h.memory);
  assert.equal(stale.length, 1);
  assert.deepEqual([stale[0].cache, stale[0].sid, stale[0].did, stale[0].key], ['iotlb', DEV, 7, vtdIotlbKey(6, DEV, 1)]);
  // Page-selective invalidation, as the driver should have done.
  h.writeReg(0x200, 0x6000n); // IVA, AM 0
  h.writeReg(0x208, (1n << 63n) | (3n << 60n) | (7n << 32n)); // IOTLB_REG: PSI, DID 7
  assert.deepEqual(vtdStaleEntries(h.state, h.memory), []);
  expectFault(h.dma({ sid: DEV, iova: 0x6000, write: true }), DmarFaultReason.WRITE_NOT_PERMITTED);
});

test('vtdStaleEntries: remapped pages, lost rights, moved domains and cleared context entries', () => {
  const { h, at } = setup();
  h.map(at, 0x1000, 0xb0_0000, { read: true, write: true });
  h.map(at, 0x2000, 0xb0_1000, { read: true, write: true });
  h.dma({ sid: DEV, iova: 0x1000, write: false });
  h.dma({ sid: DEV, iova: 0x2000, write: false });
  h.map(at, 0x1000, 0xc0_0000, { read: true, write: true });
  h.map(at, 0x2000, 0xb0_1000, { read: true, write: false });
  const details = vtdStaleEntries(h.state, h.memory).map((s) => s.detail);
  assert.equal(details.length, 2);
  assert.match(details[0], /now maps hpa 0xc00000/);
  assert.match(details[1], /lost rights: cached RW, now R/);
  h.writeContext(DEV, vtdContextEntry({ did: 8, slptptr: at.slptptr }));
  const moved = vtdStaleEntries(h.state, h.memory);
  assert.ok(moved.some((s) => s.cache === 'context-cache' && /did 7 -> 8/.test(s.detail)));
  assert.ok(moved.some((s) => s.cache === 'iotlb' && /now in domain 8/.test(s.detail)));
  h.writeContext(DEV, { lo: 0n, hi: 0n });
  assert.ok(vtdStaleEntries(h.state, h.memory).every((s) => /0x2 \(CONTEXT_ENTRY_NOT_PRESENT\)/.test(s.detail)));
});

test('teardown follows the spec: clear the context entry, invalidate the context cache, then the domain IOTLB', () => {
  const { h, at } = setup({ did: 12 });
  h.map(at, 0x3000, 0xd0_0000, { read: true, write: true });
  h.dma({ sid: DEV, iova: 0x3000, write: true });
  const steps = vtdTeardownSteps(h.state, h.memory, DEV);
  assert.deepEqual(steps.map((s) => s.op), ['clear-context-entry', 'context-cache-invalidate', 'iotlb-invalidate']);
  const [clear, cc, iotlb] = steps;
  assert.ok(clear.op === 'clear-context-entry' && clear.hpa === h.contextSlot(DEV));
  assert.ok(cc.op === 'context-cache-invalidate' && cc.invalidation.granularity === 3 && cc.invalidation.did === 12 && cc.invalidation.sid === DEV);
  assert.ok(iotlb.op === 'iotlb-invalidate' && iotlb.invalidation.granularity === 2 && iotlb.invalidation.did === 12);
  // Following them through the queue leaves nothing cached and the device faulting.
  h.enableQueue();
  h.memory.write128(clear.hpa, { lo: 0n, hi: 0n });
  assert.equal(vtdStaleEntries(h.state, h.memory).length, 2, 'between the steps both caches are stale');
  h.submit([cc.descriptor]);
  assert.deepEqual(vtdStaleEntries(h.state, h.memory).map((s) => s.cache), ['iotlb'], 'the IOTLB outlives the context until its invalidation');
  expectFault(h.dma({ sid: DEV, iova: 0x3000, write: true }), DmarFaultReason.CONTEXT_ENTRY_NOT_PRESENT, 'the context is looked up first');
  // Re-attached to the same domain with new, empty tables before the IOTLB flush: the old page is still reachable.
  h.attach(DEV, { did: 12 });
  expectHpa(h.dma({ sid: DEV, iova: 0x3000, write: true }), 0xd0_0000);
  h.writeContext(DEV, { lo: 0n, hi: 0n });
  h.submit([cc.descriptor, iotlb.descriptor]);
  assert.deepEqual(vtdStaleEntries(h.state, h.memory), []);
  assert.equal(h.state.iotlb.size, 0);
  expectFault(h.dma({ sid: DEV, iova: 0x3000, write: true }), DmarFaultReason.CONTEXT_ENTRY_NOT_PRESENT);
  assert.deepEqual(vtdTeardownSteps(h.state, h.memory, DEV), [], 'nothing left to tear down');
  const dt = vtdSid(1, 2, 1);
  h.attach(dt, { did: 13, tt: 1 });
  assert.deepEqual(vtdTeardownSteps(h.state, h.memory, dt).map((s) => s.op).at(-1), 'device-tlb-invalidate');
});

test('the context cache serves a changed context entry until a device-selective invalidation', () => {
  const { h, at } = setup();
  h.map(at, 0, 0xe0_0000, { read: true, write: true });
  expectHpa(h.dma({ sid: DEV, iova: 0, write: false }), 0xe0_0000);
  h.writeContext(DEV, vtdContextEntry({ did: 7, tt: 2, slptptr: at.slptptr }));
  expectFault(h.dma({ sid: DEV, iova: 0x5000, write: false }), DmarFaultReason.READ_NOT_PERMITTED, 'the cached context still says TT 0');
  // CCMD, device-selective, with the wrong domain id: the entry stays (spec: DID and SID must match).
  h.writeReg(0x28, (1n << 63n) | (3n << 61n) | (BigInt(DEV) << 16n) | 99n);
  assert.ok(h.state.contextCache.has(DEV));
  assert.equal(Number(h.readReg(0x28) >> 59n) & 3, 3, 'CAIG reports the granularity performed');
  h.writeReg(0x28, (1n << 63n) | (3n << 61n) | (BigInt(DEV) << 16n) | 7n);
  assert.ok(!h.state.contextCache.has(DEV));
  const now = expectHpa(h.dma({ sid: DEV, iova: 0x5000, write: false }), 0x5000);
  assert.deepEqual([now.path, now.contextCache], ['pass-through', 'miss']);
});

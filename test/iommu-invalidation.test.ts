/**
 * VT-d cache invalidation: context cache (global, domain, device with function mask), IOTLB
 * (global, domain-selective, page-selective with AM, large pages), through the registers and
 * through the queue; wait descriptors with status writes and completion interrupts; IQE on
 * bad descriptors, with IQH left on the offender.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DMAR_CCMD_REG, DMAR_FSTS_REG, DMAR_ICS_REG, DMAR_IECTL_REG, DMAR_IOTLB_REG, DMAR_IQH_REG, DMAR_IVA_REG,
  VTD_CC_DEVICE, VTD_CC_DOMAIN, VTD_CC_GLOBAL, VTD_FSTS_IQE, VTD_ICS_IWC, VTD_IECTL_IM, VTD_IECTL_IP,
  VTD_IOTLB_DOMAIN, VTD_IOTLB_GLOBAL, VTD_IOTLB_PAGE, VTD_GCMD_QIE, VtdHarness, vtdCcmdValue,
  vtdContextCacheDescriptor, vtdDeviceTlbDescriptor, vtdFaultStatus, vtdIecDescriptor, vtdIotlbDescriptor,
  vtdIotlbRegValue, vtdIvaValue, vtdSid, vtdWaitDescriptor, type VtdAttachment, type VtdEntry128,
} from '../src/core/hardware/iommu/index.ts';

const A = vtdSid(1, 0, 0);
const A1 = vtdSid(1, 0, 1);
const A4 = vtdSid(1, 0, 4);
const B = vtdSid(2, 0, 0);
const PAGES = 8;

/** Two domains: A and its functions 1 and 4 in domain 1, B in domain 2; 8 pages cached for each device. */
function setup(queue = false): { h: VtdHarness; a: VtdAttachment; b: VtdAttachment } {
  const h = new VtdHarness();
  h.enableTranslation();
  const a = h.attach(A, { did: 1 });
  h.attach(A1, { did: 1, slptptr: a.slptptr });
  h.attach(A4, { did: 1, slptptr: a.slptptr });
  const b = h.attach(B, { did: 2 });
  for (let i = 0; i < PAGES; i++) {
    h.map(a, i * 0x1000, 0x100_0000 + i * 0x1000, { read: true, write: true });
    h.map(b, i * 0x1000, 0x200_0000 + i * 0x1000, { read: true, write: true });
  }
  h.map(a, 0x20_0000, 0x300_0000, { read: true, write: true }, 2);
  for (const sid of [A, B]) for (let i = 0; i < PAGES; i++) h.dma({ sid, iova: i * 0x1000, write: false });
  h.dma({ sid: A1, iova: 0, write: false });
  h.dma({ sid: A4, iova: 0, write: false });
  h.dma({ sid: A, iova: 0x20_0000, write: false });
  if (queue) h.enableQueue();
  return { h, a, b };
}

/** Cached pages as "did:page-number", sorted. */
function cachedPages(h: VtdHarness): string[] {
  return [...h.state.iotlb.values()].map((e) => `${e.did}:${e.sid === A ? '' : e.sid.toString(16) + '/'}${e.gfn.toString(16)}`).sort();
}

function contexts(h: VtdHarness): number[] {
  return [...h.state.contextCache.keys()].sort((x, y) => x - y);
}

const ALL_A_PAGES = Array.from({ length: PAGES }, (_, i) => `1:${i}`);
const ALL_B_PAGES = Array.from({ length: PAGES }, (_, i) => `2:200/${i}`);

/** Runs an invalidation both ways: through the registers, and as a descriptor in the queue. */
function both(check: (h: VtdHarness) => void, viaRegisters: (h: VtdHarness) => void, descriptor: VtdEntry128): void {
  const r = setup(false);
  viaRegisters(r.h);
  check(r.h);
  const q = setup(true);
  q.h.submit([descriptor]);
  assert.equal(q.h.state.regs.iqh, q.h.state.regs.iqt, 'the queue drained');
  check(q.h);
}

test('context cache: global, domain and device-selective invalidation with function masks', () => {
  const global = { granularity: VTD_CC_GLOBAL, did: 0, sid: 0, fm: 0 };
  both((h) => assert.deepEqual(contexts(h), []), (h) => h.writeReg(DMAR_CCMD_REG, vtdCcmdValue(global)), vtdContextCacheDescriptor(global));
  const domain = { granularity: VTD_CC_DOMAIN, did: 1, sid: 0, fm: 0 };
  both((h) => assert.deepEqual(contexts(h), [B]), (h) => h.writeReg(DMAR_CCMD_REG, vtdCcmdValue(domain)), vtdContextCacheDescriptor(domain));
  const device = { granularity: VTD_CC_DEVICE, did: 1, sid: A, fm: 0 };
  both((h) => assert.deepEqual(contexts(h), [A1, A4, B]), (h) => h.writeReg(DMAR_CCMD_REG, vtdCcmdValue(device)), vtdContextCacheDescriptor(device));
  // FM 1 ignores SID bit 2 (function 4 goes with function 0); FM 3 ignores all function bits.
  const fm1 = { ...device, fm: 1 };
  both((h) => assert.deepEqual(contexts(h), [A1, B]), (h) => h.writeReg(DMAR_CCMD_REG, vtdCcmdValue(fm1)), vtdContextCacheDescriptor(fm1));
  const fm3 = { ...device, fm: 3 };
  both((h) => assert.deepEqual(contexts(h), [B]), (h) => h.writeReg(DMAR_CCMD_REG, vtdCcmdValue(fm3)), vtdContextCacheDescriptor(fm3));
  // A context invalidation leaves the IOTLB alone: that is a separate step of the teardown.
  both((h) => assert.equal(cachedPages(h).length, 2 * PAGES + 3), (h) => h.writeReg(DMAR_CCMD_REG, vtdCcmdValue(global)), vtdContextCacheDescriptor(global));
});

test('IOTLB: global and domain-selective invalidation', () => {
  const global = { granularity: VTD_IOTLB_GLOBAL, did: 0, address: 0, am: 0 };
  both((h) => assert.deepEqual(cachedPages(h), []), (h) => h.writeReg(DMAR_IOTLB_REG, vtdIotlbRegValue(VTD_IOTLB_GLOBAL, 0)), vtdIotlbDescriptor(global));
  const domain = { granularity: VTD_IOTLB_DOMAIN, did: 1, address: 0, am: 0 };
  both((h) => {
    assert.deepEqual(cachedPages(h), ALL_B_PAGES);
    assert.equal(contexts(h).length, 4, 'the context cache is untouched');
  }, (h) => h.writeReg(DMAR_IOTLB_REG, vtdIotlbRegValue(VTD_IOTLB_DOMAIN, 1)), vtdIotlbDescriptor(domain));
});

test('IOTLB: page-selective invalidation of 2^AM aligned pages, large pages included', () => {
  const page = (address: number, am: number) => ({ granularity: VTD_IOTLB_PAGE, did: 1, address, am });
  const psi = (address: number, am: number) => (h: VtdHarness): void => {
    h.writeReg(DMAR_IVA_REG, vtdIvaValue(address, am));
    h.writeReg(DMAR_IOTLB_REG, vtdIotlbRegValue(VTD_IOTLB_PAGE, 1));
  };
  const without = (...gone: string[]) => [...ALL_A_PAGES, '1:101/0', '1:104/0', '1:200', ...ALL_B_PAGES].filter((p) => !gone.includes(p)).sort();
  // AM 0: one page; functions 1 and 4 share the domain, so their page 0 goes too.
  both((h) => assert.deepEqual(cachedPages(h), without('1:3')), psi(0x3000, 0), vtdIotlbDescriptor(page(0x3000, 0)));
  both((h) => assert.deepEqual(cachedPages(h), without('1:0', '1:101/0', '1:104/0')), psi(0x0, 0), vtdIotlbDescriptor(page(0x0, 0)));
  // AM 2: four pages, from the address aligned down to 16 KiB.
  both((h) => assert.deepEqual(cachedPages(h), without('1:4', '1:5', '1:6', '1:7')), psi(0x6000, 2), vtdIotlbDescriptor(page(0x6000, 2)));
  // A 4 KiB invalidation inside a cached 2 MiB page drops the large page.
  both((h) => assert.deepEqual(cachedPages(h), without('1:200')), psi(0x2f_f000, 0), vtdIotlbDescriptor(page(0x2f_f000, 0)));
  // Another domain's pages at the same addresses stay.
  both((h) => assert.deepEqual(cachedPages(h), without()), (h) => {
    h.writeReg(DMAR_IVA_REG, vtdIvaValue(0x3000, 0));
    h.writeReg(DMAR_IOTLB_REG, vtdIotlbRegValue(VTD_IOTLB_PAGE, 3));
  }, vtdIotlbDescriptor({ ...page(0x3000, 0), did: 3 }));
});

test('register-based invalidation reports IAIG; AM above MAMV falls back to the domain', () => {
  const { h } = setup();
  h.writeReg(DMAR_IVA_REG, vtdIvaValue(0, 40));
  h.writeReg(DMAR_IOTLB_REG, vtdIotlbRegValue(VTD_IOTLB_PAGE, 1));
  assert.equal(Number((h.readReg(DMAR_IOTLB_REG) >> 57n) & 3n), VTD_IOTLB_DOMAIN);
  assert.deepEqual(cachedPages(h), ALL_B_PAGES);
  assert.equal(h.readReg(DMAR_IOTLB_REG) >> 63n, 0n, 'IVT reads 0: done');
});

test('with QI on, the register interface is ignored (and logged)', () => {
  const { h } = setup(true);
  h.writeReg(DMAR_CCMD_REG, vtdCcmdValue({ granularity: VTD_CC_GLOBAL, did: 0, sid: 0, fm: 0 }));
  h.writeReg(DMAR_IOTLB_REG, vtdIotlbRegValue(VTD_IOTLB_GLOBAL, 0));
  assert.equal(contexts(h).length, 4);
  assert.equal(cachedPages(h).length, 2 * PAGES + 3);
  assert.equal(h.logs.length, 2);
});

test('wait descriptor: the status write lands after the invalidations before it; IF raises a completion event', () => {
  const { h } = setup(true);
  const status = h.allocFrame();
  h.memory.write64(status, 0n);
  h.submit([
    vtdIotlbDescriptor({ granularity: VTD_IOTLB_DOMAIN, did: 2, address: 0, am: 0, drain: true }),
    vtdWaitDescriptor({ statusAddress: status + 4, statusData: 0x600d_f00d, fence: true }),
  ]);
  assert.equal(h.memory.read32(status + 4), 0x600d_f00d);
  assert.equal(h.memory.read32(status), 0, 'only 32 bits are written');
  const order = h.journal.map((e) => e.kind).filter((k) => k === 'iotlb.invalidate' || k === 'memory.write32');
  assert.deepEqual(order, ['iotlb.invalidate', 'memory.write32']);
  assert.deepEqual(cachedPages(h).filter((p) => p.startsWith('2:')), []);
  h.writeReg(0xa4, 0x31, 4); // IEDATA
  h.writeReg(0xa8, 0xfee0_1000, 4); // IEADDR
  h.submit([vtdWaitDescriptor({ interrupt: true })]);
  assert.deepEqual(h.interrupts, [{ kind: 'interrupt', cause: 'invalidation-completion', address: 0xfee0_1000, data: 0x31 }]);
  assert.equal(Number(h.readReg(DMAR_ICS_REG, 4)) & VTD_ICS_IWC, VTD_ICS_IWC);
  h.submit([vtdWaitDescriptor({ interrupt: true })]);
  assert.equal(h.interrupts.length, 1, 'IWC still set: no new event');
  h.writeReg(DMAR_ICS_REG, VTD_ICS_IWC, 4);
  h.writeReg(DMAR_IECTL_REG, VTD_IECTL_IM, 4);
  h.submit([vtdWaitDescriptor({ interrupt: true })]);
  assert.equal(h.interrupts.length, 1, 'masked');
  assert.equal(Number(h.readReg(DMAR_IECTL_REG, 4)) & VTD_IECTL_IP, VTD_IECTL_IP);
  h.writeReg(DMAR_IECTL_REG, 0, 4);
  assert.equal(h.interrupts.length, 2, 'unmasking sends the pending event');
});

test('IQE: an invalid descriptor stops the queue with IQH on it; fixed and cleared, the queue resumes', () => {
  const { h } = setup(true);
  const status = h.allocFrame();
  const good = vtdIotlbDescriptor({ granularity: VTD_IOTLB_DOMAIN, did: 1, address: 0, am: 0 });
  const bad: VtdEntry128 = { lo: 7n, hi: 0n }; // descriptor type 7 does not exist in legacy mode
  h.submit([good, bad, vtdWaitDescriptor({ statusAddress: status, statusData: 1 })]);
  assert.equal(vtdFaultStatus(h.state) & VTD_FSTS_IQE, VTD_FSTS_IQE);
  assert.equal(Number(h.readReg(DMAR_IQH_REG)) >> 4, 1, 'IQH points at the bad descriptor');
  assert.equal(h.memory.read32(status), 0, 'the wait after it did not run');
  assert.deepEqual(cachedPages(h), ALL_B_PAGES, 'the one before it did');
  assert.equal(h.interrupts.length, 1, 'IQE raises a fault event');
  assert.match(h.logs.at(-1)!, /descriptor 1: invalid descriptor type 7/);
  // While IQE is set, more descriptors wait.
  h.submit([vtdIotlbDescriptor({ granularity: VTD_IOTLB_GLOBAL, did: 0, address: 0, am: 0 })]);
  assert.deepEqual(cachedPages(h), ALL_B_PAGES);
  // Software replaces the descriptor and clears IQE; the unit resumes from IQH.
  h.memory.write128(h.state.regs.iqa + 16, vtdDeviceTlbDescriptor({ sid: A }));
  h.writeReg(DMAR_FSTS_REG, VTD_FSTS_IQE, 4);
  const resumed = h.runQueue();
  assert.deepEqual([resumed.processed, resumed.waits, resumed.error], [3, 1, null]);
  assert.equal(h.memory.read32(status), 1);
  assert.deepEqual(cachedPages(h), []);
});

test('IQE on reserved bits, granularity 0, AM above MAMV, scalable-mode types and descriptors outside memory', () => {
  const cases: [string, VtdEntry128][] = [
    ['context-cache with a reserved bit', { lo: vtdContextCacheDescriptor({ granularity: 1, did: 0, sid: 0, fm: 0 }).lo | (1n << 60n), hi: 0n }],
    ['context-cache with granularity 0', { lo: 1n, hi: 0n }],
    ['IOTLB with a reserved high bit', { lo: vtdIotlbDescriptor({ granularity: 1, did: 0, address: 0, am: 0 }).lo, hi: 1n << 8n }],
    ['IOTLB page-selective with AM 19', vtdIotlbDescriptor({ granularity: 3, did: 1, address: 0, am: 19 })],
    ['interrupt entry cache with a reserved bit', { lo: vtdIecDescriptor({ global: true, index: 0, im: 0 }).lo | (1n << 10n), hi: 0n }],
    ['wait with a reserved low bit', { lo: vtdWaitDescriptor({}).lo | (1n << 8n), hi: 0n }],
    ['wait with a misaligned status address', { lo: vtdWaitDescriptor({ statusAddress: 0x1000 }).lo, hi: 0x1002n }],
    ['type 0', { lo: 0n, hi: 0n }],
    ['a PASID-based type (bits 11:9)', { lo: 0x202n, hi: 0n }],
  ];
  for (const [name, descriptor] of cases) {
    const h = new VtdHarness();
    h.enableQueue();
    h.submit([descriptor]);
    assert.equal(vtdFaultStatus(h.state) & VTD_FSTS_IQE, VTD_FSTS_IQE, name);
    assert.equal(h.state.regs.iqh, 0, name);
  }
  const outside = new VtdHarness({ memoryBytes: 0x20_0000, firstFrame: 0x1f_f000 });
  outside.enableQueue();
  outside.writeReg(0x90, (1n << 40n)); // IQA far beyond memory
  outside.writeReg(0x88, 0x10); // IQT = 1
  assert.equal(vtdFaultStatus(outside.state) & VTD_FSTS_IQE, VTD_FSTS_IQE, 'fetch outside memory');
  assert.match(outside.logs.at(-1)!, /outside memory/);
});

test('QI: disabling resets IQH; the queue wraps around its end', () => {
  const h = new VtdHarness();
  h.enableQueue(0);
  const status = h.allocFrame();
  for (let round = 1; round <= 300; round++) h.submit([vtdWaitDescriptor({ statusAddress: status, statusData: round })]);
  assert.equal(h.memory.read32(status), 300);
  assert.equal(h.state.regs.iqh >> 4, 300 % 256, 'IQH wrapped past the 256th descriptor');
  h.command(VTD_GCMD_QIE, false);
  assert.equal(h.state.regs.iqh, 0);
});

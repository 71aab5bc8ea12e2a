/**
 * Properties of the VT-d model, with fast-check:
 * - caches are transparent: right after a global invalidation, translating through the
 *   context cache and IOTLB gives what a walk with empty caches gives, and both agree with a
 *   tiny model of the mappings the test made;
 * - hostile tables (random 64-bit words everywhere, random register writes) never make a
 *   function throw: everything ends in a translation, a delivery or a spec-named fault;
 * - the fold: functions do not touch their input, are deterministic, return plain (JSON)
 *   effects, and folding the logged effects from any checkpoint reproduces the live state;
 *   the folded state shows what the results said (a miss is a hit next time, a recorded
 *   fault sits in its FRCD).
 * Failures print fast-check's seed and path; rerun with them to replay.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  DMAR_CCMD_REG, DMAR_FECTL_REG, DMAR_FRCD_REG_OFFSET, DMAR_FSTS_REG, DMAR_GCMD_REG, DMAR_IOTLB_REG,
  DMAR_IVA_REG, DMAR_REG_SIZE, DmarFaultReason, IrFaultReason, VTD_CC_GLOBAL, VTD_GCMD_CFI,
  VTD_GCMD_IRE, VTD_GCMD_TE, VTD_IOTLB_GLOBAL, VtdHarness, vtdApply, vtdApplyAll, vtdCcmdValue,
  vtdClearFault, vtdContextCacheDescriptor, vtdGcmdWith, vtdIecDescriptor, vtdInitialState,
  vtdIotlbDescriptor, vtdIotlbRegValue, vtdIvaValue, vtdProcessQueue, vtdRegisterRead, vtdRegisterWrite,
  vtdRemapInterrupt, vtdRemappableMsi, vtdSid, vtdStaleEntries, vtdTeardownSteps, vtdTranslate,
  vtdWaitDescriptor, type DmaRequest, type DmaTranslation, type DmarFault, type PhysicalMemory,
  type VtdAttachment, type VtdEffect, type VtdEntry128, type VtdState,
} from '../src/core/hardware/iommu/index.ts';

fc.configureGlobal({ includeErrorInReport: true });

const DMAR_REASONS = new Set<number>(Object.values(DmarFaultReason));
const IR_REASONS = new Set<number>(Object.values(IrFaultReason));

/** The state with its Maps as entry lists in insertion order (eviction order is state too). */
function canonical(state: VtdState): unknown {
  return { ...state, contextCache: [...state.contextCache], iotlb: [...state.iotlb], iec: [...state.iec] };
}

function withEmptyCaches(state: VtdState): VtdState {
  return { ...state, contextCache: new Map(), iotlb: new Map(), iec: new Map() };
}

/** What a translation says, without how the caches were used. */
function essence(result: DmaTranslation | DmarFault): string {
  return result.kind === 'translation' ? `hpa ${result.hpa} level ${result.level} did ${result.did} ${result.path}` : `fault 0x${result.reason.toString(16)}`;
}

// ---- caches are transparent after a global invalidation ---------------------------------

const DEVICES = [
  { sid: vtdSid(0, 1, 0), did: 1, aw: 2 },
  { sid: vtdSid(0, 1, 1), did: 1, aw: 2, sharesWith: 0 },
  { sid: vtdSid(4, 2, 0), did: 2, aw: 1 },
] as const;
const SMALL_PAGES = 12;
const LARGE_BASE = 0x4000_0000;
const LARGE_PAGES = 3;

type TableOp =
  | { op: 'map'; dev: number; page: number; frame: number; read: boolean; write: boolean }
  | { op: 'map-large'; dev: number; slot: number; frame: number; read: boolean; write: boolean }
  | { op: 'unmap'; dev: number; iova: number }
  | { op: 'dma'; dev: number; iova: number; write: boolean }
  | { op: 'flush' };

const devArb = fc.integer({ min: 0, max: DEVICES.length - 1 });
const iovaArb = fc.oneof(
  fc.integer({ min: 0, max: SMALL_PAGES - 1 }).chain((page) => fc.integer({ min: 0, max: 4092 }).map((o) => page * 0x1000 + (o & ~3))),
  fc.integer({ min: 0, max: LARGE_PAGES - 1 }).chain((slot) => fc.integer({ min: 0, max: 511 }).map((p) => LARGE_BASE + slot * 0x20_0000 + p * 0x1000)),
  fc.constantFrom(2 ** 39, 2 ** 48 - 0x1000, 2 ** 48),
);
const tableOpArb: fc.Arbitrary<TableOp> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant('map' as const), dev: devArb, page: fc.integer({ min: 0, max: SMALL_PAGES - 1 }), frame: fc.integer({ min: 0, max: 63 }), read: fc.boolean(), write: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('map-large' as const), dev: devArb, slot: fc.integer({ min: 0, max: LARGE_PAGES - 1 }), frame: fc.integer({ min: 0, max: 7 }), read: fc.boolean(), write: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('unmap' as const), dev: devArb, iova: iovaArb }) },
  { weight: 5, arbitrary: fc.record({ op: fc.constant('dma' as const), dev: devArb, iova: iovaArb, write: fc.boolean() }) },
  { weight: 1, arbitrary: fc.constant({ op: 'flush' as const }) },
);

/** The tiny model: per second-level table, iova page -> host page and rights. */
type Model = Map<number, Map<number, { hpa: number; read: boolean; write: boolean; size: number }>>;

function modelLookup(model: Model, at: VtdAttachment, iova: number): { hpa: number; read: boolean; write: boolean } | undefined {
  const table = model.get(at.slptptr)!;
  for (const size of [0x1000, 0x20_0000]) {
    const base = Math.floor(iova / size) * size;
    const entry = table.get(base);
    if (entry !== undefined && entry.size === size) return { ...entry, hpa: entry.hpa + (iova - base) };
  }
  return undefined;
}

function globalFlush(h: VtdHarness): void {
  h.writeReg(DMAR_CCMD_REG, vtdCcmdValue({ granularity: VTD_CC_GLOBAL, did: 0, sid: 0, fm: 0 }));
  h.writeReg(DMAR_IOTLB_REG, vtdIotlbRegValue(VTD_IOTLB_GLOBAL, 0));
}

function runTableOps(ops: TableOp[]): { h: VtdHarness; model: Model; attachments: VtdAttachment[] } {
  const h = new VtdHarness();
  h.enableTranslation();
  const attachments: VtdAttachment[] = [];
  for (const d of DEVICES) {
    const shared = 'sharesWith' in d ? attachments[d.sharesWith].slptptr : undefined;
    attachments.push(h.attach(d.sid, { did: d.did, aw: d.aw, slptptr: shared }));
  }
  const model: Model = new Map(attachments.map((a) => [a.slptptr, new Map()]));
  for (const op of ops) {
    const at = attachments[op.op === 'flush' ? 0 : op.dev];
    const table = model.get(at.slptptr)!;
    if (op.op === 'map') {
      h.map(at, op.page * 0x1000, 0x800_0000 + op.frame * 0x1000, op);
      table.set(op.page * 0x1000, { hpa: 0x800_0000 + op.frame * 0x1000, read: op.read, write: op.write, size: 0x1000 });
    } else if (op.op === 'map-large') {
      const iova = LARGE_BASE + op.slot * 0x20_0000;
      h.map(at, iova, 0x1000_0000 + op.frame * 0x20_0000, op, 2);
      table.set(iova, { hpa: 0x1000_0000 + op.frame * 0x20_0000, read: op.read, write: op.write, size: 0x20_0000 });
    } else if (op.op === 'unmap') {
      h.unmap(at, op.iova);
      const covering = [0x1000, 0x20_0000].map((size) => ({ size, base: Math.floor(op.iova / size) * size })).find(({ size, base }) => table.get(base)?.size === size);
      if (covering !== undefined) table.delete(covering.base);
    } else if (op.op === 'dma') {
      h.dma({ sid: DEVICES[op.dev].sid, iova: op.iova, write: op.write });
    } else {
      globalFlush(h);
    }
  }
  return { h, model, attachments };
}

test('property: right after a global invalidation, cached translation = uncached walk = the tiny model', () => {
  const requestArb = fc.record({ dev: devArb, iova: iovaArb, write: fc.boolean() });
  fc.assert(fc.property(fc.array(tableOpArb, { maxLength: 60, size: 'max' }), fc.array(requestArb, { minLength: 1, maxLength: 20, size: 'max' }), (ops, requests) => {
    const { h, model, attachments } = runTableOps(ops);
    globalFlush(h);
    assert.deepEqual(vtdStaleEntries(h.state, h.memory), [], 'nothing is stale right after the flush');
    for (const r of requests) {
      const request: DmaRequest = { sid: DEVICES[r.dev].sid, iova: r.iova, write: r.write, size: 4 };
      const uncached = vtdTranslate(withEmptyCaches(h.state), h.memory, request).result;
      const first = h.dma(request);
      const second = h.dma(request);
      assert.equal(essence(first), essence(uncached), 'through the caches (first time)');
      assert.equal(essence(second), essence(uncached), 'through the caches (second time)');
      const at = attachments[r.dev];
      const expected = modelLookup(model, at, r.iova);
      const agaw = 30 + 9 * at.aw;
      if (r.iova >= 2 ** Math.min(agaw, 48)) {
        assert.equal(essence(first), `fault 0x${DmarFaultReason.ADDRESS_BEYOND_MGAW.toString(16)}`);
      } else if (expected !== undefined && (r.write ? expected.write : expected.read)) {
        assert.equal(first.kind === 'translation' && first.hpa, expected.hpa, 'the model agrees');
      } else {
        const reason = r.write ? DmarFaultReason.WRITE_NOT_PERMITTED : DmarFaultReason.READ_NOT_PERMITTED;
        assert.equal(essence(first), `fault 0x${reason.toString(16)}`, 'the model says: no right');
      }
    }
    assert.deepEqual(vtdStaleEntries(h.state, h.memory), [], 'filling the caches makes nothing stale');
  }), { numRuns: 400 });
});

// ---- hostile tables never throw ---------------------------------------------------------

const MEMORY_BYTES = 1 << 22;
const FRAMES = MEMORY_BYTES / 0x1000;

/** Memory whose every word is one of `words` (chosen by a hash of the address). */
function hostileMemory(words: bigint[]): PhysicalMemory {
  return {
    read64(hpa: number): bigint | undefined {
      if (hpa < 0 || hpa + 8 > MEMORY_BYTES) return undefined;
      const h = Math.imul((hpa / 8) ^ 0x9e37_79b9, 0x85eb_ca6b) >>> 0;
      return words[h % words.length];
    },
  };
}

const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
/** Low bits that mean something in some entry: P, P|FPD, TT, AW, R|W, R|W|PS, descriptor types, IRTE P|SVT... */
const lowBitsArb = fc.oneof(fc.constantFrom(0x0, 0x1, 0x2, 0x3, 0x5, 0x9, 0x83, 0x4, 0x21, 0x25, 0x32, 0x801), fc.integer({ min: 0, max: 0xfff }));
/** Mostly words that look like entries (an address in or just beyond memory, meaningful low bits), some pure noise. */
const wordArb = fc.oneof(
  { weight: 4, arbitrary: fc.tuple(fc.integer({ min: 0, max: FRAMES + 16 }), lowBitsArb, fc.constantFrom(0n, 0n, 0n, 0n, 1n << 62n, 1n << 50n, 1n << 63n, 0x41n << 32n)).map(([frame, low, high]) => (BigInt(frame) << 12n) | BigInt(low) | high) },
  { weight: 1, arbitrary: u64 },
  { weight: 2, arbitrary: fc.constantFrom(0n, 0n, 1n, 2n, 0x102n, 0xffff_ffff_ffff_ffffn) },
);

type HostileOp =
  | { op: 'reg'; offset: number; size: 4 | 8; value: bigint }
  | { op: 'dma'; sid: number; iova: number; write: boolean; translated: boolean }
  | { op: 'msi'; sid: number; low: number; data: number }
  | { op: 'queue'; tail: number }
  | { op: 'check'; sid: number };

const hostileOpArb: fc.Arbitrary<HostileOp> = fc.oneof(
  fc.record({
    op: fc.constant('reg' as const), size: fc.constantFrom(4 as const, 8 as const), value: u64,
    offset: fc.oneof(fc.integer({ min: 0, max: DMAR_REG_SIZE / 8 }).map((i) => i * 8), fc.constantFrom(0x18, 0x1c, 0x20, 0x28, 0x34, 0x38, 0x88, 0x90, 0xb8, 0x208, 0x228)),
  }).map((r) => (r.offset % r.size === 0 ? r : { ...r, size: 4 as const })),
  fc.record({ op: fc.constant('dma' as const), sid: fc.integer({ min: 0, max: 0xffff }), iova: fc.integer({ min: 0, max: 2 ** 40 }).map((x) => x * 4096 + 8), write: fc.boolean(), translated: fc.boolean() }),
  fc.record({
    op: fc.constant('msi' as const), sid: fc.integer({ min: 0, max: 0xffff }),
    low: fc.integer({ min: 0, max: 0xf_ffff }).map((x) => (x % 8 === 0 ? x : x | 0x10)),
    data: fc.oneof(fc.integer({ min: 0, max: 7 }), fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 0xffff_ffff })),
  }),
  fc.record({ op: fc.constant('queue' as const), tail: fc.integer({ min: 0, max: 12 }) }),
  fc.record({ op: fc.constant('check' as const), sid: fc.integer({ min: 0, max: 0xffff }) }),
);

/** Registers that turn everything on, pointing into hostile memory. */
const enableArb = fc.tuple(fc.integer({ min: 0, max: FRAMES + 4 }), fc.integer({ min: 0, max: FRAMES + 4 }), fc.integer({ min: 0, max: 15 }), fc.integer({ min: 0, max: FRAMES }), fc.integer({ min: 0, max: 7 }));

test('property: random 64-bit table words and register values never make the unit throw', () => {
  fc.assert(fc.property(fc.array(wordArb, { minLength: 1, maxLength: 24 }), enableArb, fc.array(hostileOpArb, { maxLength: 40, size: 'max' }), (words, [root, irt, s, queue, qs], ops) => {
    const memory = hostileMemory(words);
    const state = vtdInitialState();
    const write = (offset: number, size: 4 | 8, value: bigint): void => vtdApplyAll(state, vtdRegisterWrite(state, memory, offset, size, value).effects);
    write(0x20, 8, BigInt(root) << 12n);
    write(0xb8, 8, (BigInt(irt) << 12n) | BigInt(s));
    write(0x90, 8, (BigInt(queue) << 12n) | BigInt(qs & 3));
    for (const command of [0x4000_0000, 0x0100_0000, VTD_GCMD_TE, VTD_GCMD_IRE, 0x0400_0000]) write(DMAR_GCMD_REG, 4, BigInt(vtdGcmdWith(state, command)));
    for (const op of ops) {
      if (op.op === 'reg') {
        write(op.offset, op.size, op.value);
        vtdRegisterRead(state, op.offset, op.size);
      } else if (op.op === 'dma') {
        const { result, effects } = vtdTranslate(state, memory, { sid: op.sid, iova: op.iova, write: op.write, size: 8, translated: op.translated });
        assert.ok(result.kind === 'translation' || DMAR_REASONS.has(result.reason), JSON.stringify(result));
        vtdApplyAll(state, effects);
      } else if (op.op === 'msi') {
        const { result, effects } = vtdRemapInterrupt(state, memory, { sid: op.sid, address: 0xfee0_0000 + op.low, data: op.data });
        assert.ok(result.kind === 'interrupt' || IR_REASONS.has(result.reason), JSON.stringify(result));
        vtdApplyAll(state, effects);
      } else if (op.op === 'queue') {
        write(0x88, 8, BigInt(op.tail << 4));
        vtdApplyAll(state, vtdProcessQueue(state, memory).effects);
      } else {
        vtdStaleEntries(state, memory);
        vtdTeardownSteps(state, memory, op.sid);
      }
    }
    for (let i = 0; i < state.frcd.length; i++) vtdApplyAll(state, vtdClearFault(state, i).effects);
  }), { numRuns: 500 });
});

// ---- a programmed unit: corrupted tables, and the fold --------------------------------

const NIC = vtdSid(1, 0, 0);
const DISK = vtdSid(2, 0, 0);

/** A unit with two devices, a few mappings, eight IRTEs and the queue on, to run operations against. */
function programmedUnit(): VtdHarness {
  const h = new VtdHarness();
  h.enableTranslation();
  const nic = h.attach(NIC, { did: 1 });
  const disk = h.attach(DISK, { did: 2, aw: 1 });
  for (let i = 0; i < 8; i++) {
    h.map(nic, i * 0x1000, 0x200_0000 + i * 0x1000, { read: true, write: i % 3 !== 0 });
    h.map(disk, i * 0x1000, 0x300_0000 + i * 0x1000, { read: i % 2 === 0, write: true });
  }
  h.enableInterruptRemapping(3);
  for (let i = 0; i < 8; i++) h.setIrte(i, { vector: 0x30 + i, destination: i % 4, svt: i % 3, sq: 0, sid: i % 2 === 0 ? NIC : (1 << 8) | 1 });
  h.enableQueue();
  return h;
}

test('property: valid tables with random words overwritten give translations or spec-named faults, never a throw', () => {
  const corruptionArb = fc.array(fc.tuple(fc.nat(), wordArb), { minLength: 1, maxLength: 6 });
  const requestArb = fc.record({ sid: fc.constantFrom(NIC, DISK, vtdSid(1, 0, 1)), page: fc.integer({ min: 0, max: 9 }), write: fc.boolean(), translated: fc.boolean() });
  fc.assert(fc.property(corruptionArb, fc.array(requestArb, { minLength: 1, maxLength: 12 }), fc.array(fc.integer({ min: 0, max: 17 }), { maxLength: 8 }), (corruption, requests, handles) => {
    const h = programmedUnit();
    const addresses = [...h.memory.words.keys()].sort((a, b) => a - b);
    for (const [pick, word] of corruption) h.memory.write64(addresses[pick % addresses.length], word);
    for (const r of requests) {
      const result = h.dma({ sid: r.sid, iova: r.page * 0x1000 + 8, write: r.write, translated: r.translated && r.page === 9 });
      assert.ok(result.kind === 'translation' || DMAR_REASONS.has(result.reason), JSON.stringify(result));
    }
    for (const handle of handles) {
      const result = h.msi({ sid: NIC, ...vtdRemappableMsi({ handle }) });
      assert.ok(result.kind === 'interrupt' || IR_REASONS.has(result.reason), JSON.stringify(result));
    }
    h.submit([vtdWaitDescriptor({ interrupt: true })]);
    vtdStaleEntries(h.state, h.memory);
    for (const sid of [NIC, DISK]) vtdTeardownSteps(h.state, h.memory, sid);
  }), { numRuns: 400 });
});

type FoldOp =
  | { op: 'dma'; sid: number; page: number; write: boolean }
  | { op: 'msi'; sid: number; handle: number; compat: boolean }
  | { op: 'clear-fault'; index: number }
  | { op: 'reg'; which: number; value: number }
  | { op: 'submit'; descriptors: number[] };

const DESCRIPTORS: VtdEntry128[] = [
  vtdContextCacheDescriptor({ granularity: 1, did: 0, sid: 0, fm: 0 }),
  vtdContextCacheDescriptor({ granularity: 3, did: 1, sid: NIC, fm: 0 }),
  vtdIotlbDescriptor({ granularity: 1, did: 0, address: 0, am: 0 }),
  vtdIotlbDescriptor({ granularity: 2, did: 2, address: 0, am: 0 }),
  vtdIotlbDescriptor({ granularity: 3, did: 1, address: 0x2000, am: 1 }),
  vtdIecDescriptor({ global: false, index: 2, im: 1 }),
  vtdWaitDescriptor({ interrupt: true }),
  { lo: 0x9n, hi: 0n }, // invalid: IQE
];

const foldOpArb: fc.Arbitrary<FoldOp> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ op: fc.constant('dma' as const), sid: fc.constantFrom(NIC, DISK, vtdSid(9, 0, 0)), page: fc.integer({ min: 0, max: 10 }), write: fc.boolean() }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('msi' as const), sid: fc.constantFrom(NIC, vtdSid(1, 0, 1), DISK), handle: fc.integer({ min: 0, max: 17 }), compat: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('clear-fault' as const), index: fc.integer({ min: 0, max: 3 }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('reg' as const), which: fc.integer({ min: 0, max: 7 }), value: fc.integer({ min: 0, max: 0xffff_ffff }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('submit' as const), descriptors: fc.array(fc.integer({ min: 0, max: DESCRIPTORS.length - 1 }), { minLength: 1, maxLength: 4 }) }) },
);

/** Runs one operation as a pure function of (state, memory); software's own stores go to memory first. */
function decide(h: VtdHarness, op: FoldOp, queueTail: { index: number }): { result: unknown; effects: VtdEffect[] } {
  const state = h.state;
  switch (op.op) {
    case 'dma': return vtdTranslate(state, h.memory, { sid: op.sid, iova: op.page * 0x1000 + 16, write: op.write, size: 8 });
    case 'msi': {
      const msi = op.compat ? { address: 0xfee0_1000, data: 0x41 } : vtdRemappableMsi({ handle: op.handle });
      return vtdRemapInterrupt(state, h.memory, { sid: op.sid, ...msi });
    }
    case 'clear-fault': return { result: null, ...vtdClearFault(state, op.index) };
    case 'reg': {
      const writes: [number, 4 | 8, bigint][] = [
        [DMAR_FSTS_REG, 4, BigInt(op.value & 0x71)],
        [DMAR_FECTL_REG, 4, BigInt(op.value & 0x8000_0000)],
        [DMAR_GCMD_REG, 4, BigInt(vtdGcmdWith(state, VTD_GCMD_CFI, (op.value & 1) === 1))],
        [DMAR_FRCD_REG_OFFSET + (op.value % 4) * 16 + 8, 8, 1n << 63n],
        [DMAR_IVA_REG, 8, vtdIvaValue((op.value % 16) * 0x1000, op.value % 3)],
        [0x9c, 4, 1n], // ICS: clear IWC
        [DMAR_GCMD_REG, 4, BigInt(vtdGcmdWith(state, VTD_GCMD_TE, (op.value & 2) === 0))],
        [0xa0, 4, BigInt(op.value & 0x8000_0000)], // IECTL
      ];
      const [offset, size, value] = writes[op.which];
      return { result: null, ...vtdRegisterWrite(state, h.memory, offset, size, value) };
    }
    case 'submit': {
      const base = state.regs.iqa - (state.regs.iqa % 4096);
      for (const d of op.descriptors) {
        h.memory.write128(base + queueTail.index * 16, DESCRIPTORS[d]);
        queueTail.index = (queueTail.index + 1) % 256;
      }
      return { result: null, ...vtdRegisterWrite(state, h.memory, 0x88, 8, BigInt(queueTail.index << 4)) };
    }
  }
}

test('property: the fold of the logged effects reproduces the state; functions are pure and deterministic', () => {
  fc.assert(fc.property(fc.array(foldOpArb, { minLength: 1, maxLength: 40, size: 'max' }), fc.nat(), (ops, checkpointSeed) => {
    const h = programmedUnit();
    const queueTail = { index: h.state.regs.iqt >> 4 };
    const checkpointAt = checkpointSeed % ops.length;
    let checkpoint: VtdState | undefined;
    const log: string[] = [];
    for (const [i, op] of ops.entries()) {
      if (i === checkpointAt) checkpoint = structuredClone(h.state);
      const before = structuredClone(h.state);
      const first = decide(h, op, queueTail);
      assert.deepEqual(canonical(h.state), canonical(before), `${op.op} must not change its input state`);
      if (op.op !== 'submit') assert.deepEqual(decide(h, op, queueTail), first, `${op.op} is deterministic`);
      const logged = JSON.stringify(first.effects);
      assert.deepEqual(JSON.parse(logged), first.effects, 'effects are plain JSON data (no bigints, no undefined)');
      log.push(logged);
      h.apply(first.effects);
      // The folded state shows what the result said.
      const result = first.result as { kind?: string; recording?: string; frcdIndex?: number; reason?: number; sid?: number; iotlb?: string; hpa?: number; path?: string };
      if (result?.kind === 'fault' && result.recording === 'recorded') {
        const record = h.state.frcd[result.frcdIndex!];
        assert.deepEqual([record.f, record.fr, record.sid], [true, result.reason, result.sid]);
      }
      if (op.op === 'dma' && result.kind === 'translation' && result.path === 'translated') {
        const again = vtdTranslate(h.state, h.memory, { sid: op.sid, iova: op.page * 0x1000 + 16, write: op.write, size: 8 }).result as DmaTranslation;
        assert.deepEqual([again.iotlb, again.hpa], ['hit', result.hpa], 'a translation is cached by its own effects');
      }
    }
    const replayed = checkpoint!;
    for (const logged of log.slice(checkpointAt)) for (const effect of JSON.parse(logged) as VtdEffect[]) vtdApply(replayed, effect);
    assert.deepEqual(canonical(replayed), canonical(h.state), 'checkpoint + fold = live state');
  }), { numRuns: 300 });
});

test('the fold ignores what is for the machine: memory writes, interrupts and logs change no state', () => {
  const state = vtdInitialState();
  const before = structuredClone(state);
  for (const effect of [
    { kind: 'memory.write32', hpa: 0x1000, value: 1 },
    { kind: 'interrupt', cause: 'fault-event', address: 0xfee0_0000, data: 0x20 },
    { kind: 'log', message: 'x' },
  ] satisfies VtdEffect[]) vtdApply(state, effect);
  assert.deepEqual(canonical(state), canonical(before));
  assert.throws(() => vtdApply(state, { kind: 'reg', name: 'nope' as never, value: 1 }), /no register nope/);
});

/**
 * The Intel VT-d remapping unit: DMA remapping (root -> context -> second-level tables in host
 * memory), fault recording, the context cache, the IOTLB and the interrupt entry cache, their
 * register-based and queued invalidation, and interrupt remapping.
 *
 * Every function is pure: it takes the unit's state and the PhysicalMemory port, and returns
 * a result and the effects that change the state (see vtd-state.ts). The machine logs the
 * effects and applies them with `vtdApply`; nothing here keeps hidden state.
 *
 * Three kinds of trouble, after QEMU: software programming the unit wrongly goes on with a
 * 'log' effect; faults the spec defines are results named after the spec (DmarFaultReason,
 * IrFaultReason) and are recorded in the FRCD registers; a wrong call by the machine is an
 * assertion.
 */
import { assert } from '../../../events/errors.ts';
import {
  DMAR_QUALIFIED_FAULTS, DmarFaultReason, IR_QUALIFIED_FAULTS, IrFaultReason, VTD_ABOVE_HAW_RSVD,
  VTD_ADDRESS_MASK, VTD_CONTEXT_CACHE_MAX_ENTRIES, VTD_CONTEXT_ENTRY_DID_SHIFT, VTD_CONTEXT_ENTRY_FPD,
  VTD_CONTEXT_ENTRY_P, VTD_CONTEXT_ENTRY_RSVD_HI, VTD_CONTEXT_ENTRY_RSVD_LO, VTD_CONTEXT_ENTRY_TT_SHIFT,
  VTD_FECTL_IM, VTD_FECTL_IP, VTD_FRCD_FI_IR_INDEX_SHIFT, VTD_FSTS_FRI_MASK, VTD_FSTS_FRI_SHIFT,
  VTD_FSTS_IQE, VTD_FSTS_PFO, VTD_FSTS_PPF, VTD_GSTS_CFIS, VTD_GSTS_IRES, VTD_GSTS_TES,
  VTD_IEC_MAX_ENTRIES, VTD_IOTLB_MAX_ENTRIES, VTD_IRTA_EIME, VTD_IRTA_S_MASK, VTD_IRTE_DLM_RESERVED,
  VTD_IRTE_DLM_SHIFT, VTD_IRTE_DM, VTD_IRTE_DST_SHIFT, VTD_IRTE_FPD, VTD_IRTE_IM, VTD_IRTE_P,
  VTD_IRTE_RH, VTD_IRTE_RSVD_HI, VTD_IRTE_RSVD_LO, VTD_IRTE_RSVD_LO_XAPIC, VTD_IRTE_SIZE,
  VTD_IRTE_SQ_SHIFT, VTD_IRTE_SVT_SHIFT, VTD_IRTE_TM, VTD_IRTE_VECTOR_SHIFT, VTD_MGAW,
  VTD_MSI_ADDRESS_BASE, VTD_MSI_ADDRESS_MASK, VTD_MSI_ADDR_HANDLE_15, VTD_MSI_ADDR_HANDLE_SHIFT,
  VTD_MSI_ADDR_IF_REMAPPABLE, VTD_MSI_ADDR_SHV, VTD_MSI_DATA_RSVD, VTD_PAGE_SHIFT, VTD_PAGE_SIZE,
  VTD_POINTER_RSVD, VTD_ROOT_ENTRY_P, VTD_ROOT_ENTRY_RSVD_LO, VTD_SAGAW, VTD_SL_LEVEL_BITS, VTD_SL_PS,
  VTD_SL_R, VTD_SL_SNP, VTD_SL_TM, VTD_SL_W, VTD_SQ_MASKS, VTD_SVT_ALL, VTD_SVT_BUS, VTD_SVT_NONE,
  VTD_TT_DEVICE_TLB, VTD_TT_PASS_THROUGH,
} from './vtd-internal.ts';
import {
  vtdIotlbKey, vtdLevelPageSize, type PhysicalMemory, type VtdContextCacheEntry, type VtdEffect,
  type VtdFaultRecord, type VtdIecEntry, type VtdIotlbEntry, type VtdState,
} from './vtd-state.ts';
import { vtdContextEntryAddress, vtdRootEntryAddress } from './vtd-tables.ts';

const U64 = 0xffff_ffff_ffff_ffffn;

/** Reads a word as hardware does: 64 bits, whatever the port hands back. */
export function vtdRead64(memory: PhysicalMemory, hpa: number): bigint | undefined {
  const value = memory.read64(hpa);
  return value === undefined ? undefined : value & U64;
}

// ---- fault recording (spec 7.3) -------------------------------------------------------------

/** What became of a fault: recorded in FRCD[index], suppressed by FPD, or lost to overflow. */
export type VtdFaultRecording = 'recorded' | 'suppressed' | 'overflow';

/** FSTS as software reads it: the stored bits plus PPF, set while any record has F. */
export function vtdFaultStatus(state: VtdState): number {
  return (state.regs.fsts | (state.frcd.some((r) => r.f) ? VTD_FSTS_PPF : 0)) >>> 0;
}

/**
 * A fault event (spec 7.3.2): raised when a new condition appears while none was pending;
 * sent as an MSI from FEDATA/FEADDR unless FECTL.IM masks it, which leaves FECTL.IP set.
 */
export function vtdFaultEvent(state: VtdState, pendingBefore: number): VtdEffect[] {
  if ((pendingBefore & (VTD_FSTS_PPF | VTD_FSTS_PFO | VTD_FSTS_IQE)) !== 0) return [];
  if ((state.regs.fectl & VTD_FECTL_IM) !== 0) {
    return [{ kind: 'reg', name: 'fectl', value: (state.regs.fectl | VTD_FECTL_IP) >>> 0 }];
  }
  return [{ kind: 'interrupt', cause: 'fault-event', address: state.regs.feaddr, data: state.regs.fedata }];
}

/**
 * Records a fault in the next fault recording register (spec 7.3.1). A fault that finds PFO
 * set, or its register still holding an uncleared fault (F), is dropped and sets PFO.
 * FPD suppresses qualified faults before any of this.
 */
export function vtdRecordFault(state: VtdState, fault: { fr: number; sid: number; fi: number; read: boolean; suppressed: boolean }): { recording: VtdFaultRecording; index: number; effects: VtdEffect[] } {
  if (fault.suppressed) return { recording: 'suppressed', index: -1, effects: [] };
  const before = vtdFaultStatus(state);
  if ((before & VTD_FSTS_PFO) !== 0) return { recording: 'overflow', index: -1, effects: [] };
  const index = state.regs.nextFrcd;
  if (state.frcd[index].f) {
    return { recording: 'overflow', index: -1, effects: [{ kind: 'reg', name: 'fsts', value: (state.regs.fsts | VTD_FSTS_PFO) >>> 0 }] };
  }
  const record: VtdFaultRecord = { f: true, fr: fault.fr, sid: fault.sid, fi: fault.fi, t: fault.read };
  const effects: VtdEffect[] = [
    { kind: 'frcd', index, record },
    { kind: 'reg', name: 'nextFrcd', value: (index + 1) % state.frcd.length },
  ];
  if ((before & VTD_FSTS_PPF) === 0) {
    // PPF goes from clear to set: FRI names the first pending record.
    const fsts = (state.regs.fsts & ~VTD_FSTS_FRI_MASK) | (index << VTD_FSTS_FRI_SHIFT);
    effects.push({ kind: 'reg', name: 'fsts', value: fsts >>> 0 }, ...vtdFaultEvent(state, before));
  }
  return { recording: 'recorded', index, effects };
}

/** Software clears a fault record's F bit (a write of 1 to F, spec 11.4.11). */
export function vtdClearFault(state: VtdState, index: number): { effects: VtdEffect[] } {
  assert(Number.isInteger(index) && index >= 0 && index < state.frcd.length, () => `no fault recording register ${index}`);
  if (!state.frcd[index].f) return { effects: [] };
  return { effects: [{ kind: 'frcd', index, record: { ...state.frcd[index], f: false } }] };
}

// ---- context entries (spec 9.1, 9.3, 3.4) ----------------------------------------------

export type VtdContextLookup =
  | { ok: true; entry: VtdContextCacheEntry }
  | { ok: false; reason: DmarFaultReason; fpd: boolean };

function vtdContextFault(reason: DmarFaultReason, fpd = false): VtdContextLookup {
  return { ok: false, reason, fpd };
}

/** Reads and checks the root and context entries of `sid` in memory, without caches. */
export function vtdReadContext(state: VtdState, memory: PhysicalMemory, sid: number): VtdContextLookup {
  const rootAddress = vtdRootEntryAddress(state.regs.rootTable, sid >>> 8);
  const rootLo = vtdRead64(memory, rootAddress);
  const rootHi = vtdRead64(memory, rootAddress + 8);
  if (rootLo === undefined || rootHi === undefined) return vtdContextFault(DmarFaultReason.ROOT_ENTRY_ACCESS_FAILED);
  if ((rootLo & VTD_ROOT_ENTRY_P) === 0n) return vtdContextFault(DmarFaultReason.ROOT_ENTRY_NOT_PRESENT);
  if ((rootLo & (VTD_ROOT_ENTRY_RSVD_LO | VTD_POINTER_RSVD)) !== 0n || rootHi !== 0n) {
    return vtdContextFault(DmarFaultReason.ROOT_ENTRY_RESERVED);
  }
  const contextAddress = vtdContextEntryAddress(Number(rootLo & VTD_ADDRESS_MASK), sid & 0xff);
  const lo = vtdRead64(memory, contextAddress);
  const hi = vtdRead64(memory, contextAddress + 8);
  if (lo === undefined || hi === undefined) return vtdContextFault(DmarFaultReason.CONTEXT_ENTRY_ACCESS_FAILED);
  // FPD counts even in an entry that is not present (it is a qualified fault).
  const fpd = (lo & VTD_CONTEXT_ENTRY_FPD) !== 0n;
  if ((lo & VTD_CONTEXT_ENTRY_P) === 0n) return vtdContextFault(DmarFaultReason.CONTEXT_ENTRY_NOT_PRESENT, fpd);
  if ((lo & (VTD_CONTEXT_ENTRY_RSVD_LO | VTD_POINTER_RSVD)) !== 0n || (hi & VTD_CONTEXT_ENTRY_RSVD_HI) !== 0n) {
    return vtdContextFault(DmarFaultReason.CONTEXT_ENTRY_RESERVED);
  }
  const aw = Number(hi & 7n);
  const tt = Number((lo >> VTD_CONTEXT_ENTRY_TT_SHIFT) & 3n);
  if ((VTD_SAGAW & (1 << aw)) === 0 || tt === 3) return vtdContextFault(DmarFaultReason.CONTEXT_ENTRY_INVALID, fpd);
  const did = Number((hi >> VTD_CONTEXT_ENTRY_DID_SHIFT) & 0xffffn);
  return { ok: true, entry: { sid, did, tt, aw, slptptr: Number(lo & VTD_ADDRESS_MASK), fpd } };
}

/** The effects that put an entry in a bounded FIFO cache, evicting its oldest entry when full. */
function vtdFillEffects<K>(cache: Map<K, unknown>, key: K, max: number, evict: (oldest: K) => VtdEffect, fill: VtdEffect): VtdEffect[] {
  if (cache.has(key) || cache.size < max) return [fill];
  const oldest = cache.keys().next().value as K;
  return [evict(oldest), fill];
}

// ---- second-level page walk (spec 3.6, 9.8) --------------------------------------------

/** What a walk found: a leaf, an entry with R = W = 0 (or lacking the needed right), or a fault. */
export type VtdWalk =
  | { kind: 'leaf'; level: number; hpa: number; read: boolean; write: boolean }
  | { kind: 'denied'; level: number }
  | { kind: 'access-failed'; level: number }
  | { kind: 'reserved'; level: number };

/** Reserved bits of a present second-level entry at `level` (spec 9.8; SC = 0, 1 GiB pages supported). */
function vtdSlReservedMask(level: number, entry: bigint): bigint {
  let mask = VTD_ABOVE_HAW_RSVD | VTD_SL_SNP;
  if (level === 4) mask |= VTD_SL_PS;
  const leaf = level === 1 || (level <= 3 && (entry & VTD_SL_PS) !== 0n);
  if (!leaf) mask |= VTD_SL_TM;
  // A large page's address must be aligned to its size.
  if (leaf && level > 1) mask |= BigInt(vtdLevelPageSize(level) - 1) & ~0xfffn;
  return mask;
}

/** Bytes an entry of each level spans (index: level), computed once: the walk runs per DMA and per oracle check. */
const VTD_SL_SPAN = [0, 1, 2, 3, 4, 5].map((level) => 2 ** (VTD_PAGE_SHIFT + VTD_SL_LEVEL_BITS * (level - 1)));

function vtdSlIndex(iova: number, level: number): number {
  return Math.floor(iova / VTD_SL_SPAN[level]) % 512;
}

/**
 * Walks the second-level tables for `iova` from `slptptr` (AW + 2 levels), stacking R and W
 * across levels. It stops where the stacked rights lack `need` ('any': lack both).
 */
export function vtdWalkSecondLevel(memory: PhysicalMemory, slptptr: number, aw: number, iova: number, need: 'read' | 'write' | 'any'): VtdWalk {
  let table = slptptr;
  let read = true;
  let write = true;
  for (let level = aw + 2; level >= 1; level--) {
    const entry = vtdRead64(memory, table + vtdSlIndex(iova, level) * 8);
    if (entry === undefined) return { kind: 'access-failed', level };
    if ((entry & (VTD_SL_R | VTD_SL_W)) === 0n) return { kind: 'denied', level };
    if ((entry & vtdSlReservedMask(level, entry)) !== 0n) return { kind: 'reserved', level };
    read &&= (entry & VTD_SL_R) !== 0n;
    write &&= (entry & VTD_SL_W) !== 0n;
    if (need === 'read' ? !read : need === 'write' ? !write : !(read || write)) return { kind: 'denied', level };
    if (level === 1 || (entry & VTD_SL_PS) !== 0n) {
      return { kind: 'leaf', level, hpa: Number(entry & VTD_ADDRESS_MASK), read, write };
    }
    table = Number(entry & VTD_ADDRESS_MASK);
  }
  assert(false, 'the second-level walk ends at level 1');
}

// ---- DMA remapping (spec 3) ---------------------------------------------------------------

export interface DmaRequest {
  /** Requester id: bus << 8 | device << 3 | function. */
  sid: number;
  iova: number;
  write: boolean;
  /** Bytes accessed, within one 4 KiB page (the DMA engine splits larger transfers). */
  size: number;
  /** A translated request (PCIe AT = 10b): the device claims `iova` is already host-physical. */
  translated?: boolean;
}

/** How a request reached its host address. */
export type DmaPath =
  /** GSTS.TES = 0: remapping off, the address is used as is. */
  | 'translation-disabled'
  /** Second-level translation through the IOTLB or a page walk. */
  | 'translated'
  /** Context TT = 2: the address is used as is. */
  | 'pass-through'
  /** A translated request the context (TT = 1) lets through: the device's own TLB is trusted. */
  | 'device-tlb';

export interface DmaTranslation {
  kind: 'translation';
  sid: number;
  iova: number;
  write: boolean;
  hpa: number;
  path: DmaPath;
  /** Domain id of the context, -1 with remapping off. */
  did: number;
  /** Leaf level of the page (1 = 4 KiB, 2 = 2 MiB, 3 = 1 GiB), 0 when no page was involved. */
  level: number;
  contextCache: 'hit' | 'miss' | 'none';
  iotlb: 'hit' | 'miss' | 'none';
}

export interface DmarFault {
  kind: 'fault';
  reason: DmarFaultReason;
  sid: number;
  iova: number;
  write: boolean;
  recording: VtdFaultRecording;
  /** The fault recording register written, -1 when none was. */
  frcdIndex: number;
}

export interface VtdDmaOutcome {
  result: DmaTranslation | DmarFault;
  effects: VtdEffect[];
}

/** The machine's DMA engine must hand over well-formed requests (checked without allocating: this is the hot path). */
function vtdCheckDmaRequest(request: DmaRequest): void {
  const { sid, iova, size } = request;
  if (Number.isInteger(sid) && sid >= 0 && sid <= 0xffff && Number.isSafeInteger(iova) && iova >= 0 &&
    Number.isInteger(size) && size >= 1 && (iova % VTD_PAGE_SIZE) + size <= VTD_PAGE_SIZE) return;
  assert(false, `a DMA request needs a 16-bit source id and a safe, non-negative iova, and must stay within one 4 KiB page: ${JSON.stringify(request)}`);
}

function vtdDmaFault(state: VtdState, request: DmaRequest, reason: DmarFaultReason, fpd: boolean, effects: VtdEffect[]): VtdDmaOutcome {
  const recorded = vtdRecordFault(state, {
    fr: reason, sid: request.sid, fi: Math.floor(request.iova / VTD_PAGE_SIZE), read: !request.write,
    suppressed: fpd && DMAR_QUALIFIED_FAULTS.has(reason),
  });
  const result: DmarFault = { kind: 'fault', reason, sid: request.sid, iova: request.iova, write: request.write, recording: recorded.recording, frcdIndex: recorded.index };
  return { result, effects: [...effects, ...recorded.effects] };
}

function vtdTranslation(request: DmaRequest, hpa: number, path: DmaPath, did = -1, contextCache: DmaTranslation['contextCache'] = 'none', level = 0, iotlb: DmaTranslation['iotlb'] = 'none'): DmaTranslation {
  return { kind: 'translation', sid: request.sid, iova: request.iova, write: request.write, hpa, path, did, level, contextCache, iotlb };
}

/** The context of `sid` from the context cache, or from memory (filling the cache). */
function vtdContext(state: VtdState, memory: PhysicalMemory, sid: number, effects: VtdEffect[]): VtdContextLookup & { hit?: boolean } {
  const cached = state.contextCache.get(sid);
  if (cached !== undefined) return { ok: true, entry: cached, hit: true };
  const lookup = vtdReadContext(state, memory, sid);
  if (lookup.ok) {
    effects.push(...vtdFillEffects(state.contextCache, sid, VTD_CONTEXT_CACHE_MAX_ENTRIES,
      (oldest) => ({ kind: 'context-cache.evict', sid: oldest }), { kind: 'context-cache.fill', entry: lookup.entry }));
  }
  return { ...lookup, hit: false };
}

/** The IOTLB entry of `sid` and this domain covering `iova`, trying 4 KiB, 2 MiB and 1 GiB pages. */
function vtdIotlbLookup(state: VtdState, sid: number, did: number, iova: number): VtdIotlbEntry | undefined {
  for (let level = 1; level <= 3; level++) {
    const size = vtdLevelPageSize(level);
    const gfn = (Math.floor(iova / size) * size) / VTD_PAGE_SIZE;
    const entry = state.iotlb.get(vtdIotlbKey(gfn, sid, level));
    if (entry !== undefined && entry.did === did) return entry;
  }
  return undefined;
}

/**
 * Translates one DMA request (spec 3.4-3.6): context (cache or root/context walk), the
 * address-width check, then the IOTLB or a second-level walk whose result it caches. A
 * fault is recorded in the FRCD registers unless FPD suppresses it. Cheap on an IOTLB hit
 * (no memory reads, no effects); a miss reads up to 4 second-level entries.
 */
export function vtdTranslate(state: VtdState, memory: PhysicalMemory, request: DmaRequest): VtdDmaOutcome {
  vtdCheckDmaRequest(request);
  if ((state.regs.gsts & VTD_GSTS_TES) === 0) {
    return { result: vtdTranslation(request, request.iova, 'translation-disabled'), effects: [] };
  }
  const effects: VtdEffect[] = [];
  const context = vtdContext(state, memory, request.sid, effects);
  if (!context.ok) return vtdDmaFault(state, request, context.reason, context.fpd, effects);
  const { entry } = context;
  const contextCache = context.hit ? 'hit' : 'miss';
  if (request.translated) {
    if (entry.tt !== VTD_TT_DEVICE_TLB) return vtdDmaFault(state, request, DmarFaultReason.BLOCKED_BY_TRANSLATION_TYPE, entry.fpd, effects);
    return { result: vtdTranslation(request, request.iova, 'device-tlb', entry.did, contextCache), effects };
  }
  const agaw = 30 + 9 * entry.aw;
  if (request.iova >= 2 ** Math.min(agaw, VTD_MGAW)) return vtdDmaFault(state, request, DmarFaultReason.ADDRESS_BEYOND_MGAW, entry.fpd, effects);
  if (entry.tt === VTD_TT_PASS_THROUGH) return { result: vtdTranslation(request, request.iova, 'pass-through', entry.did, contextCache), effects };
  const need = request.write ? 'write' : 'read';
  const denied = request.write ? DmarFaultReason.WRITE_NOT_PERMITTED : DmarFaultReason.READ_NOT_PERMITTED;
  const cached = vtdIotlbLookup(state, request.sid, entry.did, request.iova);
  if (cached !== undefined) {
    if (!(request.write ? cached.write : cached.read)) return vtdDmaFault(state, request, denied, entry.fpd, effects);
    const hpa = cached.hpa + (request.iova - cached.gfn * VTD_PAGE_SIZE);
    return { result: vtdTranslation(request, hpa, 'translated', entry.did, contextCache, cached.level, 'hit'), effects };
  }
  const walk = vtdWalkSecondLevel(memory, entry.slptptr, entry.aw, request.iova, need);
  switch (walk.kind) {
    case 'access-failed': return vtdDmaFault(state, request, DmarFaultReason.SECOND_LEVEL_ENTRY_ACCESS_FAILED, entry.fpd, effects);
    case 'reserved': return vtdDmaFault(state, request, DmarFaultReason.SECOND_LEVEL_ENTRY_RESERVED, entry.fpd, effects);
    case 'denied': return vtdDmaFault(state, request, denied, entry.fpd, effects);
    case 'leaf': break;
  }
  const size = vtdLevelPageSize(walk.level);
  const base = Math.floor(request.iova / size) * size;
  const fill: VtdIotlbEntry = { sid: request.sid, did: entry.did, gfn: base / VTD_PAGE_SIZE, level: walk.level, hpa: walk.hpa, read: walk.read, write: walk.write };
  const key = vtdIotlbKey(fill.gfn, fill.sid, fill.level);
  effects.push(...vtdFillEffects(state.iotlb, key, VTD_IOTLB_MAX_ENTRIES, (oldest) => ({ kind: 'iotlb.evict', key: oldest }), { kind: 'iotlb.fill', key, entry: fill }));
  const hpa = walk.hpa + (request.iova - base);
  return { result: vtdTranslation(request, hpa, 'translated', entry.did, contextCache, walk.level, 'miss'), effects };
}

// ---- interrupt remapping (spec 5) ---------------------------------------------------------

export interface InterruptRequest {
  /** Requester id of the device that wrote the MSI. */
  sid: number;
  /** The MSI address: 0xFEEx_xxxx. */
  address: number;
  /** The 32-bit MSI data. */
  data: number;
}

export type InterruptPath =
  /** Through an IRTE. */
  | 'remapped'
  /** A compatibility-format request let through (GSTS.CFIS = 1, IRTA.EIME = 0). */
  | 'compatibility'
  /** GSTS.IRES = 0: interrupt remapping off, the request is decoded as it is. */
  | 'remapping-disabled';

export interface InterruptDelivery {
  kind: 'interrupt';
  sid: number;
  path: InterruptPath;
  vector: number;
  /** APIC id of the destination. */
  destination: number;
  destinationMode: number;
  deliveryMode: number;
  triggerMode: number;
  redirectionHint: number;
  /** The IRTE used, -1 when none was. */
  index: number;
  iec: 'hit' | 'miss' | 'none';
}

export interface IrFault {
  kind: 'fault';
  reason: IrFaultReason;
  sid: number;
  /** The interrupt index, -1 for a compatibility-format request. */
  index: number;
  recording: VtdFaultRecording;
  frcdIndex: number;
}

export interface VtdInterruptOutcome {
  result: InterruptDelivery | IrFault;
  effects: VtdEffect[];
}

/** Decodes a compatibility-format MSI (Intel SDM 11.11.1): what the APIC would see. */
function vtdCompatibilityDelivery(request: InterruptRequest, path: InterruptPath): InterruptDelivery {
  return {
    kind: 'interrupt', sid: request.sid, path, vector: request.data & 0xff, destination: (request.address >>> 12) & 0xff,
    destinationMode: (request.address >>> 2) & 1, deliveryMode: (request.data >>> 8) & 7, triggerMode: (request.data >>> 15) & 1,
    redirectionHint: (request.address >>> 3) & 1, index: -1, iec: 'none',
  };
}

function vtdIrFault(state: VtdState, request: InterruptRequest, reason: IrFaultReason, index: number, fpd: boolean, effects: VtdEffect[]): VtdInterruptOutcome {
  const recorded = vtdRecordFault(state, {
    fr: reason, sid: request.sid, fi: index < 0 ? 0 : (index & 0xffff) * 2 ** VTD_FRCD_FI_IR_INDEX_SHIFT, read: false,
    suppressed: fpd && IR_QUALIFIED_FAULTS.has(reason),
  });
  const result: IrFault = { kind: 'fault', reason, sid: request.sid, index, recording: recorded.recording, frcdIndex: recorded.index };
  return { result, effects: [...effects, ...recorded.effects] };
}

export type VtdIrteLookup = { ok: true; entry: VtdIecEntry } | { ok: false; reason: IrFaultReason; fpd: boolean };

/** Reads and checks IRTE `index` of the table latched by SIRTP, without the cache. */
export function vtdReadIrte(state: VtdState, memory: PhysicalMemory, index: number): VtdIrteLookup {
  const irta = state.regs.irtaActive;
  const address = Number(BigInt(irta) & VTD_ADDRESS_MASK) + index * VTD_IRTE_SIZE;
  const lo = vtdRead64(memory, address);
  const hi = vtdRead64(memory, address + 8);
  if (lo === undefined || hi === undefined) return { ok: false, reason: IrFaultReason.IRT_ACCESS_FAILED, fpd: false };
  const fpd = (lo & VTD_IRTE_FPD) !== 0n;
  if ((lo & VTD_IRTE_P) === 0n) return { ok: false, reason: IrFaultReason.IRTE_NOT_PRESENT, fpd };
  const x2apic = (irta & VTD_IRTA_EIME) !== 0;
  const dlm = Number((lo >> VTD_IRTE_DLM_SHIFT) & 7n);
  const svt = Number((hi >> VTD_IRTE_SVT_SHIFT) & 3n);
  const reserved = (lo & (VTD_IRTE_RSVD_LO | VTD_IRTE_IM | (x2apic ? 0n : VTD_IRTE_RSVD_LO_XAPIC))) !== 0n ||
    (hi & VTD_IRTE_RSVD_HI) !== 0n || (VTD_IRTE_DLM_RESERVED as readonly number[]).includes(dlm) || svt === 3;
  if (reserved) return { ok: false, reason: IrFaultReason.IRTE_RESERVED_FIELD, fpd };
  const dst = Number((lo >> VTD_IRTE_DST_SHIFT) & 0xffff_ffffn);
  return {
    ok: true,
    entry: {
      index, fpd, dm: Number((lo & VTD_IRTE_DM) >> 2n), rh: Number((lo & VTD_IRTE_RH) >> 3n), tm: Number((lo & VTD_IRTE_TM) >> 4n),
      dlm, vector: Number((lo >> VTD_IRTE_VECTOR_SHIFT) & 0xffn), destination: x2apic ? dst : (dst >>> 8) & 0xff,
      svt, sq: Number((hi >> VTD_IRTE_SQ_SHIFT) & 3n), sidField: Number(hi & 0xffffn),
    },
  };
}

/**
 * Source-id validation (spec 9.10, SVT/SQ): SVT 1 compares the requester id with the SID
 * field under the SQ mask; SVT 2 requires the requester's bus within [SID[15:8], SID[7:0]].
 */
export function vtdSourceIdValid(entry: Pick<VtdIecEntry, 'svt' | 'sq' | 'sidField'>, sid: number): boolean {
  switch (entry.svt) {
    case VTD_SVT_NONE:
      return true;
    case VTD_SVT_ALL: {
      const mask = VTD_SQ_MASKS[entry.sq];
      return (sid & mask) === (entry.sidField & mask);
    }
    case VTD_SVT_BUS: {
      const bus = sid >>> 8;
      return bus >= entry.sidField >>> 8 && bus <= (entry.sidField & 0xff);
    }
    default:
      return false;
  }
}

/** The index a remappable request names: handle (address [19:5], [2]) plus the subhandle if SHV. */
export function vtdInterruptIndex(address: number, data: number): number {
  const handle = ((address >>> VTD_MSI_ADDR_HANDLE_SHIFT) & 0x7fff) | ((address & VTD_MSI_ADDR_HANDLE_15) !== 0 ? 0x8000 : 0);
  return handle + ((address & VTD_MSI_ADDR_SHV) !== 0 ? data & 0xffff : 0);
}

/**
 * Remaps one interrupt request (spec 5.1): compatibility format blocked (0x25) unless CFIS;
 * remappable format to an IRTE through the interrupt entry cache, checked for presence,
 * reserved fields and the requester's source id. Faults are recorded like DMA faults.
 */
export function vtdRemapInterrupt(state: VtdState, memory: PhysicalMemory, request: InterruptRequest): VtdInterruptOutcome {
  assert(Number.isInteger(request.sid) && request.sid >= 0 && request.sid <= 0xffff, () => `source id ${request.sid}`);
  assert((request.address & VTD_MSI_ADDRESS_MASK) >>> 0 === VTD_MSI_ADDRESS_BASE, () => `${request.address.toString(16)} is not an interrupt address`);
  assert(Number.isInteger(request.data) && request.data >= 0 && request.data <= 0xffff_ffff, () => `MSI data ${request.data}`);
  if ((state.regs.gsts & VTD_GSTS_IRES) === 0) return { result: vtdCompatibilityDelivery(request, 'remapping-disabled'), effects: [] };
  const eime = (state.regs.irtaActive & VTD_IRTA_EIME) !== 0;
  if ((request.address & VTD_MSI_ADDR_IF_REMAPPABLE) === 0) {
    if (eime || (state.regs.gsts & VTD_GSTS_CFIS) === 0) return vtdIrFault(state, request, IrFaultReason.COMPATIBILITY_FORMAT_BLOCKED, -1, false, []);
    return { result: vtdCompatibilityDelivery(request, 'compatibility'), effects: [] };
  }
  const index = vtdInterruptIndex(request.address, request.data);
  if ((request.data & VTD_MSI_DATA_RSVD) !== 0) return vtdIrFault(state, request, IrFaultReason.REQUEST_RESERVED_FIELD, index, false, []);
  if (index >= 2 ** ((state.regs.irtaActive & VTD_IRTA_S_MASK) + 1)) return vtdIrFault(state, request, IrFaultReason.INDEX_BEYOND_TABLE_SIZE, index, false, []);
  const effects: VtdEffect[] = [];
  let entry = state.iec.get(index);
  const hit = entry !== undefined;
  if (entry === undefined) {
    const lookup = vtdReadIrte(state, memory, index);
    if (!lookup.ok) return vtdIrFault(state, request, lookup.reason, index, lookup.fpd, effects);
    entry = lookup.entry;
    effects.push(...vtdFillEffects(state.iec, index, VTD_IEC_MAX_ENTRIES, (oldest) => ({ kind: 'iec.evict', index: oldest }), { kind: 'iec.fill', entry }));
  }
  if (!vtdSourceIdValid(entry, request.sid)) return vtdIrFault(state, request, IrFaultReason.SOURCE_ID_VALIDATION_FAILED, index, entry.fpd, effects);
  const result: InterruptDelivery = {
    kind: 'interrupt', sid: request.sid, path: 'remapped', vector: entry.vector, destination: entry.destination,
    destinationMode: entry.dm, deliveryMode: entry.dlm, triggerMode: entry.tm, redirectionHint: entry.rh, index, iec: hit ? 'hit' : 'miss',
  };
  return { result, effects };
}


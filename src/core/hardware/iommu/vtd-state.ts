/**
 * The VT-d remapping unit's state, the effects that change it, and the fold.
 *
 * The state is plain data (objects, arrays, Maps of numbers and strings) so the machine can
 * keep it in its own state, checkpoint it, and fold events into it. The device's functions
 * (`vtd.ts`) never change a state: they return effects, and `vtdApply` is the only code that
 * writes one. Written as mutation of a draft, like the machine's `evolve`, so it runs on a
 * live working state and inside immer's `produce` alike.
 */
import { assert } from '../../../events/errors.ts';
import {
  VTD_CC_DEVICE, VTD_CC_DOMAIN, VTD_CC_GLOBAL, VTD_FRCD_COUNT, VTD_IOTLB_DOMAIN, VTD_IOTLB_GLOBAL,
  VTD_IOTLB_PAGE, VTD_PAGE_SHIFT, VTD_SL_LEVEL_BITS, VTD_SQ_MASKS,
} from './vtd-internal.ts';

/**
 * The unit's window on host memory, where its tables live (root, context, second-level,
 * interrupt remapping table, invalidation queue). The machine implements it over its
 * frames. `hpa` is 8-byte aligned; undefined means the address is outside memory, which the
 * unit reports as a "failed to access" fault (0x7, 0x8, 0x9, 0x23) or an IQE.
 */
export interface PhysicalMemory {
  read64(hpa: number): bigint | undefined;
}

/** One fault recording register (FRCD), decoded. */
export interface VtdFaultRecord {
  /** F: the record holds a fault software has not cleared yet. */
  f: boolean;
  /** FR: the fault reason (DmarFaultReason or IrFaultReason). */
  fr: number;
  /** SID: the requester's source id. */
  sid: number;
  /** FI: bits 63:12 of the low word, shifted down (a page number, or index << 36 for IR). */
  fi: number;
  /** T: set for a read request (clear for writes and interrupt requests). */
  t: boolean;
}

/**
 * The registers the model keeps, by name. 32-bit registers hold their value; 64-bit ones
 * hold the bits the model implements (all below 2^53). Registers that only report a
 * completed command (CCMD, IOTLB_REG) keep the field software reads back.
 */
export interface VtdRegisters {
  /** GSTS: TES, RTPS, QIES, IRES, IRTPS, CFIS. */
  gsts: number;
  /** RTADDR as software wrote it. */
  rtaddr: number;
  /** The root table in use: RTADDR latched by GCMD.SRTP. */
  rootTable: number;
  /** CCMD.CAIG of the last register-based context-cache invalidation. */
  ccmdCaig: number;
  /** FSTS without PPF (derived from the F bits on read): PFO, IQE, ICE, ITE, FRI. */
  fsts: number;
  fectl: number;
  fedata: number;
  feaddr: number;
  feuaddr: number;
  /** IVA: the page address [63:12] as a number, and IH/AM [6:0]. */
  ivaAddress: number;
  ivaLow: number;
  /** IOTLB_REG.IAIG of the last register-based IOTLB invalidation. */
  iotlbIaig: number;
  /** IQH, IQT: descriptor index << 4. IQA: queue base | DW | QS. */
  iqh: number;
  iqt: number;
  iqa: number;
  ics: number;
  iectl: number;
  iedata: number;
  ieaddr: number;
  ieuaddr: number;
  /** IRTA as software wrote it. */
  irta: number;
  /** The interrupt remapping table in use: IRTA latched by GCMD.SIRTP. */
  irtaActive: number;
  /** Hardware's pointer to the fault recording register the next fault goes to. */
  nextFrcd: number;
}
export type VtdRegisterName = keyof VtdRegisters;

/** A cached, validated context entry (the context cache is indexed by source id). */
export interface VtdContextCacheEntry {
  sid: number;
  did: number;
  /** Translation type: 0 multi-level, 1 device-TLB, 2 pass-through. */
  tt: number;
  /** AW field: 1 = 39-bit 3-level, 2 = 48-bit 4-level. */
  aw: number;
  /** Second-level page table pointer (host-physical). */
  slptptr: number;
  fpd: boolean;
}

/** A cached second-level translation, tagged by domain id. */
export interface VtdIotlbEntry {
  sid: number;
  did: number;
  /** The 4 KiB page number of the mapped page's base (a large page's first 4 KiB page). */
  gfn: number;
  /** Level of the leaf: 1 = 4 KiB, 2 = 2 MiB, 3 = 1 GiB. */
  level: number;
  /** Host-physical base of the page. */
  hpa: number;
  /** Effective permissions: R and W of every level of the walk. */
  read: boolean;
  write: boolean;
}

/** A cached, validated interrupt remapping table entry, by interrupt index. */
export interface VtdIecEntry {
  index: number;
  fpd: boolean;
  /** Destination mode (0 physical, 1 logical), redirection hint, trigger mode, delivery mode. */
  dm: number;
  rh: number;
  tm: number;
  dlm: number;
  vector: number;
  /** APIC id: DST[15:8] in xAPIC mode, all 32 bits in x2APIC mode (IRTA.EIME). */
  destination: number;
  /** Source validation: SVT, SQ and the SID field of the IRTE. */
  svt: number;
  sq: number;
  sidField: number;
}

export interface VtdState {
  regs: VtdRegisters;
  /** The fault recording registers, FRCD[0 .. VTD_FRCD_COUNT-1]. */
  frcd: VtdFaultRecord[];
  /** Context cache by source id, oldest first. */
  contextCache: Map<number, VtdContextCacheEntry>;
  /** IOTLB by `vtdIotlbKey` (QEMU's gfn | sid << 36 | level << 52, in hex), oldest first. */
  iotlb: Map<string, VtdIotlbEntry>;
  /** Interrupt entry cache by interrupt index, oldest first. */
  iec: Map<number, VtdIecEntry>;
}

/** A context-cache invalidation: granularity 1 global, 2 domain (DID), 3 device (DID, SID, FM). */
export interface VtdContextInvalidation {
  granularity: number;
  did: number;
  sid: number;
  /** Function mask: 0 none, 1 ignores SID bit 2, 2 bits 2:1, 3 bits 2:0. */
  fm: number;
}

/** An IOTLB invalidation: 1 global, 2 domain (DID), 3 page (DID, 2^AM pages from address). */
export interface VtdIotlbInvalidation {
  granularity: number;
  did: number;
  /** The IOVA of the first page (bits below 12 + AM are ignored). */
  address: number;
  am: number;
}

/** An interrupt-entry-cache invalidation: global, or 2^IM entries from index (aligned). */
export interface VtdIecInvalidation {
  global: boolean;
  index: number;
  im: number;
}

/**
 * A change to the state, or (the last three) a thing the machine must do. The machine logs
 * each as (part of) an event; replay applies them with `vtdApply`.
 */
export type VtdEffect =
  /** A register takes a new value. */
  | { kind: 'reg'; name: VtdRegisterName; value: number }
  /** A fault recording register is written (hardware recording a fault, software clearing F). */
  | { kind: 'frcd'; index: number; record: VtdFaultRecord }
  | { kind: 'context-cache.fill'; entry: VtdContextCacheEntry }
  | { kind: 'context-cache.evict'; sid: number }
  | { kind: 'context-cache.invalidate'; invalidation: VtdContextInvalidation }
  | { kind: 'iotlb.fill'; key: string; entry: VtdIotlbEntry }
  | { kind: 'iotlb.evict'; key: string }
  | { kind: 'iotlb.invalidate'; invalidation: VtdIotlbInvalidation }
  | { kind: 'iec.fill'; entry: VtdIecEntry }
  | { kind: 'iec.evict'; index: number }
  | { kind: 'iec.invalidate'; invalidation: VtdIecInvalidation }
  /** The machine writes 32 bits, little-endian, at a host-physical address (wait descriptor status). */
  | { kind: 'memory.write32'; hpa: number; value: number }
  /** The unit sends an MSI to the host (fault event or invalidation-completion event). */
  | { kind: 'interrupt'; cause: 'fault-event' | 'invalidation-completion'; address: number; data: number }
  /** Software programmed the unit wrongly; the unit goes on (the first kind of trouble). */
  | { kind: 'log'; message: string };

/** The state after reset: everything disabled, caches empty, no faults. */
export function vtdInitialState(): VtdState {
  return {
    regs: {
      gsts: 0, rtaddr: 0, rootTable: 0, ccmdCaig: 0, fsts: 0, fectl: 0, fedata: 0, feaddr: 0,
      feuaddr: 0, ivaAddress: 0, ivaLow: 0, iotlbIaig: 0, iqh: 0, iqt: 0, iqa: 0, ics: 0,
      iectl: 0, iedata: 0, ieaddr: 0, ieuaddr: 0, irta: 0, irtaActive: 0, nextFrcd: 0,
    },
    frcd: Array.from({ length: VTD_FRCD_COUNT }, () => ({ f: false, fr: 0, sid: 0, fi: 0, t: false })),
    contextCache: new Map(),
    iotlb: new Map(),
    iec: new Map(),
  };
}

/** A deep copy (the entries are flat objects). */
export function vtdCloneState(state: VtdState): VtdState {
  return {
    regs: { ...state.regs },
    frcd: state.frcd.map((r) => ({ ...r })),
    contextCache: new Map([...state.contextCache].map(([k, e]) => [k, { ...e }])),
    iotlb: new Map([...state.iotlb].map(([k, e]) => [k, { ...e }])),
    iec: new Map([...state.iec].map(([k, e]) => [k, { ...e }])),
  };
}

/**
 * The IOTLB key, laid out like QEMU's: gfn | sid << 36 | level << 52, as 16 hex digits
 * (a number cannot hold the 55-bit key exactly). `gfn` is the 4 KiB page number of the
 * page's base at that level, below 2^36 since IOVAs are below 2^48.
 */
export function vtdIotlbKey(gfn: number, sid: number, level: number): string {
  if (!(gfn >= 0 && gfn < 2 ** 36 && Number.isInteger(gfn))) assert(false, `IOTLB gfn ${gfn} outside 36 bits`);
  const high = level * 0x10000 + sid;
  return high.toString(16).padStart(7, '0') + gfn.toString(16).padStart(9, '0');
}

/** Bytes covered by a leaf at `level` (1 = 4 KiB, 2 = 2 MiB, 3 = 1 GiB). */
export function vtdLevelPageSize(level: number): number {
  return 2 ** (VTD_PAGE_SHIFT + VTD_SL_LEVEL_BITS * (level - 1));
}

/** Whether a context-cache invalidation covers an entry (spec 6.5.1.1, 6.5.2.1). */
export function vtdContextInvalidationMatches(inv: VtdContextInvalidation, entry: VtdContextCacheEntry): boolean {
  switch (inv.granularity) {
    case VTD_CC_GLOBAL:
      return true;
    case VTD_CC_DOMAIN:
      return entry.did === inv.did;
    case VTD_CC_DEVICE: {
      const mask = VTD_SQ_MASKS[inv.fm & 3];
      return entry.did === inv.did && (entry.sid & mask) === (inv.sid & mask);
    }
    default:
      return false;
  }
}

/**
 * Whether an IOTLB invalidation covers an entry. Page-selective invalidation covers the
 * 2^AM pages from the address (aligned down), and any cached large page that overlaps them.
 */
export function vtdIotlbInvalidationMatches(inv: VtdIotlbInvalidation, entry: VtdIotlbEntry): boolean {
  switch (inv.granularity) {
    case VTD_IOTLB_GLOBAL:
      return true;
    case VTD_IOTLB_DOMAIN:
      return entry.did === inv.did;
    case VTD_IOTLB_PAGE: {
      if (entry.did !== inv.did) return false;
      const span = 2 ** (VTD_PAGE_SHIFT + inv.am);
      const start = Math.floor(inv.address / span) * span;
      const entryStart = entry.gfn * 2 ** VTD_PAGE_SHIFT;
      return entryStart < start + span && start < entryStart + vtdLevelPageSize(entry.level);
    }
    default:
      return false;
  }
}

/** Whether an interrupt-entry-cache invalidation covers an index. */
export function vtdIecInvalidationMatches(inv: VtdIecInvalidation, index: number): boolean {
  if (inv.global) return true;
  const span = 2 ** inv.im;
  return Math.floor(index / span) === Math.floor(inv.index / span);
}

function deleteWhere<K, V>(map: Map<K, V>, predicate: (value: V, key: K) => boolean): void {
  for (const [key, value] of [...map]) if (predicate(value, key)) map.delete(key);
}

/** Puts a fresh entry at the newest end (a Map keeps insertion order). */
function refill<K, V>(map: Map<K, V>, key: K, value: V): void {
  map.delete(key);
  map.set(key, value);
}

/** The fold: applies one effect to a (draft) state. Effects for the machine change nothing here. */
export function vtdApply(state: VtdState, effect: VtdEffect): void {
  switch (effect.kind) {
    case 'reg':
      assert(effect.name in state.regs, () => `VT-d has no register ${effect.name}`);
      state.regs[effect.name] = effect.value;
      return;
    case 'frcd':
      assert(effect.index >= 0 && effect.index < state.frcd.length, () => `FRCD index ${effect.index}`);
      state.frcd[effect.index] = { ...effect.record };
      return;
    case 'context-cache.fill':
      refill(state.contextCache, effect.entry.sid, { ...effect.entry });
      return;
    case 'context-cache.evict':
      state.contextCache.delete(effect.sid);
      return;
    case 'context-cache.invalidate':
      deleteWhere(state.contextCache, (e) => vtdContextInvalidationMatches(effect.invalidation, e));
      return;
    case 'iotlb.fill':
      refill(state.iotlb, effect.key, { ...effect.entry });
      return;
    case 'iotlb.evict':
      state.iotlb.delete(effect.key);
      return;
    case 'iotlb.invalidate':
      deleteWhere(state.iotlb, (e) => vtdIotlbInvalidationMatches(effect.invalidation, e));
      return;
    case 'iec.fill':
      refill(state.iec, effect.entry.index, { ...effect.entry });
      return;
    case 'iec.evict':
      state.iec.delete(effect.index);
      return;
    case 'iec.invalidate':
      deleteWhere(state.iec, (e) => vtdIecInvalidationMatches(effect.invalidation, e.index));
      return;
    case 'memory.write32':
    case 'interrupt':
    case 'log':
      return;
  }
}

/** Folds a list of effects, in order. */
export function vtdApplyAll(state: VtdState, effects: readonly VtdEffect[]): void {
  for (const effect of effects) vtdApply(state, effect);
}

/** The part of the state each effect writes (null: none, it is for the machine). */
const VTD_EFFECT_PART: Record<VtdEffect['kind'], keyof VtdState | null> = {
  'reg': 'regs', 'frcd': 'frcd',
  'context-cache.fill': 'contextCache', 'context-cache.evict': 'contextCache', 'context-cache.invalidate': 'contextCache',
  'iotlb.fill': 'iotlb', 'iotlb.evict': 'iotlb', 'iotlb.invalidate': 'iotlb',
  'iec.fill': 'iec', 'iec.evict': 'iec', 'iec.invalidate': 'iec',
  'memory.write32': null, 'interrupt': null, 'log': null,
};

/**
 * Collects effects while a device function decides, and gives a view of the state with
 * them applied. The view shares the base state's parts until an effect writes one, which is
 * then copied (the cache entries themselves are never changed in place, only replaced), so
 * a register write does not copy the IOTLB.
 */
export class VtdTransaction {
  readonly effects: VtdEffect[] = [];
  private draft: VtdState | undefined;
  private readonly owned = new Set<keyof VtdState>();

  constructor(private readonly base: VtdState) {}

  get state(): VtdState {
    return this.draft ?? this.base;
  }

  emit(effect: VtdEffect): void {
    this.effects.push(effect);
    const part = VTD_EFFECT_PART[effect.kind];
    if (part === null) return;
    this.draft ??= { ...this.base };
    if (!this.owned.has(part)) {
      this.owned.add(part);
      const draft = this.draft as unknown as Record<string, unknown>;
      const value = draft[part];
      draft[part] = value instanceof Map ? new Map(value) : Array.isArray(value) ? [...value] : { ...(value as object) };
    }
    vtdApply(this.draft, effect);
  }

  emitAll(effects: readonly VtdEffect[]): void {
    for (const effect of effects) this.emit(effect);
  }
}

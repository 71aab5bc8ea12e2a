/**
 * What the hypervisor and the invariant checks need from the unit beyond the hardware
 * itself: the spec's teardown order for a device, and the "no cached translation outlives
 * its mapping" check, which compares every cache entry with the tables now in memory.
 */
import {
  VTD_CC_DEVICE, VTD_CONTEXT_ENTRY_P, VTD_IOTLB_DOMAIN, VTD_TT_DEVICE_TLB, VTD_TT_PASS_THROUGH,
  vtdFaultReasonName, VTD_ADDRESS_MASK, VTD_IRTA_S_MASK, VTD_ROOT_ENTRY_P,
} from './vtd-internal.ts';
import type { PhysicalMemory, VtdContextCacheEntry, VtdContextInvalidation, VtdIotlbInvalidation, VtdState } from './vtd-state.ts';
import {
  vtdContextCacheDescriptor, vtdContextEntryAddress, vtdDeviceTlbDescriptor, vtdIotlbDescriptor,
  vtdRootEntryAddress, type VtdEntry128,
} from './vtd-tables.ts';
import { vtdRead64, vtdReadContext, vtdReadIrte, vtdWalkSecondLevel } from './vtd.ts';

/** One step of tearing a device down, in the order the spec requires (spec 6.5.3.3 / 6.2.2). */
export type VtdTeardownStep =
  /** Software writes zero to the 16-byte context entry at `hpa`. */
  | { op: 'clear-context-entry'; sid: number; hpa: number }
  /** Then invalidates the context cache for the device (register CCMD or this descriptor). */
  | { op: 'context-cache-invalidate'; invalidation: VtdContextInvalidation; descriptor: VtdEntry128 }
  /** Then the IOTLB for the whole domain (IOTLB_REG or this descriptor), draining reads and writes. */
  | { op: 'iotlb-invalidate'; invalidation: VtdIotlbInvalidation; descriptor: VtdEntry128 }
  /** Then, for a device with a device-TLB (TT = 1), the device's own TLB. */
  | { op: 'device-tlb-invalidate'; sid: number; descriptor: VtdEntry128 };

/** The context entry of `sid` as memory holds it (address and the two words), if its root entry is present. */
function vtdContextSlot(state: VtdState, memory: PhysicalMemory, sid: number): { hpa: number; lo: bigint; hi: bigint } | undefined {
  const root = vtdRead64(memory, vtdRootEntryAddress(state.regs.rootTable, sid >>> 8));
  if (root === undefined || (root & VTD_ROOT_ENTRY_P) === 0n) return undefined;
  const hpa = vtdContextEntryAddress(Number(root & VTD_ADDRESS_MASK), sid & 0xff);
  const lo = vtdRead64(memory, hpa);
  const hi = vtdRead64(memory, hpa + 8);
  return lo === undefined || hi === undefined ? undefined : { hpa, lo, hi };
}

/**
 * The ordered operations that detach device `sid`: clear its context entry, invalidate the
 * context cache for it, invalidate the IOTLB for its domain, then its device-TLB. The domain
 * id comes from the entry in memory, or from the context cache when memory no longer holds
 * one (a half-done teardown). Empty when the device is attached nowhere.
 */
export function vtdTeardownSteps(state: VtdState, memory: PhysicalMemory, sid: number): VtdTeardownStep[] {
  const slot = vtdContextSlot(state, memory, sid);
  const present = slot !== undefined && (slot.lo & VTD_CONTEXT_ENTRY_P) !== 0n;
  const cached: VtdContextCacheEntry | undefined = state.contextCache.get(sid);
  let did: number;
  let tt: number;
  if (present) {
    did = Number((slot.hi >> 8n) & 0xffffn);
    tt = Number((slot.lo >> 2n) & 3n);
  } else if (cached !== undefined) {
    did = cached.did;
    tt = cached.tt;
  } else {
    return [];
  }
  const steps: VtdTeardownStep[] = [];
  if (present) steps.push({ op: 'clear-context-entry', sid, hpa: slot.hpa });
  const cc: VtdContextInvalidation = { granularity: VTD_CC_DEVICE, did, sid, fm: 0 };
  steps.push({ op: 'context-cache-invalidate', invalidation: cc, descriptor: vtdContextCacheDescriptor(cc) });
  const iotlb: VtdIotlbInvalidation = { granularity: VTD_IOTLB_DOMAIN, did, address: 0, am: 0 };
  steps.push({ op: 'iotlb-invalidate', invalidation: iotlb, descriptor: vtdIotlbDescriptor({ ...iotlb, drain: true }) });
  if (tt === VTD_TT_DEVICE_TLB) steps.push({ op: 'device-tlb-invalidate', sid, descriptor: vtdDeviceTlbDescriptor({ sid }) });
  return steps;
}

/** A cache entry that disagrees with the tables in memory. */
export interface VtdStaleEntry {
  cache: 'context-cache' | 'iotlb' | 'iec';
  /** The entry's key: the source id, the IOTLB key, or the interrupt index. */
  key: string;
  sid: number;
  /** Domain id (-1 for the interrupt entry cache). */
  did: number;
  /** What the tables say now, in a sentence. */
  detail: string;
}

function vtdStaleContexts(state: VtdState, memory: PhysicalMemory, out: VtdStaleEntry[]): void {
  for (const [sid, cached] of state.contextCache) {
    const now = vtdReadContext(state, memory, sid);
    const stale = (detail: string): void => void out.push({ cache: 'context-cache', key: String(sid), sid, did: cached.did, detail });
    if (!now.ok) {
      stale(`the context entry now faults with 0x${now.reason.toString(16)} (${vtdFaultReasonName(now.reason)})`);
      continue;
    }
    const changed = (['did', 'tt', 'aw', 'slptptr', 'fpd'] as const).filter((field) => now.entry[field] !== cached[field]);
    if (changed.length > 0) stale(`the context entry changed: ${changed.map((f) => `${f} ${cached[f]} -> ${now.entry[f]}`).join(', ')}`);
  }
}

/**
 * An IOTLB entry is stale when the current tables (context included, read from memory, not
 * from the context cache) would not grant what it grants: another domain, another page or
 * page size, or a right the tables no longer give. Entries more restrictive than the tables
 * are harmless and not reported.
 */
function vtdStaleIotlb(state: VtdState, memory: PhysicalMemory, out: VtdStaleEntry[]): void {
  for (const [key, cached] of state.iotlb) {
    const stale = (detail: string): void => void out.push({ cache: 'iotlb', key, sid: cached.sid, did: cached.did, detail });
    const context = vtdReadContext(state, memory, cached.sid);
    if (!context.ok) {
      stale(`the device's context entry now faults with 0x${context.reason.toString(16)} (${vtdFaultReasonName(context.reason)})`);
      continue;
    }
    if (context.entry.did !== cached.did) {
      stale(`the device is now in domain ${context.entry.did}`);
      continue;
    }
    if (context.entry.tt === VTD_TT_PASS_THROUGH) {
      stale('the device is now in pass-through');
      continue;
    }
    const iova = cached.gfn * 4096;
    const walk = vtdWalkSecondLevel(memory, context.entry.slptptr, context.entry.aw, iova, 'any');
    if (walk.kind !== 'leaf') {
      stale(`iova 0x${iova.toString(16)} is no longer mapped (${walk.kind === 'denied' ? 'no rights' : walk.kind} at level ${walk.level})`);
    } else if (walk.level !== cached.level || walk.hpa !== cached.hpa) {
      stale(`iova 0x${iova.toString(16)} now maps hpa 0x${walk.hpa.toString(16)} at level ${walk.level}, cached 0x${cached.hpa.toString(16)} at level ${cached.level}`);
    } else if ((cached.read && !walk.read) || (cached.write && !walk.write)) {
      stale(`iova 0x${iova.toString(16)} lost rights: cached ${cached.read ? 'R' : ''}${cached.write ? 'W' : ''}, now ${walk.read ? 'R' : ''}${walk.write ? 'W' : ''}`);
    }
  }
}

function vtdStaleIec(state: VtdState, memory: PhysicalMemory, out: VtdStaleEntry[]): void {
  for (const [index, cached] of state.iec) {
    const stale = (detail: string): void => void out.push({ cache: 'iec', key: String(index), sid: cached.sidField, did: -1, detail });
    if (index >= 2 ** ((state.regs.irtaActive & VTD_IRTA_S_MASK) + 1)) {
      stale(`index ${index} is now beyond the interrupt remapping table`);
      continue;
    }
    const now = vtdReadIrte(state, memory, index);
    if (!now.ok) {
      stale(`IRTE ${index} now faults with 0x${now.reason.toString(16)} (${vtdFaultReasonName(now.reason)})`);
      continue;
    }
    const fields = ['vector', 'destination', 'dm', 'dlm', 'tm', 'rh', 'svt', 'sq', 'sidField', 'fpd'] as const;
    const changed = fields.filter((field) => now.entry[field] !== cached[field]);
    if (changed.length > 0) stale(`IRTE ${index} changed: ${changed.map((f) => `${f} ${cached[f]} -> ${now.entry[f]}`).join(', ')}`);
  }
}

/**
 * Cache entries that no longer match the tables in memory, for the invariant "no cached
 * translation outlives its mapping". Reads memory for every entry: up to 4 context and
 * second-level reads per IOTLB entry, so call it at check points, not per DMA.
 */
export function vtdStaleEntries(state: VtdState, memory: PhysicalMemory): VtdStaleEntry[] {
  const out: VtdStaleEntry[] = [];
  vtdStaleContexts(state, memory, out);
  vtdStaleIotlb(state, memory, out);
  vtdStaleIec(state, memory, out);
  return out;
}

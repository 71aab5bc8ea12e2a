/**
 * Cache invalidation of the VT-d unit (spec 6.5): the queued invalidation interface (a ring
 * of 128-bit descriptors in host memory between IQH and IQT) and the helpers the
 * register-based interface shares with it.
 *
 * The model executes a descriptor at once, so "invalidation complete" is immediate and a
 * wait descriptor's status write follows every descriptor before it, as the spec orders.
 */
import {
  VTD_FSTS_IQE, VTD_GSTS_QIES, VTD_ICS_IWC, VTD_IECTL_IM, VTD_IECTL_IP, VTD_INV_DESC_CC,
  VTD_INV_DESC_CC_RSVD_LO, VTD_INV_DESC_DEVICE_TLB, VTD_INV_DESC_G_SHIFT, VTD_INV_DESC_IEC,
  VTD_INV_DESC_IEC_G_INDEX, VTD_INV_DESC_IEC_RSVD_LO, VTD_INV_DESC_IOTLB, VTD_INV_DESC_IOTLB_RSVD_HI,
  VTD_INV_DESC_IOTLB_RSVD_LO, VTD_INV_DESC_TYPE_HI_MASK, VTD_INV_DESC_TYPE_MASK, VTD_INV_DESC_WAIT,
  VTD_INV_DESC_WAIT_IF, VTD_INV_DESC_WAIT_RSVD_HI, VTD_INV_DESC_WAIT_RSVD_LO, VTD_INV_DESC_WAIT_SW,
  VTD_IOTLB_PAGE, VTD_IQA_DW, VTD_IQA_QS_MASK, VTD_IQ_DESCRIPTORS_PER_PAGE, VTD_IQ_INDEX_SHIFT,
  VTD_MAMV, VTD_PAGE_SIZE, VTD_POINTER_RSVD, VTD_DESCRIPTOR_SIZE,
} from './vtd-internal.ts';
import { VtdTransaction, type PhysicalMemory, type VtdEffect, type VtdState } from './vtd-state.ts';
import { vtdFaultEvent, vtdFaultStatus, vtdRead64 } from './vtd.ts';

export interface VtdQueueResult {
  /** Descriptors consumed: IQH moved past them. */
  processed: number;
  /** Wait descriptors among them. */
  waits: number;
  /** Why this call stopped the queue with IQE; null when it did not. */
  error: string | null;
  /** The queue did not run: QI is off, or an earlier IQE is still set. */
  stalled: boolean;
}

/**
 * Sets FSTS.IQE (spec 6.5.2.10): the queue stops with IQH at the offending descriptor until
 * software clears IQE. It is a condition software caused, so the unit also logs why.
 */
function vtdQueueError(txn: VtdTransaction, reason: string): void {
  const before = vtdFaultStatus(txn.state);
  txn.emit({ kind: 'reg', name: 'fsts', value: (txn.state.regs.fsts | VTD_FSTS_IQE) >>> 0 });
  txn.emitAll(vtdFaultEvent(txn.state, before));
  txn.emit({ kind: 'log', message: `invalidation queue error: ${reason}` });
}

/** An invalidation-completion event for a wait descriptor with IF (spec 6.5.2.8, 11.4.9.4). */
function vtdCompletionEvent(state: VtdState): VtdEffect[] {
  const { ics, iectl } = state.regs;
  if ((ics & VTD_ICS_IWC) !== 0) return [];
  const effects: VtdEffect[] = [{ kind: 'reg', name: 'ics', value: (ics | VTD_ICS_IWC) >>> 0 }];
  if ((iectl & VTD_IECTL_IM) !== 0) effects.push({ kind: 'reg', name: 'iectl', value: (iectl | VTD_IECTL_IP) >>> 0 });
  else effects.push({ kind: 'interrupt', cause: 'invalidation-completion', address: state.regs.ieaddr, data: state.regs.iedata });
  return effects;
}

function vtdField(word: bigint, shift: bigint, mask: bigint): number {
  return Number((word >> shift) & mask);
}

/** Context-cache invalidate descriptor (spec 6.5.2.1). */
function vtdContextDescriptor(lo: bigint, hi: bigint): VtdEffect | string {
  if ((lo & VTD_INV_DESC_CC_RSVD_LO) !== 0n || hi !== 0n) return 'reserved bits set in a context-cache invalidate descriptor';
  const granularity = vtdField(lo, VTD_INV_DESC_G_SHIFT, 3n);
  if (granularity === 0) return 'context-cache invalidate descriptor with granularity 0';
  return { kind: 'context-cache.invalidate', invalidation: { granularity, did: vtdField(lo, 16n, 0xffffn), sid: vtdField(lo, 32n, 0xffffn), fm: vtdField(lo, 48n, 3n) } };
}

/** IOTLB invalidate descriptor (spec 6.5.2.3); AM above CAP.MAMV is invalid. */
function vtdIotlbDescriptor(lo: bigint, hi: bigint): VtdEffect | string {
  if ((lo & VTD_INV_DESC_IOTLB_RSVD_LO) !== 0n || (hi & VTD_INV_DESC_IOTLB_RSVD_HI) !== 0n) return 'reserved bits set in an IOTLB invalidate descriptor';
  const granularity = vtdField(lo, VTD_INV_DESC_G_SHIFT, 3n);
  if (granularity === 0) return 'IOTLB invalidate descriptor with granularity 0';
  const am = vtdField(hi, 0n, 0x3fn);
  if (granularity === VTD_IOTLB_PAGE && am > VTD_MAMV) return `IOTLB invalidate descriptor with AM ${am} above MAMV ${VTD_MAMV}`;
  const address = Number(hi >> 12n) * VTD_PAGE_SIZE;
  return { kind: 'iotlb.invalidate', invalidation: { granularity, did: vtdField(lo, 16n, 0xffffn), address, am } };
}

/** Interrupt entry cache invalidate descriptor (spec 6.5.2.7). */
function vtdIecDescriptor(lo: bigint, hi: bigint): VtdEffect | string {
  if ((lo & VTD_INV_DESC_IEC_RSVD_LO) !== 0n || hi !== 0n) return 'reserved bits set in an interrupt entry cache invalidate descriptor';
  return { kind: 'iec.invalidate', invalidation: { global: (lo & VTD_INV_DESC_IEC_G_INDEX) === 0n, index: vtdField(lo, 32n, 0xffffn), im: vtdField(lo, 27n, 0x1fn) } };
}

/** Invalidation wait descriptor (spec 6.5.2.8): status write (SW) and completion interrupt (IF). */
function vtdWaitDescriptor(txn: VtdTransaction, lo: bigint, hi: bigint): string | null {
  if ((lo & VTD_INV_DESC_WAIT_RSVD_LO) !== 0n || (hi & VTD_INV_DESC_WAIT_RSVD_HI) !== 0n) return 'reserved bits set in an invalidation wait descriptor';
  if ((lo & VTD_INV_DESC_WAIT_SW) !== 0n) {
    if ((hi & VTD_POINTER_RSVD) !== 0n) return 'wait descriptor status address beyond the host address width';
    txn.emit({ kind: 'memory.write32', hpa: Number(hi), value: Number(lo >> 32n) });
  }
  if ((lo & VTD_INV_DESC_WAIT_IF) !== 0n) txn.emitAll(vtdCompletionEvent(txn.state));
  return null;
}

/** Executes one descriptor; returns why it is invalid, or null. */
function vtdExecuteDescriptor(txn: VtdTransaction, lo: bigint, hi: bigint): string | null {
  const type = Number(lo & VTD_INV_DESC_TYPE_MASK);
  if ((lo & VTD_INV_DESC_TYPE_HI_MASK) !== 0n) return `descriptor type ${type | (Number((lo & VTD_INV_DESC_TYPE_HI_MASK) >> 5n))} is a scalable-mode type`;
  let decoded: VtdEffect | string;
  switch (type) {
    case VTD_INV_DESC_CC: decoded = vtdContextDescriptor(lo, hi); break;
    case VTD_INV_DESC_IOTLB: decoded = vtdIotlbDescriptor(lo, hi); break;
    case VTD_INV_DESC_IEC: decoded = vtdIecDescriptor(lo, hi); break;
    // No device TLBs are modelled: nothing a device caches outlives this descriptor.
    case VTD_INV_DESC_DEVICE_TLB: return null;
    case VTD_INV_DESC_WAIT: return vtdWaitDescriptor(txn, lo, hi);
    default: return `invalid descriptor type ${type}`;
  }
  if (typeof decoded === 'string') return decoded;
  txn.emit(decoded);
  return null;
}

/** Runs the queue inside a transaction (also used by the IQT and GCMD register writes). */
export function vtdRunQueue(txn: VtdTransaction, memory: PhysicalMemory): VtdQueueResult {
  const result: VtdQueueResult = { processed: 0, waits: 0, error: null, stalled: false };
  const regs = txn.state.regs;
  if ((regs.gsts & VTD_GSTS_QIES) === 0 || (regs.fsts & VTD_FSTS_IQE) !== 0) return { ...result, stalled: true };
  const fail = (reason: string): VtdQueueResult => {
    vtdQueueError(txn, reason);
    return { ...result, error: reason };
  };
  if ((regs.iqa & VTD_IQA_DW) !== 0) return fail('IQA.DW = 1: 256-bit descriptors need scalable mode');
  const size = VTD_IQ_DESCRIPTORS_PER_PAGE << (regs.iqa & VTD_IQA_QS_MASK);
  const base = regs.iqa - (regs.iqa % VTD_PAGE_SIZE);
  const start = regs.iqh >>> VTD_IQ_INDEX_SHIFT;
  const tail = regs.iqt >>> VTD_IQ_INDEX_SHIFT;
  if (tail >= size) return fail(`IQT ${tail} beyond a queue of ${size} descriptors`);
  let head = start;
  let error: string | null = null;
  while (head !== tail && result.processed < size) {
    const lo = vtdRead64(memory, base + head * VTD_DESCRIPTOR_SIZE);
    const hi = vtdRead64(memory, base + head * VTD_DESCRIPTOR_SIZE + 8);
    error = lo === undefined || hi === undefined ? 'it is outside memory' : vtdExecuteDescriptor(txn, lo, hi);
    if (error !== null) break;
    if (Number(lo! & VTD_INV_DESC_TYPE_MASK) === VTD_INV_DESC_WAIT) result.waits++;
    head = (head + 1) % size;
    result.processed++;
  }
  if (head !== start) txn.emit({ kind: 'reg', name: 'iqh', value: head << VTD_IQ_INDEX_SHIFT });
  return error === null ? result : fail(`descriptor ${head}: ${error}`);
}

/**
 * Consumes the descriptors from IQH to IQT (spec 6.5.2). An invalid descriptor, or one
 * outside memory, sets FSTS.IQE and leaves IQH pointing at it. Costs one memory read pair
 * per descriptor; the queue holds at most 2^15 descriptors.
 */
export function vtdProcessQueue(state: VtdState, memory: PhysicalMemory): { result: VtdQueueResult; effects: VtdEffect[] } {
  const txn = new VtdTransaction(state);
  const result = vtdRunQueue(txn, memory);
  return { result, effects: txn.effects };
}

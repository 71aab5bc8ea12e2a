/**
 * One IOMMU operation of Xen's VT-d driver (xen/drivers/passthrough/vtd), and its fold.
 *
 * Xen decides and records every change as a `vtd.op` event: the table words it wrote in its
 * own frames, the table frames it took or gave back, and the unit's effects (register
 * writes, and the invalidation queue the unit ran when IQT moved). The fold applies them
 * and keeps `state.io.xenVtd` from the op's name and fields.
 *
 * Layout Xen uses: table frames come from its own pool (frames 64..255, never a guest's);
 * boot takes, in order, the root table, the interrupt remapping table (256 IRTEs), the
 * invalidation queue (256 descriptors) and the page the wait descriptors write their status
 * to. An IOMMU domain has domain id DID = domain id + 1 (DID 0 stays unused) and 4-level
 * second-level tables (AW = 2) that mirror the domain's p2m.
 */
import { assert } from '../../../events/errors.ts';
import type { DomainId, EventOf } from '../../../events/schema.ts';
import {
  DMAR_GCMD_REG, DMAR_IQT_REG, VTD_DESCRIPTOR_SIZE, VTD_IQ_DESCRIPTORS_PER_PAGE, vtdApply, vtdGcmdWith, vtdIqtValue,
  vtdRegisterWrite, VtdTransaction, vtdWaitDescriptor, type PhysicalMemory, type VtdEffect, type VtdEntry128,
} from '../../hardware/iommu/index.ts';
import { PAGE_SIZE } from '../config.ts';
import type { XenVtd } from '../io/io-state.ts';
import { hostPhysicalMemory, writeXenWords } from '../memory/host-frames.ts';
import type { Host, HostState } from '../state.ts';

/** IQA.QS = 0: one page of 256 128-bit descriptors. */
export const IQA_QS = 0;

export const IQ_DESCRIPTORS = VTD_IQ_DESCRIPTORS_PER_PAGE << IQA_QS;

/** The value a wait descriptor writes to its status word (Xen's QINVAL_STAT_DONE; INIT is 0). */
const QINVAL_STAT_DONE = 1;

/** Where the wait descriptors write their status: the first word of the page after the queue. */
export function waitStatusAddress(xen: XenVtd): number {
  return xen.iq + PAGE_SIZE;
}

/**
 * What Xen does in one IOMMU operation, collected before it is recorded: the unit sees
 * Xen's stores at once (memory is an overlay of them), and the unit's own state moves with
 * each register write (a transaction), as it would on the hardware.
 */
export class VtdOp {
  readonly alloc: number[] = [];
  readonly free: number[] = [];
  /** Stores Xen made, by address (the last one at an address is what memory holds). */
  private readonly stores = new Map<number, bigint>();
  /** What the unit sees: Xen's stores and the unit's own status writes. */
  private readonly view = new Map<number, bigint>();
  private readonly txn: VtdTransaction;
  readonly memory: PhysicalMemory;
  private iq: number;
  private iqTail: number;

  constructor(private readonly host: Host) {
    const io = host.state.io;
    this.txn = new VtdTransaction(io.vtd);
    this.iq = io.xenVtd.iq;
    this.iqTail = io.xenVtd.iqTail;
    const base = hostPhysicalMemory(host.state);
    this.memory = {
      read64: (hpa) => {
        const stored = base.read64(hpa);
        return stored === undefined ? undefined : this.view.get(hpa) ?? stored;
      },
    };
  }

  /** A zeroed table frame from Xen's pool, lowest first. */
  takeFrame(): number {
    const taken = new Set(this.alloc);
    const mfn = this.host.state.io.xenVtd.freeFrames.find((f) => !taken.has(f));
    assert(mfn !== undefined, 'Xen ran out of IOMMU table frames');
    this.alloc.push(mfn);
    return mfn * PAGE_SIZE;
  }

  write64(hpa: number, value: bigint): void {
    this.stores.set(hpa, value);
    this.view.set(hpa, value);
  }

  write128(hpa: number, entry: VtdEntry128): void {
    this.write64(hpa, entry.lo);
    this.write64(hpa + 8, entry.hi);
  }

  /** An MMIO write to a register of the unit. */
  reg(offset: number, size: 4 | 8, value: bigint): void {
    const { effects } = vtdRegisterWrite(this.txn.state, this.memory, offset, size, value);
    for (const effect of effects) this.effect(effect);
  }

  private effect(effect: VtdEffect): void {
    this.txn.emit(effect);
    if (effect.kind !== 'memory.write32') return;
    const word = effect.hpa - (effect.hpa % 8);
    const shift = BigInt((effect.hpa % 8) * 8);
    const old = this.view.get(word) ?? this.memory.read64(word) ?? 0n;
    this.view.set(word, (old & ~(0xffff_ffffn << shift)) | (BigInt(effect.value >>> 0) << shift));
  }

  /** Sets one GCMD command, keeping the ones already on, and never CFI. */
  command(bit: number): void {
    this.reg(DMAR_GCMD_REG, 4, BigInt(vtdGcmdWith(this.txn.state, bit)));
  }

  /** Starts the queue at a base of its own (boot). */
  queueAt(iq: number): void {
    this.iq = iq;
    this.iqTail = 0;
  }

  /** Puts descriptors in the invalidation queue and moves IQT past them; the unit runs them. */
  submit(descriptors: readonly VtdEntry128[]): void {
    for (const descriptor of descriptors) {
      this.write128(this.iq + this.iqTail * VTD_DESCRIPTOR_SIZE, descriptor);
      this.iqTail = (this.iqTail + 1) % IQ_DESCRIPTORS;
    }
    this.reg(DMAR_IQT_REG, 8, vtdIqtValue(this.iqTail));
  }

  /**
   * An invalidation wait descriptor (status write, fence): Xen resets the status word, queues
   * the wait and polls until the unit wrote DONE, which means everything queued before it
   * is complete. One per op: the fold applies Xen's stores before the unit's writes.
   */
  wait(statusAddress: number): void {
    this.write64(statusAddress, 0n);
    this.submit([vtdWaitDescriptor({ statusAddress, statusData: QINVAL_STAT_DONE, fence: true })]);
    assert(this.memory.read64(statusAddress) === BigInt(QINVAL_STAT_DONE), 'the invalidation wait descriptor did not complete');
  }

  /** Records the operation as one vtd.op event (the fold applies it at once). */
  emit(op: string, sid: number, did: number): void {
    const words: number[] = [];
    for (const [hpa, value] of this.stores) words.push(hpa, Number(value & 0xffff_ffffn), Number(value >> 32n));
    this.host.emit('vtd.op', { op, sid, did, alloc: this.alloc, free: this.free, words, effects: encodeVtdEffects(this.txn.effects) });
  }
}

export function didOf(dom: DomainId): number {
  return dom + 1;
}

/** The effects a vtd.op, dma.request or msi event carries (JSON, "" for none). */
export function decodeVtdEffects(json: string): VtdEffect[] {
  return json === '' ? [] : (JSON.parse(json) as VtdEffect[]);
}

export function encodeVtdEffects(effects: readonly VtdEffect[]): string {
  return effects.length === 0 ? '' : JSON.stringify(effects);
}

/** Xen's IOMMU programming: table frames taken or given back, table words, register effects. */
export function applyVtdOp(state: HostState, event: EventOf<'vtd.op'>): void {
  const xen = state.io.xenVtd;
  if (event.alloc.length > 0) {
    const taken = new Set(event.alloc);
    xen.freeFrames = xen.freeFrames.filter((mfn) => !taken.has(mfn));
  }
  for (const mfn of event.free) {
    // A table frame given back is cleared, so a later table starts from zeros.
    state.memory.delete(mfn);
    xen.freeFrames = [...xen.freeFrames, mfn].sort((a, b) => a - b);
  }
  writeXenWords(state, event.words);
  const effects = decodeVtdEffects(event.effects);
  applyVtdEffects(state, effects);
  applyXenVtdRecord(state, event, effects);
}

/**
 * Xen's record of what it programmed (iommu-domains.ts, interrupt-remapping.ts), from the
 * op's name and fields: boot takes [root table, IRT, invalidation queue, wait-status page] in
 * that order; DID is the domain id + 1; an IRTE op names its entry by the address of the
 * words it wrote. The queue tail is the last IQT Xen wrote.
 */
function applyXenVtdRecord(state: HostState, event: EventOf<'vtd.op'>, effects: readonly VtdEffect[]): void {
  const xen = state.io.xenVtd;
  const dom = event.did - 1;
  switch (event.op) {
    case 'boot':
      xen.enabled = true;
      [xen.rootTable, xen.irt, xen.iq] = event.alloc.slice(0, 3).map((mfn) => mfn * PAGE_SIZE);
      break;
    case 'domain.create':
      xen.domains.set(dom, { did: event.did, slptptr: event.alloc[0] * PAGE_SIZE, frames: [...event.alloc] });
      break;
    case 'map': {
      const domain = xen.domains.get(dom);
      if (domain !== undefined && event.alloc.length > 0) xen.domains.set(dom, { ...domain, frames: [...domain.frames, ...event.alloc] });
      break;
    }
    case 'domain.free': xen.domains.delete(dom); break;
    case 'context.set':
      xen.devices.set(event.sid, dom);
      if (event.alloc.length > 0) xen.contextTables.set(event.sid >>> 8, event.alloc[0] * PAGE_SIZE);
      break;
    case 'context.clear': xen.devices.delete(event.sid); break;
    case 'irte.set':
      // words: the IRTE's low word (vector [23:16], xAPIC destination [47:40] = the vCPU), then its high word.
      xen.irtes.set((event.words[0] - xen.irt) / 16, { sid: event.sid, dom, vcpu: (event.words[2] >>> 8) & 0xff, vector: (event.words[1] >>> 16) & 0xff });
      break;
    case 'irte.clear': xen.irtes.delete((event.words[0] - xen.irt) / 16); break;
  }
  for (const effect of effects) {
    if (effect.kind === 'reg' && effect.name === 'iqt') xen.iqTail = effect.value >>> 4;
  }
}

export function applyVtdEffects(state: HostState, effects: readonly VtdEffect[]): void {
  for (const effect of effects) {
    if (effect.kind === 'memory.write32') {
      const hpa = effect.hpa - (effect.hpa % 8);
      const page = state.memory.get(Math.floor(hpa / PAGE_SIZE));
      const view = page ? new DataView(page.bytes.buffer, page.bytes.byteOffset) : undefined;
      const old = [view?.getUint32(hpa % PAGE_SIZE, true) ?? 0, view?.getUint32((hpa % PAGE_SIZE) + 4, true) ?? 0];
      old[(effect.hpa % 8) / 4] = effect.value;
      writeXenWords(state, [hpa, old[0], old[1]]);
    } else {
      vtdApply(state.io.vtd, effect);
    }
  }
}


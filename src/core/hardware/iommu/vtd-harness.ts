/**
 * A remapping unit on its own: the pure functions folded into a live state over a map of
 * words, with a bump allocator for table frames and a driver that programs the unit through
 * its registers as a hypervisor would. For tests, benchmarks and tools; the machine folds the
 * effects into its own state instead (and logs them as events).
 *
 * Deterministic: frames come in order from `firstFrame`; nothing here reads a clock.
 */
import { assert } from '../../../events/errors.ts';
import {
  DMAR_FRCD_REG_OFFSET, DMAR_FRCD_REG_SIZE, DMAR_FSTS_REG, DMAR_GCMD_REG, DMAR_IQA_REG, DMAR_IQT_REG,
  DMAR_IRTA_REG, DMAR_RTADDR_REG, VTD_ADDRESS_MASK, VTD_DESCRIPTOR_SIZE, VTD_GCMD_CFI, VTD_GCMD_IRE,
  VTD_GCMD_QIE, VTD_GCMD_SIRTP, VTD_GCMD_SRTP, VTD_GCMD_TE, VTD_IQ_DESCRIPTORS_PER_PAGE, VTD_IRTE_SIZE,
  VTD_PAGE_SIZE, VTD_ROOT_ENTRY_P,
} from './vtd-internal.ts';
import { vtdProcessQueue, type VtdQueueResult } from './vtd-invalidation.ts';
import { vtdGcmdWith, vtdRegisterRead, vtdRegisterWrite } from './vtd-registers.ts';
import { vtdApply, vtdInitialState, type VtdEffect, type VtdState } from './vtd-state.ts';
import {
  vtdContextEntry, vtdContextEntryAddress, vtdIqaValue, vtdIqtValue, vtdIrtaValue, vtdIrte, vtdMapPageWrites,
  vtdRootEntry, vtdRootEntryAddress, vtdUnmapPageWrites, VtdWordMemory, type VtdContextFields, type VtdEntry128,
  type VtdIrteFields,
} from './vtd-tables.ts';
import {
  vtdRemapInterrupt, vtdTranslate, type DmaRequest, type DmaTranslation, type DmarFault, type InterruptDelivery,
  type InterruptRequest, type IrFault,
} from './vtd.ts';

export interface VtdHarnessOptions {
  /** Host memory size; reads at or above fail. */
  memoryBytes?: number;
  /** Where the allocator starts handing out 4 KiB frames. */
  firstFrame?: number;
}

/** A device's place in the harness: its context and second-level table root. */
export interface VtdAttachment {
  sid: number;
  did: number;
  aw: number;
  slptptr: number;
}

export class VtdHarness {
  state: VtdState = vtdInitialState();
  readonly memory: VtdWordMemory;
  /** Every effect applied, in order (what the machine would log). */
  readonly journal: VtdEffect[] = [];
  readonly interrupts: Extract<VtdEffect, { kind: 'interrupt' }>[] = [];
  readonly logs: string[] = [];
  private nextFrame: number;
  rootTable = -1;
  private queue: { base: number; size: number; tail: number } | undefined;
  private irt: { base: number; entries: number } | undefined;

  constructor(options: VtdHarnessOptions = {}) {
    this.memory = new VtdWordMemory(options.memoryBytes ?? 64 * 1024 * 1024);
    this.nextFrame = options.firstFrame ?? 0x10_0000;
  }

  /** A zeroed 4 KiB frame. */
  allocFrame(count = 1): number {
    const frame = this.nextFrame;
    this.nextFrame += count * VTD_PAGE_SIZE;
    assert(this.nextFrame <= this.memory.sizeBytes, 'the harness ran out of frames');
    return frame;
  }

  /** Folds effects into the state and performs the ones meant for the machine. */
  apply(effects: readonly VtdEffect[]): void {
    for (const effect of effects) {
      vtdApply(this.state, effect);
      this.journal.push(effect);
      if (effect.kind === 'memory.write32') this.memory.write32(effect.hpa, effect.value);
      else if (effect.kind === 'interrupt') this.interrupts.push(effect);
      else if (effect.kind === 'log') this.logs.push(effect.message);
    }
  }

  writeReg(offset: number, value: bigint | number, size: 4 | 8 = 8): VtdEffect[] {
    const { effects } = vtdRegisterWrite(this.state, this.memory, offset, size, BigInt(value));
    this.apply(effects);
    return effects;
  }

  readReg(offset: number, size: 4 | 8 = 8): bigint {
    return vtdRegisterRead(this.state, offset, size);
  }

  /** Sets or clears one GCMD command, keeping the others, as a driver does. */
  command(bit: number, on = true): void {
    this.writeReg(DMAR_GCMD_REG, vtdGcmdWith(this.state, bit, on), 4);
  }

  /** Allocates a root table, latches it (SRTP) and turns translation on (TE). */
  enableTranslation(): void {
    if (this.rootTable < 0) this.rootTable = this.allocFrame();
    this.writeReg(DMAR_RTADDR_REG, this.rootTable);
    this.command(VTD_GCMD_SRTP);
    this.command(VTD_GCMD_TE);
  }

  /** The context entry address of `sid`, creating the bus's context table if needed. */
  contextSlot(sid: number): number {
    assert(this.rootTable >= 0, 'enableTranslation first');
    const rootAddress = vtdRootEntryAddress(this.rootTable, sid >>> 8);
    let root = this.memory.read64(rootAddress)!;
    if ((root & VTD_ROOT_ENTRY_P) === 0n) {
      const table = this.allocFrame();
      this.memory.write128(rootAddress, vtdRootEntry({ contextTable: table }));
      root = this.memory.read64(rootAddress)!;
    }
    return vtdContextEntryAddress(Number(root & VTD_ADDRESS_MASK), sid & 0xff);
  }

  /** Writes a context entry for `sid` with a fresh second-level root (no invalidation). */
  attach(sid: number, fields: Omit<VtdContextFields, 'slptptr'> & { slptptr?: number }): VtdAttachment {
    const slptptr = fields.slptptr ?? this.allocFrame();
    const aw = fields.aw ?? 2;
    this.memory.write128(this.contextSlot(sid), vtdContextEntry({ ...fields, aw, slptptr }));
    return { sid, did: fields.did, aw, slptptr };
  }

  /** Writes a raw 128-bit context entry for `sid` (for hostile or broken programming). */
  writeContext(sid: number, entry: VtdEntry128): void {
    this.memory.write128(this.contextSlot(sid), entry);
  }

  map(at: VtdAttachment, iova: number, hpa: number, rights: { read: boolean; write: boolean }, level = 1): void {
    this.memory.apply(vtdMapPageWrites(this.memory, { slptptr: at.slptptr, aw: at.aw, iova, hpa, level, ...rights }, () => this.allocFrame()));
  }

  unmap(at: VtdAttachment, iova: number): void {
    this.memory.apply(vtdUnmapPageWrites(this.memory, { slptptr: at.slptptr, aw: at.aw, iova }));
  }

  dma(request: Omit<DmaRequest, 'size'> & { size?: number }): DmaTranslation | DmarFault {
    const { result, effects } = vtdTranslate(this.state, this.memory, { size: 4, ...request });
    this.apply(effects);
    return result;
  }

  msi(request: InterruptRequest): InterruptDelivery | IrFault {
    const { result, effects } = vtdRemapInterrupt(this.state, this.memory, request);
    this.apply(effects);
    return result;
  }

  /** Software clears fault record `index` through its register (F is write-1-to-clear). */
  clearFaultRecord(index: number): void {
    this.writeReg(DMAR_FRCD_REG_OFFSET + index * DMAR_FRCD_REG_SIZE + 8, 1n << 63n);
  }

  /** Software clears FSTS bits (PFO, IQE, ...), write-1-to-clear. */
  clearFaultStatus(bits: number): void {
    this.writeReg(DMAR_FSTS_REG, bits, 4);
  }

  /** Allocates an invalidation queue of 2^qs pages, programs IQA and enables QI. */
  enableQueue(qs = 0): void {
    const base = this.allocFrame(1 << qs);
    this.queue = { base, size: VTD_IQ_DESCRIPTORS_PER_PAGE << qs, tail: 0 };
    this.writeReg(DMAR_IQT_REG, 0);
    this.writeReg(DMAR_IQA_REG, vtdIqaValue(base, qs));
    this.command(VTD_GCMD_QIE);
  }

  /** Puts descriptors in the queue and moves IQT past them (the unit runs them at once). */
  submit(descriptors: readonly VtdEntry128[]): VtdEffect[] {
    assert(this.queue !== undefined, 'enableQueue first');
    for (const d of descriptors) {
      this.memory.write128(this.queue.base + this.queue.tail * VTD_DESCRIPTOR_SIZE, d);
      this.queue.tail = (this.queue.tail + 1) % this.queue.size;
    }
    return this.writeReg(DMAR_IQT_REG, vtdIqtValue(this.queue.tail));
  }

  /** Runs the queue without touching IQT (after software cleared IQE, say). */
  runQueue(): VtdQueueResult {
    const { result, effects } = vtdProcessQueue(this.state, this.memory);
    this.apply(effects);
    return result;
  }

  /** Allocates an interrupt remapping table of 2^(s+1) entries, latches it and enables IR. */
  enableInterruptRemapping(s = 7, options: { eime?: boolean; cfi?: boolean } = {}): void {
    const entries = 2 ** (s + 1);
    const base = this.allocFrame(Math.ceil((entries * VTD_IRTE_SIZE) / VTD_PAGE_SIZE));
    this.irt = { base, entries };
    this.writeReg(DMAR_IRTA_REG, vtdIrtaValue(base, s, options.eime));
    this.command(VTD_GCMD_SIRTP);
    if (options.cfi) this.command(VTD_GCMD_CFI);
    this.command(VTD_GCMD_IRE);
  }

  irteAddress(index: number): number {
    assert(this.irt !== undefined, 'enableInterruptRemapping first');
    return this.irt.base + index * VTD_IRTE_SIZE;
  }

  setIrte(index: number, fields: VtdIrteFields): void {
    this.memory.write128(this.irteAddress(index), vtdIrte(fields));
  }
}

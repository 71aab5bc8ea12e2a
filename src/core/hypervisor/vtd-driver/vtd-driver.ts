/**
 * Xen's VT-d driver (xen/drivers/passthrough/vtd): the hypervisor programming the remapping
 * unit of src/core/iommu, and the unit's two request paths, device DMA and interrupt
 * requests, as the machine runs them.
 *
 * Xen decides here and records every change as an event: a `vtd.op` carries the table words
 * Xen wrote in its own frames, the table frames it took or gave back, and the unit's effects
 * (register writes, and the invalidation queue the unit ran when IQT moved). The fold
 * (io-evolve.ts) applies them and keeps `state.io.xenVtd` from the op's name and fields.
 *
 * Layout Xen uses: table frames come from its own pool (frames 64..255, never a guest's);
 * boot takes, in order, the root table, the interrupt remapping table (256 IRTEs), the
 * invalidation queue (256 descriptors) and the page the wait descriptors write their status
 * to. An IOMMU domain has domain id DID = domain id + 1 (DID 0 stays unused) and 4-level
 * second-level tables (AW = 2) that mirror the domain's p2m.
 */
import { assert } from '../../../events/errors.ts';
import { NO_DOMAIN, type DomainId } from '../../../events/schema.ts';
import {
  DMAR_FEADDR_REG, DMAR_FEDATA_REG, DMAR_FRCD_REG_OFFSET, DMAR_FRCD_REG_SIZE, DMAR_FSTS_REG, DMAR_GCMD_REG, DMAR_IQA_REG, DMAR_IQT_REG, DMAR_IRTA_REG,
  DMAR_RTADDR_REG, VTD_CC_DEVICE, VTD_CC_GLOBAL, VTD_DESCRIPTOR_SIZE, VTD_GCMD_IRE,
  VTD_GCMD_CFI, VTD_GCMD_QIE, VTD_GCMD_SIRTP, VTD_GCMD_SRTP, VTD_GCMD_TE, VTD_IOTLB_DOMAIN, VTD_IOTLB_GLOBAL,
  VTD_FRCD_F, VTD_FSTS_PFO, VTD_IOTLB_PAGE, VTD_IQ_DESCRIPTORS_PER_PAGE, VTD_IRTE_SIZE, VTD_MSI_ADDRESS_BASE,
  VtdTransaction, vtdContextCacheDescriptor, vtdContextEntry, vtdContextEntryAddress, vtdGcmdWith,
  vtdIecDescriptor, vtdIotlbDescriptor, vtdIqaValue, vtdIqtValue, vtdIrtaValue, vtdIrte,
  vtdMapPageWrites, vtdRegisterWrite, vtdRemapInterrupt, vtdRemappableMsi, vtdRootEntry,
  vtdRootEntryAddress, vtdTranslate, vtdUnmapPageWrites, vtdWaitDescriptor, vtdWalkSecondLevel,
  type PhysicalMemory, type VtdEffect, type VtdEntry128,
} from '../../hardware/iommu/index.ts';
import { hasFlaw } from '../flaws.ts';
import type { Machine } from '../../machine/machine.ts';
import { writeFrameWithKey } from '../memory/guest-memory.ts';
import { PAGE_SIZE } from '../../machine/scenario.ts';
import { decryptLines, lineSpan } from '../memory/smm.ts';
import type { MachineState } from '../../machine/state.ts';
import { ensureKey } from '../xen.ts';
import { encodeVtdEffects } from '../io/io-evolve.ts';
import type { XenVtd } from '../io/io-state.ts';

/** IRTA.S = 7: 2^(7+1) = 256 IRTEs, one 4 KiB frame. */
const IRTA_S = 7;
const IRT_ENTRIES = 2 ** (IRTA_S + 1);
/** IQA.QS = 0: one page of 256 128-bit descriptors. */
const IQA_QS = 0;
const IQ_DESCRIPTORS = VTD_IQ_DESCRIPTORS_PER_PAGE << IQA_QS;
/** AW = 2: 48-bit guest address width, 4-level second-level tables. */
const SL_AW = 2;
/** The value a wait descriptor writes to its status word (Xen's QINVAL_STAT_DONE; INIT is 0). */
const QINVAL_STAT_DONE = 1;
/** Xen's vector for the unit's fault event (an MSI to the boot CPU). */
const FAULT_EVENT_VECTOR = 0xef;
/** Interrupt requests are DMA writes into 0xFEE0_0000..0xFEEF_FFFF. */
const INTERRUPT_WINDOW_END = VTD_MSI_ADDRESS_BASE + 0x10_0000;

// ---- the unit's memory port -------------------------------------------------------------

function pageWord(state: MachineState, hpa: number): bigint {
  const page = state.memory.get(Math.floor(hpa / PAGE_SIZE));
  if (page === undefined) return 0n;
  return new DataView(page.bytes.buffer, page.bytes.byteOffset, page.bytes.byteLength).getBigUint64(hpa % PAGE_SIZE, true);
}

/**
 * Host memory as the unit reads it: the machine's frames, an absent frame reading as zeros,
 * anything at or beyond the last frame failing (a "failed to access" fault).
 */
export function vtdMemory(state: MachineState): PhysicalMemory {
  const limit = state.config.frames * PAGE_SIZE;
  return {
    read64(hpa: number): bigint | undefined {
      if (!(hpa >= 0 && hpa + 8 <= limit)) return undefined;
      return pageWord(state, hpa);
    },
  };
}

/** Where the wait descriptors write their status: the first word of the page after the queue. */
function waitStatusAddress(xen: XenVtd): number {
  return xen.iq + PAGE_SIZE;
}

// ---- one vtd.op: Xen's stores, frames and register writes, then the event -----------------

/**
 * What Xen does in one IOMMU operation, collected before it is recorded: the unit sees
 * Xen's stores at once (memory is an overlay of them), and the unit's own state moves with
 * each register write (a transaction), as it would on the hardware.
 */
class VtdOp {
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

  constructor(private readonly m: Machine) {
    const io = m.state.io;
    this.txn = new VtdTransaction(io.vtd);
    this.iq = io.xenVtd.iq;
    this.iqTail = io.xenVtd.iqTail;
    const base = vtdMemory(m.state);
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
    const mfn = this.m.state.io.xenVtd.freeFrames.find((f) => !taken.has(f));
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
    this.m.emit('vtd.op', { op, sid, did, alloc: this.alloc, free: this.free, words, effects: encodeVtdEffects(this.txn.effects) });
  }
}

// ---- boot -------------------------------------------------------------------------------

/**
 * Xen's IOMMU bring-up (secure profile; the caller decides): root table (SRTP), queued
 * invalidation (QIE), the interrupt remapping table (SIRTP), a global flush of every cache,
 * then DMA remapping (TE) and interrupt remapping (IRE). CFI stays off, so
 * compatibility-format MSIs are blocked (0x25).
 */
export function vtdBoot(m: Machine): void {
  if (m.state.io.xenVtd.enabled) return;
  const op = new VtdOp(m);
  const root = op.takeFrame();
  const irt = op.takeFrame();
  const iq = op.takeFrame();
  const status = op.takeFrame();
  // Xen finds the wait-status page right after the queue (waitStatusAddress): boot takes them side by side.
  assert(status === iq + PAGE_SIZE, 'the IOMMU pool is not contiguous at boot');
  op.reg(DMAR_FEDATA_REG, 4, BigInt(FAULT_EVENT_VECTOR));
  op.reg(DMAR_FEADDR_REG, 4, BigInt(VTD_MSI_ADDRESS_BASE));
  op.reg(DMAR_RTADDR_REG, 8, BigInt(root));
  op.command(VTD_GCMD_SRTP);
  op.queueAt(iq);
  op.reg(DMAR_IQT_REG, 8, 0n);
  op.reg(DMAR_IQA_REG, 8, vtdIqaValue(iq, IQA_QS));
  op.command(VTD_GCMD_QIE);
  op.reg(DMAR_IRTA_REG, 8, vtdIrtaValue(irt, IRTA_S));
  op.command(VTD_GCMD_SIRTP);
  op.submit([
    vtdContextCacheDescriptor({ granularity: VTD_CC_GLOBAL, did: 0, sid: 0, fm: 0 }),
    vtdIotlbDescriptor({ granularity: VTD_IOTLB_GLOBAL, did: 0, address: 0, am: 0, drain: true }),
    vtdIecDescriptor({ global: true, index: 0, im: 0 }),
  ]);
  op.wait(status);
  op.command(VTD_GCMD_TE);
  op.command(VTD_GCMD_IRE);
  // The planted flaw compat-msi-allowed: compatibility-format interrupts pass remapping.
  if (hasFlaw(m.state, 'compat-msi-allowed')) op.command(VTD_GCMD_CFI);
  op.emit('boot', NO_DOMAIN, 0);
}

/**
 * Xen's fault handler (iommu_page_fault): reads every fault record with F set, clears it
 * (F is write-1-to-clear), then clears PFO, so later faults are recorded again (the unit has
 * few FRCDs and drops faults while they are full). One 'fault.clear' op; none when nothing
 * is pending.
 */
export function vtdServiceFaults(m: Machine): void {
  const vtd = m.state.io.vtd;
  const pending = vtd.frcd.map((r, index) => (r.f ? index : -1)).filter((index) => index >= 0);
  if (pending.length === 0 && (vtd.regs.fsts & VTD_FSTS_PFO) === 0) return;
  const op = new VtdOp(m);
  for (const index of pending) op.reg(DMAR_FRCD_REG_OFFSET + index * DMAR_FRCD_REG_SIZE + 8, 8, VTD_FRCD_F);
  op.reg(DMAR_FSTS_REG, 4, BigInt(VTD_FSTS_PFO));
  op.emit('fault.clear', NO_DOMAIN, 0);
}

// ---- IOMMU domains and their second-level tables ---------------------------------------

function didOf(dom: DomainId): number {
  return dom + 1;
}

/** Builds `dom`'s second-level tables from its p2m, read/write, in one 'domain.create' op. */
function createIommuDomain(m: Machine, dom: DomainId): void {
  const p2m = m.state.domains.get(dom)?.p2m;
  assert(p2m !== undefined, () => `IOMMU domain for domain ${dom}, which does not exist`);
  const op = new VtdOp(m);
  const slptptr = op.takeFrame();
  for (const gfn of [...p2m.keys()].sort((a, b) => a - b)) {
    const mapping = { slptptr, aw: SL_AW, iova: gfn * PAGE_SIZE, hpa: p2m.get(gfn)! * PAGE_SIZE, read: true, write: true };
    for (const w of vtdMapPageWrites(op.memory, mapping, () => op.takeFrame())) op.write64(w.hpa, w.value);
  }
  op.emit('domain.create', NO_DOMAIN, didOf(dom));
}

/** The leaf now mapping `iova` in a domain's tables, if any. */
function mappedLeaf(memory: PhysicalMemory, slptptr: number, iova: number): number | undefined {
  const walk = vtdWalkSecondLevel(memory, slptptr, SL_AW, iova, 'any');
  return walk.kind === 'leaf' ? walk.hpa : undefined;
}

/** A page-selective IOTLB invalidation of one page of `did` (AM = 0), drained, then a wait. */
function invalidatePage(op: VtdOp, xen: XenVtd, did: number, iova: number): void {
  op.submit([vtdIotlbDescriptor({ granularity: VTD_IOTLB_PAGE, did, address: iova, am: 0, drain: true })]);
  op.wait(waitStatusAddress(xen));
}

/**
 * Keeps the IOMMU domain in step with a new p2m entry gfn -> mfn (no-op without one). A
 * changed mapping is invalidated (PSI); a new one needs none (caching mode is off).
 */
export function vtdMapPage(m: Machine, dom: DomainId, gfn: number, mfn: number): void {
  const xen = m.state.io.xenVtd;
  const domain = xen.domains.get(dom);
  if (domain === undefined) return;
  const op = new VtdOp(m);
  const iova = gfn * PAGE_SIZE;
  const before = mappedLeaf(op.memory, domain.slptptr, iova);
  if (before === mfn * PAGE_SIZE) return;
  if (before !== undefined) {
    for (const w of vtdUnmapPageWrites(op.memory, { slptptr: domain.slptptr, aw: SL_AW, iova })) op.write64(w.hpa, w.value);
  }
  const mapping = { slptptr: domain.slptptr, aw: SL_AW, iova, hpa: mfn * PAGE_SIZE, read: true, write: true };
  for (const w of vtdMapPageWrites(op.memory, mapping, () => op.takeFrame())) op.write64(w.hpa, w.value);
  if (before !== undefined) invalidatePage(op, xen, domain.did, iova);
  op.emit('map', NO_DOMAIN, domain.did);
}

/**
 * Removes gfn from the IOMMU domain: the leaf is cleared, then the IOTLB entry for the page
 * is invalidated (PSI) and waited for, so the caller may free the frame afterwards
 * (XSA-346: a flush deferred past the free lets a device reach the next owner's data).
 */
export function vtdUnmapPage(m: Machine, dom: DomainId, gfn: number): void {
  const xen = m.state.io.xenVtd;
  const domain = xen.domains.get(dom);
  if (domain === undefined) return;
  const op = new VtdOp(m);
  const iova = gfn * PAGE_SIZE;
  const writes = vtdUnmapPageWrites(op.memory, { slptptr: domain.slptptr, aw: SL_AW, iova });
  if (writes.length === 0) return;
  for (const w of writes) op.write64(w.hpa, w.value);
  // The planted flaw stale-iotlb: the device keeps its cached translation of the page.
  if (!hasFlaw(m.state, 'stale-iotlb')) invalidatePage(op, xen, domain.did, iova);
  op.emit('unmap', NO_DOMAIN, domain.did);
}

// ---- devices ----------------------------------------------------------------------------

/**
 * Puts device `bdf` in `dom`'s IOMMU domain (creating it from the p2m if needed): the bus's
 * context table on first use, then the context entry (TT = 0, AW = 2, DID, SLPTPTR), then a
 * device-selective context-cache invalidation and a wait. A no-op with remapping off.
 */
export function vtdAssignDevice(m: Machine, bdf: number, dom: DomainId): void {
  const xen = m.state.io.xenVtd;
  // Without remapping (vanilla) there is nothing to program: the device reaches all memory.
  if (!xen.enabled) return;
  const current = xen.devices.get(bdf);
  if (current === dom) return;
  if (current !== undefined) vtdDeassignDevice(m, bdf);
  if (!xen.domains.has(dom)) createIommuDomain(m, dom);
  const domain = xen.domains.get(dom)!;
  const op = new VtdOp(m);
  const rootAddress = vtdRootEntryAddress(xen.rootTable, bdf >>> 8);
  let contextTable = xen.contextTables.get(bdf >>> 8);
  if (contextTable === undefined) {
    contextTable = op.takeFrame();
    op.write128(rootAddress, vtdRootEntry({ contextTable }));
  }
  op.write128(vtdContextEntryAddress(contextTable, bdf & 0xff), vtdContextEntry({ tt: 0, aw: SL_AW, did: domain.did, slptptr: domain.slptptr }));
  op.submit([vtdContextCacheDescriptor({ granularity: VTD_CC_DEVICE, did: domain.did, sid: bdf, fm: 0 })]);
  op.wait(waitStatusAddress(xen));
  op.emit('context.set', bdf, domain.did);
}

/** Clears and invalidates the IRTEs Xen wrote for device `bdf` (its MSIs stop being remapped). */
function releaseIrtes(m: Machine, bdf: number): void {
  const xen = m.state.io.xenVtd;
  const indexes = [...xen.irtes].filter(([, e]) => e.sid === bdf).map(([index]) => index).sort((a, b) => a - b);
  for (const index of indexes) {
    const op = new VtdOp(m);
    op.write128(xen.irt + index * VTD_IRTE_SIZE, { lo: 0n, hi: 0n });
    op.submit([vtdIecDescriptor({ global: false, index, im: 0 })]);
    op.wait(waitStatusAddress(xen));
    op.emit('irte.clear', bdf, didOf(xen.irtes.get(index)!.dom));
  }
}

/**
 * Takes device `bdf` out of its domain in the spec's teardown order (6.5.3.3), each step its
 * own vtd.op so a recording shows the order: clear the context entry, invalidate the context
 * cache for the device, invalidate the IOTLB for the domain (DSI, drained), wait for all of
 * it; then its remapped interrupts go. The IOMMU domain stays until vtdDestroyDomain.
 */
export function vtdDeassignDevice(m: Machine, bdf: number): void {
  const xen = m.state.io.xenVtd;
  const dom = xen.devices.get(bdf);
  if (dom === undefined) return;
  const did = didOf(dom);
  const contextTable = xen.contextTables.get(bdf >>> 8);
  assert(contextTable !== undefined, () => `device ${bdf} is assigned but its bus has no context table`);
  const clear = new VtdOp(m);
  clear.write128(vtdContextEntryAddress(contextTable, bdf & 0xff), { lo: 0n, hi: 0n });
  clear.emit('context.clear', bdf, did);
  // The planted flaw no-context-invalidation: the unit keeps the cached context entry.
  if (!hasFlaw(m.state, 'no-context-invalidation')) {
    const cc = new VtdOp(m);
    cc.submit([vtdContextCacheDescriptor({ granularity: VTD_CC_DEVICE, did, sid: bdf, fm: 0 })]);
    cc.emit('cc.invalidate', bdf, did);
  }
  const iotlb = new VtdOp(m);
  iotlb.submit([vtdIotlbDescriptor({ granularity: VTD_IOTLB_DOMAIN, did, address: 0, am: 0, drain: true })]);
  iotlb.emit('iotlb.invalidate', bdf, did);
  const wait = new VtdOp(m);
  wait.wait(waitStatusAddress(xen));
  wait.emit('wait', bdf, did);
  releaseIrtes(m, bdf);
}

/**
 * A dying domain's IOMMU state goes: its devices (as vtdDeassignDevice), then an IOTLB DSI
 * and a wait, then its table frames back to the pool ('domain.free').
 */
export function vtdDestroyDomain(m: Machine, dom: DomainId): void {
  const xen = m.state.io.xenVtd;
  const devices = [...xen.devices].filter(([, d]) => d === dom).map(([bdf]) => bdf).sort((a, b) => a - b);
  for (const bdf of devices) vtdDeassignDevice(m, bdf);
  const domain = xen.domains.get(dom);
  if (domain === undefined) return;
  const flush = new VtdOp(m);
  flush.submit([vtdIotlbDescriptor({ granularity: VTD_IOTLB_DOMAIN, did: domain.did, address: 0, am: 0, drain: true })]);
  flush.wait(waitStatusAddress(xen));
  flush.emit('iotlb.invalidate', NO_DOMAIN, domain.did);
  const free = new VtdOp(m);
  free.free.push(...domain.frames);
  free.emit('domain.free', NO_DOMAIN, domain.did);
}

// ---- device DMA -------------------------------------------------------------------------

interface DmaPiece {
  iova: number;
  /** Where the piece starts in the transfer. */
  at: number;
  length: number;
}

/** Splits a transfer at 4 KiB boundaries: the unit translates one page at a time. */
function dmaPieces(iova: number, length: number): DmaPiece[] {
  assert(Number.isSafeInteger(iova) && iova >= 0 && Number.isInteger(length) && length >= 0, () => `DMA of ${length} bytes at ${iova}`);
  const pieces: DmaPiece[] = [];
  for (let at = 0; at < length;) {
    const n = Math.min(length - at, PAGE_SIZE - ((iova + at) % PAGE_SIZE));
    pieces.push({ iova: iova + at, at, length: n });
    at += n;
  }
  return pieces;
}

function inMemory(state: MachineState, hpa: number, length: number): boolean {
  return hpa >= 0 && hpa + length <= state.config.frames * PAGE_SIZE;
}

/** The bytes of a frame as stored (absent: zeros). */
function storedBytes(state: MachineState, hpa: number, length: number): Uint8Array {
  const page = state.memory.get(Math.floor(hpa / PAGE_SIZE));
  const offset = hpa % PAGE_SIZE;
  return page === undefined ? new Uint8Array(length) : page.bytes.slice(offset, offset + length);
}

/** The domain a device belongs to: Xen's assignment, else the NIC VF's, else none. */
function deviceDomain(state: MachineState, sid: number): DomainId {
  return state.io.xenVtd.devices.get(sid) ?? state.io.vfs.find((vf) => vf.bdf === sid)?.dom ?? NO_DOMAIN;
}

/**
 * SMM tags a remapped DMA with the IOMMU domain's guest and decrypts with that guest's key:
 * the device sees the plaintext its own VM stored, and ciphertext of any other.
 */
function taggedRead(m: Machine, dom: DomainId, hpa: number, length: number): Uint8Array {
  const mfn = Math.floor(hpa / PAGE_SIZE);
  const page = m.state.memory.get(mfn);
  if (m.state.profile === 'vanilla' || page === undefined) return storedBytes(m.state, hpa, length);
  const offset = hpa % PAGE_SIZE;
  const span = lineSpan(offset, length);
  const plain = decryptLines(ensureKey(m, dom), mfn, span.start, page.bytes.subarray(span.start, span.end));
  return plain.slice(offset - span.start, offset - span.start + length);
}

type PieceResult = { ok: true; hpa: number; dom: DomainId } | { ok: false };

/** Remapping off (vanilla, or before vtdBoot): the iova is a host address, no isolation. */
function untranslatedPiece(m: Machine, sid: number, piece: DmaPiece, data: Uint8Array | undefined): Uint8Array | undefined {
  const hpa = piece.iova;
  const owner = m.state.ppt.get(Math.floor(hpa / PAGE_SIZE))?.owner ?? NO_DOMAIN;
  // The request is the device's domain's, wherever it lands (dma-confined judges that).
  const fields = { sid, dom: deviceDomain(m.state, sid), iova: piece.iova, len: piece.length, write: data !== undefined, hpa, fault: 0, effects: '' };
  if (!inMemory(m.state, hpa, piece.length)) {
    // Nothing answers beyond memory (a master abort): no bytes move.
    m.emit('dma.request', { ...fields, data: new Uint8Array(0) });
    return undefined;
  }
  if (data === undefined) {
    const bytes = storedBytes(m.state, hpa, piece.length);
    m.emit('dma.request', { ...fields, data: bytes.slice() });
    return bytes;
  }
  m.emit('dma.request', { ...fields, data: data.slice() });
  // The bytes land as they are, written by the device's domain (if anyone's).
  const writer = deviceDomain(m.state, sid);
  m.emit('mem.write', { dom: writer === NO_DOMAIN ? owner : writer, gpa: hpa, mfn: Math.floor(hpa / PAGE_SIZE), offset: hpa % PAGE_SIZE, stored: data.slice() });
  return data;
}

/** Translates one page piece through the unit; a fault is recorded and reported here. */
function translatePiece(m: Machine, sid: number, piece: DmaPiece, data: Uint8Array | undefined): PieceResult & { effects: string } {
  const write = data !== undefined;
  const { result, effects } = vtdTranslate(m.state.io.vtd, vtdMemory(m.state), { sid, iova: piece.iova, write, size: piece.length });
  const encoded = encodeVtdEffects(effects);
  if (result.kind === 'fault') {
    m.emit('dma.request', {
      sid, dom: deviceDomain(m.state, sid), iova: piece.iova, len: piece.length, write, hpa: -1, fault: result.reason,
      effects: encoded, data: data !== undefined ? data.slice() : new Uint8Array(0),
    });
    return { ok: false, effects: encoded };
  }
  return { ok: true, hpa: result.hpa, dom: result.did - 1, effects: encoded };
}

function translatedPiece(m: Machine, sid: number, piece: DmaPiece, data: Uint8Array | undefined): Uint8Array | undefined {
  const t = translatePiece(m, sid, piece, data);
  if (!t.ok) return undefined;
  const fields = { sid, dom: t.dom, iova: piece.iova, len: piece.length, write: data !== undefined, hpa: t.hpa, fault: 0, effects: t.effects };
  const mfn = Math.floor(t.hpa / PAGE_SIZE);
  const offset = t.hpa % PAGE_SIZE;
  if (!inMemory(m.state, t.hpa, piece.length)) {
    m.emit('dma.request', { ...fields, data: new Uint8Array(0) });
    return undefined;
  }
  if (data === undefined) {
    const bytes = taggedRead(m, t.dom, t.hpa, piece.length);
    m.emit('dma.request', { ...fields, data: bytes.slice() });
    if (m.state.profile === 'secure' && m.state.memory.has(mfn)) {
      const span = lineSpan(offset, piece.length);
      m.emit('mem.decrypt', { dom: t.dom, mfn, offset: span.start, len: span.end - span.start, keyDom: t.dom });
    }
    return bytes;
  }
  m.emit('dma.request', { ...fields, data: data.slice() });
  // The iova is the guest-physical address (the tables mirror the p2m); SMM encrypts with the tagged guest's key.
  writeFrameWithKey(m, t.dom, t.dom, piece.iova, mfn, offset, data);
  return data;
}

function dmaPiece(m: Machine, sid: number, piece: DmaPiece, data: Uint8Array | undefined): Uint8Array | undefined {
  return m.state.io.xenVtd.enabled ? translatedPiece(m, sid, piece, data) : untranslatedPiece(m, sid, piece, data);
}

/**
 * A device reads `len` bytes at `iova`: one dma.request per 4 KiB page crossed, through the
 * unit when remapping is on. Undefined when a piece faulted (the rest is not attempted).
 */
export function dmaRead(m: Machine, sid: number, iova: number, len: number): Uint8Array | undefined {
  const out = new Uint8Array(len);
  for (const piece of dmaPieces(iova, len)) {
    const bytes = dmaPiece(m, sid, piece, undefined);
    if (bytes === undefined) return undefined;
    out.set(bytes, piece.at);
  }
  return out;
}

/**
 * A device writes `data` at `iova`. A write into 0xFEEx_xxxx is an interrupt request (its
 * first 4 bytes, little-endian, are the MSI data), not memory. False when a piece faulted.
 */
export function dmaWrite(m: Machine, sid: number, iova: number, data: Uint8Array): boolean {
  if (iova >= VTD_MSI_ADDRESS_BASE && iova < INTERRUPT_WINDOW_END) {
    const word = new Uint8Array(4);
    word.set(data.subarray(0, 4));
    interruptRequest(m, sid, iova, new DataView(word.buffer).getUint32(0, true));
    return true;
  }
  for (const piece of dmaPieces(iova, data.length)) {
    if (dmaPiece(m, sid, piece, data.subarray(piece.at, piece.at + piece.length)) === undefined) return false;
  }
  return true;
}

// ---- interrupts -------------------------------------------------------------------------

/** The lowest IRTE index Xen has not handed out. */
function freeIrteIndex(xen: XenVtd): number {
  for (let index = 0; index < IRT_ENTRIES; index++) if (!xen.irtes.has(index)) return index;
  assert(false, 'the interrupt remapping table is full');
}

/**
 * Xen sets up a remapped MSI for device `bdf` to `dom`'s vCPU `vcpu` (its APIC id): the
 * lowest free IRTE (P, fixed, physical, the vector, SVT = 1 with SQ = 0 so only `bdf` may use
 * it), an index-selective IEC invalidation and a wait. Returns the remappable-format MSI to
 * program in the device. Without interrupt remapping: the compatibility format, nothing
 * recorded.
 */
export function msiProgram(m: Machine, bdf: number, vector: number, dom: DomainId, vcpu: number): { address: number; data: number } {
  const xen = m.state.io.xenVtd;
  if (!xen.enabled) return { address: (VTD_MSI_ADDRESS_BASE | ((vcpu & 0xff) << 12)) >>> 0, data: vector & 0xff };
  const index = freeIrteIndex(xen);
  const op = new VtdOp(m);
  // The planted flaw sid-mask-wrong: SQ = 3 compares bus and device only, so every function
  // of the device (every VF of the NIC) passes the source-id check of this entry.
  const sq = hasFlaw(m.state, 'sid-mask-wrong') ? 3 : 0;
  op.write128(xen.irt + index * VTD_IRTE_SIZE, vtdIrte({ vector, destination: vcpu, svt: 1, sq, sid: bdf }));
  op.submit([vtdIecDescriptor({ global: false, index, im: 0 })]);
  op.wait(waitStatusAddress(xen));
  op.emit('irte.set', bdf, didOf(dom));
  return vtdRemappableMsi({ handle: index });
}

/**
 * The unit's interrupt path for a write of `data` at `address` by device `sid`. Remapped:
 * the IRTE names the vector and vCPU, Xen's record names the domain. Blocked: the fault
 * reason (0x20..0x26), recorded in the FRCD. Not remapped (vanilla, or compatibility format
 * let through): to whatever vCPU runs on the physical CPU the address names.
 */
export function interruptRequest(m: Machine, sid: number, address: number, data: number): void {
  const { result, effects } = vtdRemapInterrupt(m.state.io.vtd, vtdMemory(m.state), { sid, address: address >>> 0, data: data >>> 0 });
  const base = { sid, address: address >>> 0, data: data >>> 0, effects: encodeVtdEffects(effects) };
  if (result.kind === 'fault') {
    m.emit('msi', { ...base, index: result.index, fault: result.reason, dom: NO_DOMAIN, vcpu: -1, vector: -1 });
    return;
  }
  if (result.index >= 0) {
    const irte = m.state.io.xenVtd.irtes.get(result.index);
    m.emit('msi', { ...base, index: result.index, fault: 0, dom: irte?.dom ?? NO_DOMAIN, vcpu: irte?.vcpu ?? -1, vector: result.vector });
    return;
  }
  // Not remapped (no interrupt remapping, or a compatibility-format MSI let through): the
  // message names a physical CPU, and Xen injects the vector into whatever vCPU runs there.
  // Nothing ties it to the device's domain: the interrupt-injection attack.
  const pcpu = m.state.sched.pcpus[result.destination];
  const dom = pcpu?.dom ?? NO_DOMAIN;
  m.emit('msi', { ...base, index: -1, fault: 0, dom, vcpu: dom === NO_DOMAIN ? -1 : pcpu.vcpu, vector: result.vector });
}

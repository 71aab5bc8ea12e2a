/**
 * Xen's VT-d driver at work: bring-up, the fault handler, IOMMU domains whose second-level
 * tables mirror each domain's p2m, and devices put in and taken out of them in the spec's
 * order. Each step is one VtdOp (vtd-op.ts), recorded as a vtd.op event.
 */
import { assert } from '../../../events/errors.ts';
import { NO_DOMAIN, type DomainId } from '../../../events/schema.ts';
import {
  DMAR_FEADDR_REG, DMAR_FEDATA_REG, DMAR_FRCD_REG_OFFSET, DMAR_FRCD_REG_SIZE, DMAR_FSTS_REG, DMAR_IQA_REG, DMAR_IQT_REG,
  DMAR_IRTA_REG, DMAR_RTADDR_REG, VTD_CC_DEVICE, VTD_CC_GLOBAL, VTD_FRCD_F, VTD_FSTS_PFO, VTD_GCMD_CFI, VTD_GCMD_IRE,
  VTD_GCMD_QIE, VTD_GCMD_SIRTP, VTD_GCMD_SRTP, VTD_GCMD_TE, VTD_IOTLB_DOMAIN, VTD_IOTLB_GLOBAL, VTD_IOTLB_PAGE, VTD_IRTE_SIZE,
  VTD_MSI_ADDRESS_BASE, vtdContextCacheDescriptor, vtdContextEntry, vtdContextEntryAddress, vtdIecDescriptor, vtdIotlbDescriptor,
  vtdIqaValue, vtdIrtaValue, vtdMapPageWrites, vtdRootEntry, vtdRootEntryAddress, vtdUnmapPageWrites, vtdWalkSecondLevel,
  type PhysicalMemory,
} from '../../hardware/iommu/index.ts';
import { PAGE_SIZE } from '../config.ts';
import { hasFlaw } from '../flaws.ts';
import type { XenVtd } from '../io/io-state.ts';
import type { Host } from '../state.ts';
import { IRTA_S } from './interrupt-remapping.ts';
import { didOf, IQA_QS, VtdOp, waitStatusAddress } from './vtd-op.ts';

/** AW = 2: 48-bit guest address width, 4-level second-level tables. */
const SL_AW = 2;

/** Xen's vector for the unit's fault event (an MSI to the boot CPU). */
const FAULT_EVENT_VECTOR = 0xef;

/**
 * Xen's IOMMU bring-up (secure profile; the caller decides): root table (SRTP), queued
 * invalidation (QIE), the interrupt remapping table (SIRTP), a global flush of every cache,
 * then DMA remapping (TE) and interrupt remapping (IRE). CFI stays off, so
 * compatibility-format MSIs are blocked (0x25).
 */
export function vtdBoot(host: Host): void {
  if (host.state.io.xenVtd.enabled) return;
  const op = new VtdOp(host);
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
  if (hasFlaw(host.state, 'compat-msi-allowed')) op.command(VTD_GCMD_CFI);
  op.emit('boot', NO_DOMAIN, 0);
}

/**
 * Xen's fault handler (iommu_page_fault): reads every fault record with F set, clears it
 * (F is write-1-to-clear), then clears PFO, so later faults are recorded again (the unit has
 * few FRCDs and drops faults while they are full). One 'fault.clear' op; none when nothing
 * is pending.
 */
export function vtdServiceFaults(host: Host): void {
  const vtd = host.state.io.vtd;
  const pending = vtd.frcd.map((r, index) => (r.f ? index : -1)).filter((index) => index >= 0);
  if (pending.length === 0 && (vtd.regs.fsts & VTD_FSTS_PFO) === 0) return;
  const op = new VtdOp(host);
  for (const index of pending) op.reg(DMAR_FRCD_REG_OFFSET + index * DMAR_FRCD_REG_SIZE + 8, 8, VTD_FRCD_F);
  op.reg(DMAR_FSTS_REG, 4, BigInt(VTD_FSTS_PFO));
  op.emit('fault.clear', NO_DOMAIN, 0);
}

/** Builds `dom`'s second-level tables from its p2m, read/write, in one 'domain.create' op. */
function createIommuDomain(host: Host, dom: DomainId): void {
  const p2m = host.state.domains.get(dom)?.p2m;
  assert(p2m !== undefined, () => `IOMMU domain for domain ${dom}, which does not exist`);
  const op = new VtdOp(host);
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
export function vtdMapPage(host: Host, dom: DomainId, gfn: number, mfn: number): void {
  const xen = host.state.io.xenVtd;
  const domain = xen.domains.get(dom);
  if (domain === undefined) return;
  const op = new VtdOp(host);
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
export function vtdUnmapPage(host: Host, dom: DomainId, gfn: number): void {
  const xen = host.state.io.xenVtd;
  const domain = xen.domains.get(dom);
  if (domain === undefined) return;
  const op = new VtdOp(host);
  const iova = gfn * PAGE_SIZE;
  const writes = vtdUnmapPageWrites(op.memory, { slptptr: domain.slptptr, aw: SL_AW, iova });
  if (writes.length === 0) return;
  for (const w of writes) op.write64(w.hpa, w.value);
  // The planted flaw stale-iotlb: the device keeps its cached translation of the page.
  if (!hasFlaw(host.state, 'stale-iotlb')) invalidatePage(op, xen, domain.did, iova);
  op.emit('unmap', NO_DOMAIN, domain.did);
}

/**
 * Puts device `bdf` in `dom`'s IOMMU domain (creating it from the p2m if needed): the bus's
 * context table on first use, then the context entry (TT = 0, AW = 2, DID, SLPTPTR), then a
 * device-selective context-cache invalidation and a wait. A no-op with remapping off.
 */
export function vtdAssignDevice(host: Host, bdf: number, dom: DomainId): void {
  const xen = host.state.io.xenVtd;
  // Without remapping (vanilla) there is nothing to program: the device reaches all memory.
  if (!xen.enabled) return;
  const current = xen.devices.get(bdf);
  if (current === dom) return;
  if (current !== undefined) vtdDeassignDevice(host, bdf);
  if (!xen.domains.has(dom)) createIommuDomain(host, dom);
  const domain = xen.domains.get(dom)!;
  const op = new VtdOp(host);
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
function releaseIrtes(host: Host, bdf: number): void {
  const xen = host.state.io.xenVtd;
  const indexes = [...xen.irtes].filter(([, e]) => e.sid === bdf).map(([index]) => index).sort((a, b) => a - b);
  for (const index of indexes) {
    const op = new VtdOp(host);
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
export function vtdDeassignDevice(host: Host, bdf: number): void {
  const xen = host.state.io.xenVtd;
  const dom = xen.devices.get(bdf);
  if (dom === undefined) return;
  const did = didOf(dom);
  const contextTable = xen.contextTables.get(bdf >>> 8);
  assert(contextTable !== undefined, () => `device ${bdf} is assigned but its bus has no context table`);
  const clear = new VtdOp(host);
  clear.write128(vtdContextEntryAddress(contextTable, bdf & 0xff), { lo: 0n, hi: 0n });
  clear.emit('context.clear', bdf, did);
  // The planted flaw no-context-invalidation: the unit keeps the cached context entry.
  if (!hasFlaw(host.state, 'no-context-invalidation')) {
    const cc = new VtdOp(host);
    cc.submit([vtdContextCacheDescriptor({ granularity: VTD_CC_DEVICE, did, sid: bdf, fm: 0 })]);
    cc.emit('cc.invalidate', bdf, did);
  }
  const iotlb = new VtdOp(host);
  iotlb.submit([vtdIotlbDescriptor({ granularity: VTD_IOTLB_DOMAIN, did, address: 0, am: 0, drain: true })]);
  iotlb.emit('iotlb.invalidate', bdf, did);
  const wait = new VtdOp(host);
  wait.wait(waitStatusAddress(xen));
  wait.emit('wait', bdf, did);
  releaseIrtes(host, bdf);
}

/**
 * A dying domain's IOMMU state goes: its devices (as vtdDeassignDevice), then an IOTLB DSI
 * and a wait, then its table frames back to the pool ('domain.free').
 */
export function vtdDestroyDomain(host: Host, dom: DomainId): void {
  const xen = host.state.io.xenVtd;
  const devices = [...xen.devices].filter(([, d]) => d === dom).map(([bdf]) => bdf).sort((a, b) => a - b);
  for (const bdf of devices) vtdDeassignDevice(host, bdf);
  const domain = xen.domains.get(dom);
  if (domain === undefined) return;
  const flush = new VtdOp(host);
  flush.submit([vtdIotlbDescriptor({ granularity: VTD_IOTLB_DOMAIN, did: domain.did, address: 0, am: 0, drain: true })]);
  flush.wait(waitStatusAddress(xen));
  flush.emit('iotlb.invalidate', NO_DOMAIN, domain.did);
  const free = new VtdOp(host);
  free.free.push(...domain.frames);
  free.emit('domain.free', NO_DOMAIN, domain.did);
}


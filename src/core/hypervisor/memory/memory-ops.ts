/**
 * Xen's memory operations with the paper's SMM hooks (xen/common/memory.c):
 * - populate_physmap: frames assigned, the page permission table updated (hook 1, creation);
 * - decrease_reservation: frames unmapped, cached translations flushed, then scrubbed (SMM;
 *   stock Xen does not scrub what a live guest gives back) and freed (hook 3);
 * - add_to_physmap of a foreign frame (XENMAPSPACE_gmfn_foreign), for the privileged domain.
 * Each mapping is a p2m.update, mirrored in the EPT of an HVM guest under EPT and in the
 * IOMMU domain of a domain with a device; their fold is here too.
 */
import { assert } from '../../../events/errors.ts';
import { NO_DOMAIN, NO_FRAME, RIGHT_READ, RIGHT_WRITE, type DomainId, type EventOf, type Gfn, type Mfn } from '../../../events/schema.ts';
import { EPT_RAM_BITS, eptSet } from '../../hardware/paging/ept.ts';
import { hasFlaw } from '../flaws.ts';
import { domainOf, freeFrameCount, type Host, type HostState } from '../state.ts';
import { vtdMapPage, vtdUnmapPage } from '../vtd-driver/iommu-domains.ts';

export const EINVAL = -22;

export const ENOMEM = -12;

export const EEXIST = -17;

export const ESRCH = -3;

export const ENOSPC = -28;

export const EPERM = -1;

/** Most extents one populate_physmap call may ask for. */
export const EXTENTS_MAX = 1024;

const GFN_LIMIT = 1 << 20;

function nextFreeFrame(state: HostState): Mfn {
  const top = state.freeStack.length - 1;
  return top >= 0 ? state.freeStack[top] : state.nextFresh;
}

/** Why populate_physmap must fail, as an errno, or 0. */
export function populateCheck(state: HostState, dom: DomainId, gfn: Gfn, count: number): number {
  const domain = state.domains.get(dom);
  if (domain === undefined || domain.status !== 'running') return ESRCH;
  if (!Number.isInteger(count) || count < 1 || count > EXTENTS_MAX) return EINVAL;
  if (!Number.isInteger(gfn) || gfn < 0 || gfn + count > GFN_LIMIT) return EINVAL;
  if (domain.p2m.size + count > domain.maxPages || freeFrameCount(state) < count) return ENOMEM;
  for (let g = gfn; g < gfn + count; g++) if (domain.p2m.has(g)) return EEXIST;
  return 0;
}

/** Allocates `count` frames at gfn.. and maps them; the caller has run populateCheck. */
export function populatePhysmap(host: Host, dom: DomainId, gfn: Gfn, count: number): void {
  const ept = usesEpt(host.state, dom);
  for (let g = gfn; g < gfn + count; g++) {
    const mfn = nextFreeFrame(host.state);
    host.emit('smm.ppt.update', { mfn, owner: dom, rights: RIGHT_READ | RIGHT_WRITE, prevOwner: NO_DOMAIN });
    host.emit('p2m.update', { dom, gfn: g, mfn, prevMfn: NO_FRAME });
    // For an HVM guest under EPT the p2m is the EPT: the same mapping, with permissions.
    if (ept) host.emit('ept.update', { dom, gfn: g, mfn, bits: EPT_RAM_BITS });
    // A device assigned to the domain reaches the same frame at the same address (VT-d).
    if (host.state.io.xenVtd.domains.has(dom)) vtdMapPage(host, dom, g, mfn);
  }
}

export function usesEpt(state: HostState, dom: DomainId): boolean {
  const domain = state.domains.get(dom);
  return domain?.kind === 'x86' && domain.paging === 'ept';
}

/** Removes gfns from the p2m (and the EPT); returns the frames they mapped. */
export function unmapFrames(host: Host, dom: DomainId, gfns: readonly Gfn[]): Mfn[] {
  const ept = usesEpt(host.state, dom);
  return gfns.map((gfn) => {
    const mfn = host.state.domains.get(dom)?.p2m.get(gfn);
    assert(mfn !== undefined, () => `unmap of gfn ${gfn} of domain ${dom}, which is not mapped`);
    host.emit('p2m.update', { dom, gfn, mfn: NO_FRAME, prevMfn: mfn });
    if (ept) host.emit('ept.update', { dom, gfn, mfn: NO_FRAME, bits: 0 });
    // The device's mapping goes too, IOTLB invalidated, before the frame can be freed.
    if (host.state.io.xenVtd.domains.has(dom)) vtdUnmapPage(host, dom, gfn);
    return mfn;
  });
}

/** Drops every cached translation of the domain: INVEPT, or the shadows and the TLB. */
export function flushTranslations(host: Host, dom: DomainId): void {
  const domain = host.state.domains.get(dom);
  if (domain?.kind !== 'x86') return;
  if (domain.paging === 'shadow') host.emit('shadow.sync', { dom, vcpu: -1, op: 'flush', page: -1, mfn: NO_FRAME, flags: 0 });
  host.emit('tlb.flush', { dom, vcpu: -1, scope: 'domain', page: -1 });
}

/** Returns frames to the heap, scrubbed first when `scrub`. */
export function freeFrames(host: Host, dom: DomainId, mfns: readonly Mfn[], scrub: boolean): void {
  for (const mfn of mfns) {
    if (scrub && host.state.memory.has(mfn)) host.emit('smm.scrub', { mfn, prevOwner: dom });
    host.emit('smm.ppt.update', { mfn, owner: NO_DOMAIN, rights: 0, prevOwner: dom });
  }
}

/**
 * Why XENMEM_add_to_physmap (XENMAPSPACE_gmfn_foreign) must fail, as an errno, or 0: only
 * the privileged domain may map another domain's frames, and Xen takes a reference on the
 * page as that domain's (get_page), so a frame is never mapped for a domain that does not
 * own it. The planted flaw skip-ownership-check lets any caller through.
 */
export function addToPhysmapCheck(state: HostState, dom: DomainId, domid: DomainId, gfn: Gfn, gpfn: Gfn): number {
  const caller = state.domains.get(dom);
  const foreign = state.domains.get(domid);
  if (caller === undefined || caller.status !== 'running') return ESRCH;
  if (dom !== 0 && !hasFlaw(state, 'skip-ownership-check')) return EPERM;
  if (foreign === undefined || foreign.status !== 'running' || domid === dom) return ESRCH;
  if (!Number.isInteger(gfn) || !foreign.p2m.has(gfn)) return EINVAL;
  if (!Number.isInteger(gpfn) || gpfn < 0 || gpfn >= GFN_LIMIT) return EINVAL;
  if (caller.p2m.has(gpfn)) return EEXIST;
  return 0;
}

/** Maps the foreign frame at the caller's gpfn; the caller ran addToPhysmapCheck. */
export function addToPhysmap(host: Host, dom: DomainId, domid: DomainId, gfn: Gfn, gpfn: Gfn): void {
  const mfn = host.state.domains.get(domid)!.p2m.get(gfn)!;
  host.emit('p2m.update', { dom, gfn: gpfn, mfn, prevMfn: NO_FRAME });
  if (usesEpt(host.state, dom)) host.emit('ept.update', { dom, gfn: gpfn, mfn, bits: EPT_RAM_BITS });
}

/** How many of `gfns` decrease_reservation releases: it stops at the first unmapped one. */
export function decreaseCount(state: HostState, dom: DomainId, gfns: readonly Gfn[]): number {
  const p2m = state.domains.get(dom)?.p2m;
  if (p2m === undefined) return ESRCH;
  const seen = new Set<Gfn>();
  let done = 0;
  for (const gfn of gfns) {
    if (!p2m.has(gfn) || seen.has(gfn)) break;
    seen.add(gfn);
    done++;
  }
  return done;
}

/**
 * Gives frames back. Translations cached from the old mappings go before the frames can be
 * reused: unmap, flush (INVEPT, or drop the shadows), then scrub and free (XSA-346's
 * lesson). Stock Xen does not scrub what a live guest gives back; SMM does.
 */
export function decreaseReservation(host: Host, dom: DomainId, gfns: readonly Gfn[]): void {
  const mfns = unmapFrames(host, dom, gfns);
  if (!hasFlaw(host.state, 'remap-without-revalidation')) flushTranslations(host, dom);
  freeFrames(host, dom, mfns, host.state.profile === 'secure' && !hasFlaw(host.state, 'no-scrub'));
}

export function applyP2m(state: HostState, e: EventOf<'p2m.update'>): void {
  const domain = domainOf(state, e.dom);
  if (e.prevMfn !== NO_FRAME) {
    const back = state.m2p.get(e.prevMfn);
    if (back !== undefined && back.dom === e.dom && back.gfn === e.gfn) state.m2p.delete(e.prevMfn);
  }
  if (e.mfn === NO_FRAME) {
    domain.p2m.delete(e.gfn);
  } else {
    domain.p2m.set(e.gfn, e.mfn);
    state.m2p.set(e.mfn, { dom: e.dom, gfn: e.gfn });
  }
}

/** ept.update: a leaf of the domain's EPT written (a negative mfn clears it). */
export function applyEptUpdate(state: HostState, e: EventOf<'ept.update'>): void {
  eptSet(domainOf(state, e.dom).ept, e.gfn, e.mfn < 0 ? undefined : { mfn: e.mfn, bits: e.bits });
}


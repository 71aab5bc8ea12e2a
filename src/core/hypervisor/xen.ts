/**
 * The hypervisor's memory operations, with the paper's SMM hooks:
 * - populatePhysmap: frames assigned, page permission table updated (hook 1, creation);
 * - decreaseReservation and destroyDomain: frames scrubbed, entries removed, frames returned
 *   (hook 3, pause/destruction). Hook 2, contextSwitch, is in the scheduler.
 *
 * In the vanilla profile these follow stock Xen: no keys, and pages a live guest gives back
 * are not scrubbed (only a dying domain's are).
 */
import { assert } from '../../events/errors.ts';
import { NO_DOMAIN, NO_FRAME, RIGHT_READ, RIGHT_WRITE, type DomainId, type Gfn, type Mfn } from '../../events/schema.ts';
import { hasFlaw } from './flaws.ts';
import type { Machine } from '../machine/machine.ts';
import { writeFrameWithKey } from './memory/guest-memory.ts';
import { EPT_RAM_BITS, EPT_WRITE } from '../hardware/paging/ept.ts';
import { NIC_GUEST_BAR0, NIC_GUEST_BAR3, NIC_VF_BAR_BYTES } from '../hardware/nic/registers.ts';
import { nicAttach, nicDetach } from './io/nic.ts';
import { vtdDestroyDomain, vtdMapPage, vtdUnmapPage } from './vtd-driver/vtd-driver.ts';
import { PAGE_SIZE, type GuestImage } from '../machine/scenario.ts';
import { deriveDomainKey } from './memory/smm.ts';
import { freeFrameCount, type MachineState } from '../machine/state.ts';

export const EINVAL = -22;
export const ENOMEM = -12;
export const EEXIST = -17;
export const ESRCH = -3;
export const ENOSPC = -28;
export const EPERM = -1;
/** Most extents one populate_physmap call may ask for. */
const EXTENTS_MAX = 1024;
const GFN_LIMIT = 1 << 20;

/** The key SMM uses for `dom`, assigning it on first use (for example after a profile switch). */
export function ensureKey(m: Machine, dom: DomainId): Uint8Array {
  assert(dom !== NO_DOMAIN, 'SMM asked for the key of no domain: a vCPU ran without a context switch');
  let key = m.state.keyTable.get(dom);
  if (key === undefined) {
    key = deriveDomainKey(m.state.config.seed, dom);
    m.emit('smm.key.assign', { dom, key });
  }
  return key;
}

function nextFreeFrame(state: MachineState): Mfn {
  const top = state.freeStack.length - 1;
  return top >= 0 ? state.freeStack[top] : state.nextFresh;
}

/** Why populate_physmap must fail, as an errno, or 0. */
export function populateCheck(state: MachineState, dom: DomainId, gfn: Gfn, count: number): number {
  const domain = state.domains.get(dom);
  if (domain === undefined || domain.status !== 'running') return ESRCH;
  if (!Number.isInteger(count) || count < 1 || count > EXTENTS_MAX) return EINVAL;
  if (!Number.isInteger(gfn) || gfn < 0 || gfn + count > GFN_LIMIT) return EINVAL;
  if (domain.p2m.size + count > domain.maxPages || freeFrameCount(state) < count) return ENOMEM;
  for (let g = gfn; g < gfn + count; g++) if (domain.p2m.has(g)) return EEXIST;
  return 0;
}

/** Allocates `count` frames at gfn.. and maps them; the caller has run populateCheck. */
export function populatePhysmap(m: Machine, dom: DomainId, gfn: Gfn, count: number): void {
  const ept = usesEpt(m.state, dom);
  for (let g = gfn; g < gfn + count; g++) {
    const mfn = nextFreeFrame(m.state);
    m.emit('smm.ppt.update', { mfn, owner: dom, rights: RIGHT_READ | RIGHT_WRITE, prevOwner: NO_DOMAIN });
    m.emit('p2m.update', { dom, gfn: g, mfn, prevMfn: NO_FRAME });
    // For an HVM guest under EPT the p2m is the EPT: the same mapping, with permissions.
    if (ept) m.emit('ept.update', { dom, gfn: g, mfn, bits: EPT_RAM_BITS });
    // A device assigned to the domain reaches the same frame at the same address (VT-d).
    if (m.state.io.xenVtd.domains.has(dom)) vtdMapPage(m, dom, g, mfn);
  }
}

function usesEpt(state: MachineState, dom: DomainId): boolean {
  const domain = state.domains.get(dom);
  return domain?.kind === 'x86' && domain.paging === 'ept';
}

/** Removes gfns from the p2m (and the EPT); returns the frames they mapped. */
function unmapFrames(m: Machine, dom: DomainId, gfns: readonly Gfn[]): Mfn[] {
  const ept = usesEpt(m.state, dom);
  return gfns.map((gfn) => {
    const mfn = m.state.domains.get(dom)?.p2m.get(gfn);
    assert(mfn !== undefined, () => `unmap of gfn ${gfn} of domain ${dom}, which is not mapped`);
    m.emit('p2m.update', { dom, gfn, mfn: NO_FRAME, prevMfn: mfn });
    if (ept) m.emit('ept.update', { dom, gfn, mfn: NO_FRAME, bits: 0 });
    // The device's mapping goes too, IOTLB invalidated, before the frame can be freed.
    if (m.state.io.xenVtd.domains.has(dom)) vtdUnmapPage(m, dom, gfn);
    return mfn;
  });
}

/** Drops every cached translation of the domain: INVEPT, or the shadows and the TLB. */
function flushTranslations(m: Machine, dom: DomainId): void {
  const domain = m.state.domains.get(dom);
  if (domain?.kind !== 'x86') return;
  if (domain.paging === 'shadow') m.emit('shadow.sync', { dom, vcpu: -1, op: 'flush', page: -1, mfn: NO_FRAME, flags: 0 });
  m.emit('tlb.flush', { dom, vcpu: -1, scope: 'domain', page: -1 });
}

/** Returns frames to the heap, scrubbed first when `scrub`. */
function freeFrames(m: Machine, dom: DomainId, mfns: readonly Mfn[], scrub: boolean): void {
  for (const mfn of mfns) {
    if (scrub && m.state.memory.has(mfn)) m.emit('smm.scrub', { mfn, prevOwner: dom });
    m.emit('smm.ppt.update', { mfn, owner: NO_DOMAIN, rights: 0, prevOwner: dom });
  }
}

/**
 * Why XENMEM_add_to_physmap (XENMAPSPACE_gmfn_foreign) must fail, as an errno, or 0: only
 * the privileged domain may map another domain's frames, and Xen takes a reference on the
 * page as that domain's (get_page), so a frame is never mapped for a domain that does not
 * own it. The planted flaw skip-ownership-check lets any caller through.
 */
export function addToPhysmapCheck(state: MachineState, dom: DomainId, domid: DomainId, gfn: Gfn, gpfn: Gfn): number {
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
export function addToPhysmap(m: Machine, dom: DomainId, domid: DomainId, gfn: Gfn, gpfn: Gfn): void {
  const mfn = m.state.domains.get(domid)!.p2m.get(gfn)!;
  m.emit('p2m.update', { dom, gfn: gpfn, mfn, prevMfn: NO_FRAME });
  if (usesEpt(m.state, dom)) m.emit('ept.update', { dom, gfn: gpfn, mfn, bits: EPT_RAM_BITS });
}

/** How many of `gfns` decrease_reservation releases: it stops at the first unmapped one. */
export function decreaseCount(state: MachineState, dom: DomainId, gfns: readonly Gfn[]): number {
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
export function decreaseReservation(m: Machine, dom: DomainId, gfns: readonly Gfn[]): void {
  const mfns = unmapFrames(m, dom, gfns);
  if (!hasFlaw(m.state, 'remap-without-revalidation')) flushTranslations(m, dom);
  freeFrames(m, dom, mfns, m.state.profile === 'secure' && !hasFlaw(m.state, 'no-scrub'));
}

/** Why a domain of `memoryKiB` cannot be built now, as an errno, or 0. */
export function createCheck(state: MachineState, memoryKiB: number): number {
  return freeFrameCount(state) < memoryKiB / 4 ? ENOMEM : 0;
}

/** Creates a domain: its key (secure), then its memory (hook 1). The caller ran createCheck. */
export function createDomain(m: Machine, name: string, memoryKiB: number, vcpus: number): DomainId {
  const dom = m.state.nextDomainId;
  m.emit('domain.create', { dom, name, memoryKiB, vcpus });
  if (m.state.profile === 'secure' && dom !== 0) ensureKey(m, dom);
  const pages = memoryKiB / 4;
  for (let gfn = 0; gfn < pages; gfn += EXTENTS_MAX) populatePhysmap(m, dom, gfn, Math.min(EXTENTS_MAX, pages - gfn));
  const spec = m.state.config.domains.find((d) => d.name === name);
  if (spec?.image) loadImage(m, dom, spec.image);
  if (spec?.nic) attachNic(m, dom);
  return dom;
}

/** The guest-physical pages of a VF's BAR window (registers, then the MSI-X table). */
const MMIO_WINDOW_GFNS = [NIC_GUEST_BAR0, NIC_GUEST_BAR3].flatMap((base) =>
  Array.from({ length: NIC_VF_BAR_BYTES / PAGE_SIZE }, (_, i) => base / PAGE_SIZE + i));

/**
 * Gives the domain a VF (or, in vanilla, dom0's backend behind the same registers). Under
 * EPT the BAR window is mapped with misconfigured entries (write without read), so every
 * access exits and is emulated; the entries translate to no frame of anyone's.
 */
export function attachNic(m: Machine, dom: DomainId): void {
  nicAttach(m, dom);
  if (!usesEpt(m.state, dom) || !m.state.io.vfs.some((v) => v.dom === dom)) return;
  for (const gfn of MMIO_WINDOW_GFNS) m.emit('ept.update', { dom, gfn, mfn: 0, bits: EPT_WRITE });
}

/** Takes the domain's VF away: the device is torn down in VT-d's order, then the window unmapped. */
export function detachNic(m: Machine, dom: DomainId): void {
  if (!m.state.io.vfs.some((v) => v.dom === dom)) return;
  nicDetach(m, dom);
  if (!usesEpt(m.state, dom)) return;
  for (const gfn of MMIO_WINDOW_GFNS) m.emit('ept.update', { dom, gfn, mfn: NO_FRAME, bits: 0 });
}

/** The domain builder copies an x86 guest's image into its memory, under the guest's key. */
function loadImage(m: Machine, dom: DomainId, image: GuestImage): void {
  const p2m = m.state.domains.get(dom)!.p2m;
  for (let at = 0; at < image.bytes.length;) {
    const gpa = image.load + at;
    const offset = gpa % PAGE_SIZE;
    const length = Math.min(PAGE_SIZE - offset, image.bytes.length - at);
    const mfn = p2m.get(Math.floor(gpa / PAGE_SIZE));
    // The builder loads into the domain's own pages: a page the guest gave back stays empty.
    if (mfn !== undefined) writeFrameWithKey(m, dom, dom, gpa, mfn, offset, image.bytes.subarray(at, at + length));
    at += length;
  }
}

/**
 * A new image for a running x86 domain (the input domain.NAME.x86): the vCPU was reset by the
 * input, and the builder copies the image in as at creation. Nothing happens to a dead domain.
 */
export function reloadImage(m: Machine, name: string, bytes: Uint8Array): void {
  const domain = [...m.state.domains.values()].find((d) => d.name === name && d.status === 'running');
  const spec = m.state.config.domains.find((d) => d.name === name)?.image;
  if (domain === undefined || domain.kind !== 'x86' || spec == null) return;
  loadImage(m, domain.id, { ...spec, bytes });
}

/** Tears a domain down: every frame scrubbed (stock Xen scrubs dying domains too) and freed. */
export function destroyDomain(m: Machine, dom: DomainId, reason: string): void {
  const domain = m.state.domains.get(dom);
  assert(domain !== undefined && domain.status === 'running', () => `destroy of domain ${dom}, which is not running`);
  m.emit('domain.destroy', { dom, reason });
  // Devices first: no DMA may reach a frame once it is freed (clear context, invalidate, free).
  detachNic(m, dom);
  if (m.state.io.xenVtd.domains.has(dom)) vtdDestroyDomain(m, dom);
  const mfns = unmapFrames(m, dom, [...domain.p2m.keys()].sort((a, b) => a - b));
  flushTranslations(m, dom);
  freeFrames(m, dom, mfns, true);
  if (m.state.keyTable.has(dom)) m.emit('smm.key.revoke', { dom });
}

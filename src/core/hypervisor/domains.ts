/**
 * The domain builder and destroyer: a domain's key (secure), memory (populate_physmap),
 * image and VF at creation; its devices, mappings, frames and key at destruction (stock Xen
 * scrubs a dying domain's frames too). Hook 1 and hook 3 of the paper run through here.
 */
import { assert } from '../../events/errors.ts';
import { NO_FRAME, type DomainId, type EventOf } from '../../events/schema.ts';
import { NIC_GUEST_BAR0, NIC_GUEST_BAR3, NIC_VF_BAR_BYTES } from '../hardware/nic/registers.ts';
import { EPT_WRITE } from '../hardware/paging/ept.ts';
import { PAGE_SIZE, type GuestImage } from './config.ts';
import { nicAttach, nicDetach } from './io/nic-pf-driver.ts';
import { writeFrameWithKey } from './memory/guest-memory.ts';
import { ENOMEM, EXTENTS_MAX, flushTranslations, freeFrames, populatePhysmap, unmapFrames, usesEpt } from './memory/memory-ops.ts';
import { ensureKey } from './memory/smm.ts';
import { domainOf, freeFrameCount, type Host, type HostState, type Vcpu } from './state.ts';
import { newX86Vcpu } from './vmx/vcpu.ts';
import { vtdDestroyDomain } from './vtd-driver/iommu-domains.ts';

/** Why a domain of `memoryKiB` cannot be built now, as an errno, or 0. */
export function createCheck(state: HostState, memoryKiB: number): number {
  return freeFrameCount(state) < memoryKiB / 4 ? ENOMEM : 0;
}

/** Creates a domain: its key (secure), then its memory (hook 1). The caller ran createCheck. */
export function createDomain(host: Host, name: string, memoryKiB: number, vcpus: number): DomainId {
  const dom = host.state.nextDomainId;
  host.emit('domain.create', { dom, name, memoryKiB, vcpus });
  if (host.state.profile === 'secure' && dom !== 0) ensureKey(host, dom);
  const pages = memoryKiB / 4;
  for (let gfn = 0; gfn < pages; gfn += EXTENTS_MAX) populatePhysmap(host, dom, gfn, Math.min(EXTENTS_MAX, pages - gfn));
  const spec = host.state.config.domains.find((d) => d.name === name);
  if (spec?.image) loadImage(host, dom, spec.image);
  if (spec?.nic) attachNic(host, dom);
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
export function attachNic(host: Host, dom: DomainId): void {
  nicAttach(host, dom);
  if (!usesEpt(host.state, dom) || !host.state.io.vfs.some((v) => v.dom === dom)) return;
  for (const gfn of MMIO_WINDOW_GFNS) host.emit('ept.update', { dom, gfn, mfn: 0, bits: EPT_WRITE });
}

/** Takes the domain's VF away: the device is torn down in VT-d's order, then the window unmapped. */
export function detachNic(host: Host, dom: DomainId): void {
  if (!host.state.io.vfs.some((v) => v.dom === dom)) return;
  nicDetach(host, dom);
  if (!usesEpt(host.state, dom)) return;
  for (const gfn of MMIO_WINDOW_GFNS) host.emit('ept.update', { dom, gfn, mfn: NO_FRAME, bits: 0 });
}

/** The domain builder copies an x86 guest's image into its memory, under the guest's key. */
function loadImage(host: Host, dom: DomainId, image: GuestImage): void {
  const p2m = host.state.domains.get(dom)!.p2m;
  for (let at = 0; at < image.bytes.length;) {
    const gpa = image.load + at;
    const offset = gpa % PAGE_SIZE;
    const length = Math.min(PAGE_SIZE - offset, image.bytes.length - at);
    const mfn = p2m.get(Math.floor(gpa / PAGE_SIZE));
    // The builder loads into the domain's own pages: a page the guest gave back stays empty.
    if (mfn !== undefined) writeFrameWithKey(host, dom, dom, gpa, mfn, offset, image.bytes.subarray(at, at + length));
    at += length;
  }
}

/**
 * A new image for a running x86 domain (the input domain.NAME.x86): the vCPU was reset by the
 * input, and the builder copies the image in as at creation. Nothing happens to a dead domain.
 */
export function reloadImage(host: Host, name: string, bytes: Uint8Array): void {
  const domain = [...host.state.domains.values()].find((d) => d.name === name && d.status === 'running');
  const spec = host.state.config.domains.find((d) => d.name === name)?.image;
  if (domain === undefined || domain.kind !== 'x86' || spec == null) return;
  loadImage(host, domain.id, { ...spec, bytes });
}

/** Tears a domain down: every frame scrubbed (stock Xen scrubs dying domains too) and freed. */
export function destroyDomain(host: Host, dom: DomainId, reason: string): void {
  const domain = host.state.domains.get(dom);
  assert(domain !== undefined && domain.status === 'running', () => `destroy of domain ${dom}, which is not running`);
  host.emit('domain.destroy', { dom, reason });
  // Devices first: no DMA may reach a frame once it is freed (clear context, invalidate, free).
  detachNic(host, dom);
  if (host.state.io.xenVtd.domains.has(dom)) vtdDestroyDomain(host, dom);
  const mfns = unmapFrames(host, dom, [...domain.p2m.keys()].sort((a, b) => a - b));
  flushTranslations(host, dom);
  freeFrames(host, dom, mfns, true);
  if (host.state.keyTable.has(dom)) host.emit('smm.key.revoke', { dom });
}

export function applyCreate(state: HostState, e: EventOf<'domain.create'>): void {
  const spec = state.config.domains.find((d) => d.name === e.name);
  state.domains.set(e.dom, {
    id: e.dom,
    name: e.name,
    status: 'running',
    memoryKiB: e.memoryKiB,
    maxPages: (spec?.maxMemoryKiB ?? e.memoryKiB) / 4,
    p2m: new Map(),
    vcpus: Array.from({ length: e.vcpus }, (_, v): Vcpu => ({ pc: 0, loops: [], x86: spec?.image ? newX86Vcpu(spec, e.dom, v) : null })),
    programs: spec?.programs ?? [],
    kind: spec?.image ? 'x86' : 'scripted',
    paging: spec?.paging ?? 'ept',
    ept: new Map(),
  });
  state.nextDomainId = e.dom + 1;
}

export function applyDestroy(state: HostState, e: EventOf<'domain.destroy'>): void {
  domainOf(state, e.dom).status = 'dead';
}


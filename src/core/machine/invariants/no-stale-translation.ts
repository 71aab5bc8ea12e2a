import { NO_DOMAIN, NO_FRAME } from '../../../events/schema.ts';
import { vtdStaleEntries } from '../../hardware/iommu/index.ts';
import { pciBdfFormat } from '../../hardware/pci/index.ts';
import { PAGE_SIZE } from '../../hypervisor/config.ts';
import { hostPhysicalMemory } from '../../hypervisor/memory/host-frames.ts';
import { domainLabel } from '../../hypervisor/state.ts';
import type { MachineState } from '../state.ts';
import type { InvariantChecker } from './types.ts';

/**
 * No cached translation outlives its mapping: a DMA translated by VT-d goes where the
 * domain's p2m maps that address now, and a frame given back leaves no IOTLB entry behind.
 */
export const noStaleTranslation: InvariantChecker = {
  name: 'no-stale-translation',
  rule: "No cached translation outlives its mapping: a DMA goes where the domain's p2m maps its address now, and a frame given back leaves no IOTLB entry behind.",
  kinds: ['dma.request', 'smm.ppt.update', 'vtd.op'],
  check(state, event) {
    // When Xen waits for its invalidations, the unit's caches must agree with the tables.
    if (event.kind === 'vtd.op') {
      if (event.op !== 'wait' && event.op !== 'domain.free') return undefined;
      const [stale] = vtdStaleEntries(state.io.vtd, hostPhysicalMemory(state));
      if (stale === undefined) return undefined;
      return { dom: stale.did > 0 ? stale.did - 1 : NO_DOMAIN, mfn: NO_FRAME, detail: `the ${stale.cache} entry ${stale.cache === 'iotlb' ? '' : `for source ${pciBdfFormat(stale.sid)} `}outlives its mapping: ${stale.detail}` };
    }
    if (event.kind === 'smm.ppt.update') {
      if (event.owner !== NO_DOMAIN) return undefined;
      const cpu = cachedByCpu(state, event.mfn);
      if (cpu !== undefined) return { dom: event.prevOwner, mfn: event.mfn, detail: `frame ${event.mfn} freed while ${cpu}` };
      for (const entry of state.io.vtd.iotlb.values()) {
        if (Math.floor(entry.hpa / PAGE_SIZE) === event.mfn && entry.level === 1) {
          return { dom: event.prevOwner, mfn: event.mfn, detail: `frame ${event.mfn} freed while the IOTLB still maps iova 0x${(entry.gfn * PAGE_SIZE).toString(16)} of DID ${entry.did} to it` };
        }
      }
      return undefined;
    }
    if (event.kind !== 'dma.request' || event.fault !== 0 || event.hpa < 0 || !state.io.xenVtd.enabled || event.dom === NO_DOMAIN) return undefined;
    const mapped = state.domains.get(event.dom)?.p2m.get(Math.floor(event.iova / PAGE_SIZE));
    const mfn = Math.floor(event.hpa / PAGE_SIZE);
    if (mapped === mfn) return undefined;
    const now = mapped === undefined ? 'nothing' : `frame ${mapped}`;
    return { dom: event.dom, mfn, detail: `device ${pciBdfFormat(event.sid)} of ${domainLabel(state, event.dom)} reached frame ${mfn} at iova 0x${event.iova.toString(16)}, which maps ${now} now: a stale translation` };
  },
};

/** A vCPU's TLB or shadow page table entry that still reaches `mfn`, described, if any. */
function cachedByCpu(state: MachineState, mfn: number): string | undefined {
  for (const domain of state.domains.values()) {
    for (const [v, vcpu] of domain.vcpus.entries()) {
      if (!vcpu.x86) continue;
      const kept = [...vcpu.x86.shadowCache].map(([cr3, shadow]) => [`shadow page table kept for CR3 0x${(cr3 * 4096).toString(16)}`, shadow] as const);
      for (const [what, table] of [['TLB', vcpu.x86.tlb] as const, ['shadow page table', vcpu.x86.shadow] as const, ...kept]) {
        for (const [page, entry] of table) {
          if (entry.mfn === mfn) return `${domainLabel(state, domain.id)}.v${v}'s ${what} still maps linear page 0x${page.toString(16)} to it`;
        }
      }
    }
  }
  return undefined;
}

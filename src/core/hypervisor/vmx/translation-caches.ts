/**
 * A vCPU's translation caches: the hardware TLB (VPID-tagged, filled by page walks) and,
 * under shadow paging, the shadow page table Xen keeps. What each of their events does.
 */
import type { EventOf } from '../../../events/schema.ts';
import { domainOf, x86Of, type HostState, type X86Vcpu } from '../state.ts';

/** The vCPUs an event names: one, or (-1) all of the domain's. */
export function x86Vcpus(state: HostState, dom: number, vcpu: number): X86Vcpu[] {
  if (vcpu >= 0) return [x86Of(state, dom, vcpu)];
  return domainOf(state, dom).vcpus.flatMap((v) => (v.x86 ? [v.x86] : []));
}

/** A fill goes to the end (the newest); the evicted entry, if any, was the oldest. */
export function applyTlbFill(state: HostState, e: EventOf<'tlb.fill'>): void {
  const tlb = x86Of(state, e.dom, e.vcpu).tlb;
  if (e.evicted >= 0) tlb.delete(e.evicted);
  tlb.delete(e.page);
  tlb.set(e.page, { mfn: e.mfn, flags: e.flags });
}

export function applyTlbFlush(state: HostState, e: EventOf<'tlb.flush'>): void {
  for (const x86 of x86Vcpus(state, e.dom, e.vcpu)) {
    if (e.scope === 'page') x86.tlb.delete(e.page);
    else x86.tlb.clear();
  }
}

export function applyShadowSync(state: HostState, e: EventOf<'shadow.sync'>): void {
  for (const x86 of x86Vcpus(state, e.dom, e.vcpu)) {
    if (e.op === 'fill') x86.shadow.set(e.page, { mfn: e.mfn, flags: e.flags });
    else if (e.page < 0) x86.shadow.clear();
    else x86.shadow.delete(e.page);
  }
}


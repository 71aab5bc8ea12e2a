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
    if (e.op === 'fill') {
      x86.shadow.set(e.page, { mfn: e.mfn, flags: e.flags });
    } else if (e.page < 0) {
      x86.shadow.clear();
      x86.shadowCache.clear();
    } else {
      x86.shadow.delete(e.page);
    }
  }
}

/** A CR3 load under shadow paging: the outgoing shadow kept, the incoming one made current. */
export function applyShadowSwitch(state: HostState, e: EventOf<'shadow.switch'>): void {
  const x86 = x86Of(state, e.dom, e.vcpu);
  const cache = x86.shadowCache;
  if (e.evict >= 0) cache.delete(e.evict);
  const incoming = e.restore < 0 ? undefined : e.restore === e.save ? x86.shadow : cache.get(e.restore);
  if (e.save >= 0 && e.save !== e.restore) {
    cache.delete(e.save);
    cache.set(e.save, x86.shadow);
  }
  if (e.restore >= 0) cache.delete(e.restore);
  x86.shadow = new Map(incoming ?? []);
}


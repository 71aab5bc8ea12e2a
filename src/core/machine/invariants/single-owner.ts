import { NO_DOMAIN, NO_FRAME, type Event } from '../../../events/schema.ts';
import { isMisconfigured } from '../../hardware/paging/ept.ts';
import { domainLabel } from '../../hypervisor/state.ts';
import type { InvariantChecker } from './types.ts';

/**
 * A frame has one owner at a time, and only its owner maps it: in its p2m, its EPT, its
 * shadow page tables or its TLB.
 */
export const singleOwner: InvariantChecker = {
  name: 'single-owner',
  rule: 'A frame has one owner at a time, and only its owner maps it (p2m, EPT, shadow page tables, TLB).',
  kinds: ['smm.ppt.update', 'p2m.update', 'ept.update', 'tlb.fill', 'shadow.sync'],
  check(state, event) {
    if (event.kind === 'smm.ppt.update' && event.owner !== NO_DOMAIN) {
      const current = state.ppt.get(event.mfn);
      if (current !== undefined && current.owner !== event.owner) {
        return { dom: event.owner, mfn: event.mfn, detail: `frame ${event.mfn} given to ${domainLabel(state, event.owner)} while ${domainLabel(state, current.owner)} owns it` };
      }
    }
    if (event.kind === 'p2m.update' && event.mfn !== NO_FRAME) {
      const owner = state.ppt.get(event.mfn)?.owner;
      if (owner !== event.dom) {
        return { dom: event.dom, mfn: event.mfn, detail: `${domainLabel(state, event.dom)} maps frame ${event.mfn} at gfn ${event.gfn}, but its owner is ${owner === undefined ? 'nobody' : domainLabel(state, owner)}` };
      }
    }
    const mapped = mappedFrame(event);
    if (mapped !== undefined) {
      const owner = state.ppt.get(mapped.mfn)?.owner;
      if (owner !== mapped.dom) {
        return { dom: mapped.dom, mfn: mapped.mfn, detail: `${event.kind} gives ${domainLabel(state, mapped.dom)} a translation to frame ${mapped.mfn}, owned by ${owner === undefined ? 'nobody' : domainLabel(state, owner)}` };
      }
    }
    return undefined;
  },
};

/** A translation an event installs (EPT entry, TLB entry, shadow entry), if any. */
function mappedFrame(event: Event): { dom: number; mfn: number } | undefined {
  // A misconfigured entry (Xen's MMIO trap) translates nothing.
  if (event.kind === 'ept.update' && event.mfn !== NO_FRAME && !isMisconfigured(event.bits)) return { dom: event.dom, mfn: event.mfn };
  if (event.kind === 'tlb.fill') return { dom: event.dom, mfn: event.mfn };
  if (event.kind === 'shadow.sync' && event.op === 'fill') return { dom: event.dom, mfn: event.mfn };
  return undefined;
}

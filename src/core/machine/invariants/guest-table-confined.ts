import { NO_DOMAIN, NO_FRAME, type DomainId } from '../../../events/schema.ts';
import { isMisconfigured, type EptTable } from '../../hardware/paging/ept.ts';
import { domainLabel, type HostState, type TlbEntry } from '../../hypervisor/state.ts';
import type { Breach, InvariantChecker } from './types.ts';

/**
 * What the MMU of a vCPU entering its guest would use, read from the tables themselves and
 * not from the events that built them: every leaf of the domain's EPT maps a frame the
 * domain owns, or is an emulated window (a misconfigured entry: every access exits); every
 * entry of the vCPU's shadow page table, and of the shadows Xen keeps for its other address
 * spaces, maps a frame the domain owns. Checked at each VM entry of the vCPU, so a table a
 * bug built wrong is caught before the guest runs on it, even when its events looked right.
 * Costs one pass over the domain's EPT leaves and the vCPU's shadows per entry.
 */
export const guestTableConfined: InvariantChecker = {
  name: 'guest-table-confined',
  rule: "Every leaf of a domain's EPT, and of its vCPUs' shadow page tables (kept ones included), maps a frame the domain owns or an emulated window that exits.",
  kinds: ['vm.entry'],
  check(state, event) {
    if (event.kind !== 'vm.entry') return undefined;
    const domain = state.domains.get(event.dom);
    const x86 = domain?.vcpus[event.vcpu]?.x86;
    if (domain === undefined || x86 == null) return undefined;
    const who = `${domainLabel(state, event.dom)}.v${event.vcpu}`;
    const ept = domain.paging === 'ept' ? foreignEptLeaf(state, event.dom, domain.ept) : undefined;
    if (ept !== undefined) return breach(state, event.dom, ept.mfn, `${who} enters its guest with an EPT leaf mapping gfn 0x${ept.gfn.toString(16)} to frame ${ept.mfn}`);
    const shadows: [string, Map<number, TlbEntry>][] = [['shadow page table', x86.shadow]];
    for (const [cr3, kept] of x86.shadowCache) shadows.push([`shadow page table kept for CR3 0x${(cr3 * 4096).toString(16)}`, kept]);
    for (const [what, table] of shadows) {
      for (const [page, entry] of table) {
        if (state.ppt.get(entry.mfn)?.owner !== event.dom) return breach(state, event.dom, entry.mfn, `${who} enters its guest with a ${what} entry mapping linear page 0x${page.toString(16)} to frame ${entry.mfn}`);
      }
    }
    return undefined;
  },
};

/** A leaf that translates (present, not a misconfigured window) to a frame `dom` does not own, if any. */
function foreignEptLeaf(state: HostState, dom: DomainId, ept: EptTable): { gfn: number; mfn: number } | undefined {
  for (const [a, pdpt] of ept) {
    for (const [b, pd] of pdpt) {
      for (const [c, pt] of pd) {
        for (const [d, leaf] of pt) {
          if ((leaf.bits & 7) === 0 || isMisconfigured(leaf.bits)) continue;
          if (state.ppt.get(leaf.mfn)?.owner !== dom) return { gfn: ((a * 512 + b) * 512 + c) * 512 + d, mfn: leaf.mfn };
        }
      }
    }
  }
  return undefined;
}

function breach(state: HostState, dom: DomainId, mfn: number, what: string): Breach {
  const owner = state.ppt.get(mfn)?.owner ?? NO_DOMAIN;
  const whose = owner === NO_DOMAIN ? 'nobody' : domainLabel(state, owner);
  return { dom, mfn: mfn >= 0 ? mfn : NO_FRAME, detail: `${what}, owned by ${whose}` };
}

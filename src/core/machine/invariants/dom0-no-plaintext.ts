import { ownerPlaintext } from '../../hypervisor/memory/smm.ts';
import { domainLabel } from '../../hypervisor/state.ts';
import type { InvariantChecker } from './types.ts';

/**
 * dom0's foreign mappings of guest memory show ciphertext, never the guest's plaintext; and
 * no packet of a guest passes through dom0 (the vanilla backend's grant copies do).
 */
export const dom0NoPlaintext: InvariantChecker = {
  name: 'dom0-no-plaintext',
  rule: "dom0 never sees a guest's plaintext: its foreign mappings show ciphertext, and no guest packet passes through its hands.",
  kinds: ['dom0.foreign_read', 'netback.copy'],
  check(state, event) {
    if (event.kind === 'netback.copy') {
      if (event.dom === 0 || event.data.length === 0) return undefined;
      const mfn = state.domains.get(event.dom)?.p2m.get(event.gfn) ?? -1;
      return { dom: event.dom, mfn, detail: `dom0's netback copied ${event.data.length} bytes of ${domainLabel(state, event.dom)}'s ${event.dir === 'tx' ? 'outgoing' : 'incoming'} packet in plaintext` };
    }
    if (event.kind !== 'dom0.foreign_read' || event.value.every((b) => b === 0)) return undefined;
    const plain = ownerPlaintext(state, event.mfn, event.offset, event.value.length);
    if (!Buffer.from(plain).equals(Buffer.from(event.value))) return undefined;
    return { dom: event.target, mfn: event.mfn, detail: `dom0 read ${event.value.length} bytes of ${domainLabel(state, event.target)}'s plaintext at gfn ${event.gfn}` };
  },
};

import { ownerPlaintext } from '../smm.ts';
import { domainLabel } from '../state.ts';
import type { InvariantChecker } from './types.ts';

/** dom0's foreign mappings of guest memory show ciphertext, never the guest's plaintext. */
export const dom0NoPlaintext: InvariantChecker = {
  name: 'dom0-no-plaintext',
  kinds: ['dom0.foreign_read'],
  check(state, event) {
    if (event.kind !== 'dom0.foreign_read' || event.value.every((b) => b === 0)) return undefined;
    const plain = ownerPlaintext(state, event.mfn, event.offset, event.value.length);
    if (!Buffer.from(plain).equals(Buffer.from(event.value))) return undefined;
    return { dom: event.target, mfn: event.mfn, detail: `dom0 read ${event.value.length} bytes of ${domainLabel(state, event.target)}'s plaintext at gfn ${event.gfn}` };
  },
};

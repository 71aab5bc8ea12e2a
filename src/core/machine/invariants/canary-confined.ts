import type { Event } from '../../../events/schema.ts';
import { domainLabel } from '../../hypervisor/state.ts';
import type { InvariantChecker } from './types.ts';

function reader(event: Event): { dom: number; value: Uint8Array; mfn: number } | undefined {
  if (event.kind === 'mem.read') return { dom: event.dom, value: event.value, mfn: event.mfn };
  if (event.kind === 'dom0.foreign_read') return { dom: 0, value: event.value, mfn: event.mfn };
  return undefined;
}

/** No domain other than its owner (dom0 included) ever reads a canary's plaintext. */
export const canaryConfined: InvariantChecker = {
  name: 'canary-confined',
  rule: 'No domain other than its owner, dom0 included, ever reads the plaintext of a canary a domain planted.',
  kinds: ['mem.read', 'dom0.foreign_read'],
  check(state, event) {
    const read = reader(event);
    if (read === undefined) return undefined;
    const value = Buffer.from(read.value.buffer, read.value.byteOffset, read.value.length);
    const own = state.canaries.filter((c) => c.dom === read.dom).map((c) => Buffer.from(c.secret));
    for (const canary of state.canaries) {
      // Reading bytes the reader planted itself is no leak, even if another tenant's secret is equal.
      if (canary.dom === read.dom || own.some((secret) => secret.equals(canary.secret))) continue;
      if (value.indexOf(canary.secret) >= 0) {
        const owner = domainLabel(state, canary.dom);
        return { dom: read.dom, mfn: read.mfn, detail: `${domainLabel(state, read.dom)} read the canary ${owner} planted at gpa 0x${canary.gpa.toString(16)}` };
      }
    }
    return undefined;
  },
};

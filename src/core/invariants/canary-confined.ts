import type { Event } from '../../events/schema.ts';
import { domainLabel } from '../state.ts';
import type { InvariantChecker } from './types.ts';

function reader(event: Event): { dom: number; value: Uint8Array; mfn: number } | undefined {
  if (event.kind === 'mem.read') return { dom: event.dom, value: event.value, mfn: event.mfn };
  if (event.kind === 'dom0.foreign_read') return { dom: 0, value: event.value, mfn: event.mfn };
  return undefined;
}

/** No domain other than its owner (dom0 included) ever reads a canary's plaintext. */
export const canaryConfined: InvariantChecker = {
  name: 'canary-confined',
  check(state, event) {
    const read = reader(event);
    if (read === undefined) return undefined;
    const value = Buffer.from(read.value.buffer, read.value.byteOffset, read.value.length);
    for (const canary of state.canaries) {
      if (canary.dom !== read.dom && value.indexOf(canary.secret) >= 0) {
        const owner = domainLabel(state, canary.dom);
        return { dom: read.dom, mfn: read.mfn, detail: `${domainLabel(state, read.dom)} read the canary ${owner} planted at gpa 0x${canary.gpa.toString(16)}` };
      }
    }
    return undefined;
  },
};
